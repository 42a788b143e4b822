"""Decode one stored image into a PIL picture, optionally at a reduced JPEG scale, with a one-line error.

Reduced-scale decoding (composer#728: low-resolution stages must not pay a full-size decode). libjpeg can
produce the picture directly at 1/2, 1/4 or 1/8 of its size by dropping DCT coefficients; PIL exposes it as
``Image.draft(mode, size)``, which picks the largest reduction whose result is still at least ``size``. The
caller says what it needs through ``fit``: given the opened, not yet decoded picture (its ``size`` comes from the
file header), it returns the smallest size it can use, or ``None`` for the full picture; it is called for every
format (a pipeline draws its crop there), but only a JPEG is then decoded at a reduced scale. Measured
against simplejpeg and ``torchvision.io.decode_jpeg`` in bench/loader_throughput.py: ``draft`` needs no extra
dependency and returns the PIL picture timm's transforms take.

Optional torchvision decode (issue 15): :func:`encoded_jpeg` returns a stored JPEG's bytes without decoding them
and :func:`decode_jpeg_tensor` decodes them with ``torchvision.io.decode_jpeg`` on ``cpu`` (libjpeg-turbo) or
``cuda`` (nvJPEG) into a uint8 ``[3, H, W]`` tensor; it has no reduced scale, so ``reduced_decode`` does not apply.

A file that cannot be decoded (not an image, truncated) raises :class:`CorruptImageError`: a
:class:`~curricurun.errors.UserError` whose one line names the file and its index in the split.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from curricurun.errors import UserError

if TYPE_CHECKING:
    import torch

Fit = Callable[[Image.Image], "tuple[int, int] | None"]


class CorruptImageError(UserError):
    """An image of the split that PIL cannot decode; the message is one line naming the file and its index."""


def open_picture(
    stored: str | Path | bytes, name: str, index: int, mode: str, fit: Fit | None = None
) -> tuple[Image.Image, tuple[int, int]]:
    """The decoded picture in ``mode`` ("RGB" or "L") and the full ``(width, height)`` of the stored image.

    ``stored`` is a file path or the encoded bytes; ``name`` is what the error message calls it.
    """
    try:
        picture = Image.open(io.BytesIO(stored) if isinstance(stored, bytes) else stored)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise _corrupt(error, name, index) from None
    full = picture.size
    wanted = fit(picture) if fit is not None else None  # outside the try: a caller's error is not a bad file
    try:
        if wanted is not None and picture.format == "JPEG":
            picture.draft(mode, wanted)
        picture.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise _corrupt(error, name, index) from None
    if picture.mode != mode:
        picture = picture.convert(mode)
    return picture, full


def _corrupt(error: Exception, name: str, index: int) -> CorruptImageError:
    reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:160]
    return CorruptImageError(f"data.path: image {index} ('{name}') cannot be decoded: {reason}")


def draft_request(full: tuple[int, int], box: tuple[float, float, float, float], out: int) -> tuple[int, int] | None:
    """The decode size at which the crop ``box`` (left, top, right, bottom) still has ``out`` pixels a side.

    ``None`` when no 2× reduction is possible (the crop is smaller than ``2·out`` on a side).
    """
    width, height = full
    factor = min((box[2] - box[0]) / out, (box[3] - box[1]) / out)
    if factor < 2.0:
        return None
    return math.ceil(width / factor), math.ceil(height / factor)


class _Encoded(Exception):  # noqa: N818 - not an error: carries the bytes out of the fit hook, decoding nothing
    def __init__(self, raw: bytes, name: str) -> None:
        super().__init__(name)
        self.raw, self.name = raw, name


def encoded_jpeg(data: Any, index: int) -> tuple[bytes, str] | None:
    """The stored bytes of image ``index`` and the name errors call it, when it is a JPEG file or JPEG bytes.

    ``None`` for any other format and for images held decoded (IDX arrays, array columns). The bytes are read
    through :meth:`ImageClassificationData.picture`'s ``fit`` hook, which sees the opened file before any pixel is
    decoded; the hook then leaves by an exception, so PIL never decodes it. A file whose header PIL cannot read
    raises :class:`CorruptImageError` there, as on the PIL path.
    """

    def grab(picture: Image.Image) -> tuple[int, int] | None:
        if picture.format != "JPEG" or picture.fp is None:
            return None
        picture.fp.seek(0)
        raw = picture.fp.read()
        name = picture.filename or f"row {index}"
        picture.close()
        raise _Encoded(raw, str(name))

    try:
        data.picture(index, grab)
    except _Encoded as encoded:
        return encoded.raw, encoded.name
    return None


def decode_jpeg_tensor(raw: bytes, name: str, index: int, device: str) -> torch.Tensor:
    """``torchvision.io.decode_jpeg`` of ``raw`` to a uint8 RGB ``[3, H, W]`` tensor on ``device``; one-line errors."""
    import torch
    from torchvision.io import ImageReadMode, decode_jpeg

    encoded = torch.frombuffer(bytearray(raw), dtype=torch.uint8)
    try:
        return decode_jpeg(encoded, mode=ImageReadMode.RGB, device=device)
    except RuntimeError as error:  # "decode_jpeg, <source file:line>, <reason>"
        raise _corrupt(RuntimeError(str(error).split(", ", 2)[-1]), name, index) from None
