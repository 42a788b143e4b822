"""timm's RandAugment, built by timm, with one shim for Pillow 13 (posterize to 0 bits).

EfficientTrain++ runs timm's ``rand-m{m}-mstd0.5-inc1`` (``_ET_pp_main_res50.py`` L44-63, ``--aa``), so curricurun
builds exactly that with :func:`timm.data.auto_augment.rand_augment_transform` rather than re-creating it.

Pillow 13 shim. timm's increasing posterize keeps ``4 − int(m/10·4)`` bits, 0 bits at m = 10, which the noisy
magnitude (mstd 0.5, clipped to [0, 10]) reaches now and then at m = 9. Pillow < 13 turned 0 bits into a black
image (``ImageOps.posterize`` masks every bit away); Pillow 13 raises ``ValueError: bits must be between or equal
to 1 and 8`` (timm 1.0.31, ``auto_augment.py`` ``posterize``). :func:`posterize_keeping_zero_bits` returns the black
image for 0 bits and calls timm's op otherwise, so the semantics stay those of the reference's Pillow.
"""

from __future__ import annotations

from typing import Any

from PIL import Image

MAX_MAGNITUDE = 10.0  # timm's _LEVEL_DENOM: magnitude 10 = the top of every op's range


def posterize_keeping_zero_bits(img: Image.Image, bits_to_keep: int, **kwargs: Any) -> Image.Image:
    """timm's ``posterize``, with 0 bits kept giving the black image older Pillow produced."""
    from timm.data import auto_augment

    if bits_to_keep <= 0:
        return img.point(lambda _: 0)
    return auto_augment.posterize(img, bits_to_keep, **kwargs)


def timm_rand_augment(
    magnitude: float,
    num_ops: int = 2,
    *,
    magnitude_std: float = 0.5,
    probability: float = 0.5,
    increasing: bool = True,
    fill: tuple[int, ...] = (124, 116, 104),
    interpolation: str = "bicubic",
) -> Any:
    """timm's ``RandAugment`` for ``rand-m{m}-n{num_ops}-mstd{std}-inc1`` (+ ``-p``), ops at ``magnitude``.

    ``fill`` and ``interpolation`` are the ``img_mean`` / ``interpolation`` hparams timm's
    ``transforms_imagenet_train`` passes (``transforms_factory.py``): ``round(255·mean)`` and bicubic. timm's
    config string takes an integer m; a fractional magnitude (the ``linear`` ramp) is set on each op afterwards,
    which is what timm's ``AugmentOp`` reads.
    """
    from timm.data import auto_augment
    from timm.data.transforms import str_to_pil_interp

    if not 0 <= magnitude <= MAX_MAGNITUDE:
        raise ValueError(f"RandAugment magnitude {magnitude} is outside timm's scale [0, {MAX_MAGNITUDE:g}]")
    config = f"rand-m{round(magnitude)}-n{num_ops}-mstd{magnitude_std:g}-inc{int(increasing)}-p{probability:g}"
    hparams = {"img_mean": tuple(fill), "interpolation": str_to_pil_interp(interpolation)}
    augment = auto_augment.rand_augment_transform(config, hparams)
    for op in augment.ops:
        op.magnitude = magnitude
        if op.aug_fn is auto_augment.posterize:
            op.aug_fn = posterize_keeping_zero_bits
    return augment
