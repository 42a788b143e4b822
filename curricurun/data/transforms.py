"""Per-sample image transforms at the stage's size, seeded per sample so any worker gives the same result.

Train order, EfficientTrain++ (``datasets_buffer.py`` L57-89: crop at base → flip → RandAugment at base →
Lanczos down to B → normalise): random crop with zero padding at the image's own size → horizontal flip →
RandAugment → resize to the stage size → ``(x/255 − mean)/std``. The stage size is the low-frequency
bandwidth B when one is set (Lanczos-3, the ET++ stand-in for the Fourier crop, which docs/references.md found the
closest PIL filter to it), else the stage resolution (antialiased bilinear).

Cheap low-resolution stages (DESIGN.md, "Low-resolution stages must be cheap"; composer#728). The crop is a
slice, the resize is two small matrix products (:func:`resampling_matrix`) that return floats, and without
RandAugment the flip comes after the resize (they commute), so at the stored size there is only the
uint8 → float conversion and the first matrix product; everything else runs on the stage's pixels.
Measured per Fashion-MNIST image (2-core machine, one thread, best of 5 runs): no augmentation 16 µs at
28 px and 25 µs at 14 px; crop (padding 2) + flip 21 µs at 28 px, 32 µs at 14 px, 42 µs with Lanczos to
B = 14 (torchvision's tensor resize in the same place: 47 / 96 µs); RandAugment (n = 2, m = 9) adds
about 300 µs, mostly torchvision's per-op dispatch.

RandAugment is timm's own (:func:`curricurun.data.pipelines.randaugment.timm_rand_augment`,
``rand-m{m}-n{n}-mstd0.5-inc1``, the op set EfficientTrain++ runs), applied to the PIL picture of the cropped and
flipped image and filled with ``round(255·mean)``. ``magnitude`` is on timm's scale (0-10).

Randomness comes only from ``seed``: a ``torch.Generator`` draws the crop and the flip, and one number drawn
from it seeds python's ``random`` and numpy's global RNG, which timm's RandAugment draws from
(:func:`curricurun.data.pipelines.base.seeded_library_rngs`; the states are restored in the main process).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch

_TIMM_MAX_MAGNITUDE = 10.0  # timm's _LEVEL_DENOM: magnitude 10 = the top of every op's range
Kernel = Literal["bilinear", "lanczos"]


@functools.lru_cache(maxsize=64)
def resampling_matrix(size_in: int, size_out: int, kernel: Kernel) -> np.ndarray:
    """Antialiased 1-D resampling as a ``[size_out, size_in]`` matrix (rows sum to 1).

    Output pixel i is centred at c_i = (i + ½)·size_in/size_out in input coordinates; the kernel is
    stretched by f = max(size_in/size_out, 1) so that down-sampling low-passes first:
    ``w[i, j] ∝ k((j + ½ − c_i) / f)``, each row normalised over the pixels inside the image.
    Kernels: triangle k(x) = max(0, 1 − |x|) ("bilinear"), Lanczos-3 k(x) = sinc(x)·sinc(x/3) for |x| < 3.
    This is the resampling PIL's ``Image.resize`` performs (its float-image result agrees to 1e-4 of 255;
    tests/data/test_transforms.py), applied as ``W_y @ image @ W_xᵀ``.
    """
    scale = size_in / size_out
    stretch = max(scale, 1.0)
    centres = (np.arange(size_out) + 0.5) * scale
    x = (np.arange(size_in)[None, :] + 0.5 - centres[:, None]) / stretch
    if kernel == "bilinear":
        weights = np.clip(1.0 - np.abs(x), 0.0, None)
    else:
        weights = np.where(np.abs(x) < 3.0, np.sinc(x) * np.sinc(x / 3.0), 0.0)
    return (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)


def _resize(pixels: np.ndarray, side: int, kernel: Kernel) -> np.ndarray:
    """uint8 ``[C, H, W]`` → float32 ``[C, side, side]`` in 0…255 (no resampling when already that size).

    Rows first, then columns, as PIL does. Lanczos overshoots at sharp edges; PIL stores each pass as uint8
    (ET++ trains on that), so each Lanczos pass is clipped to the pixel range too.
    """
    height, width = pixels.shape[-2:]
    values = pixels.astype(np.float32)
    if (height, width) == (side, side):
        return values
    values = values @ resampling_matrix(width, side, kernel).T
    if kernel == "lanczos":
        np.clip(values, 0.0, 255.0, out=values)
    values = resampling_matrix(height, side, kernel) @ values
    return np.clip(values, 0.0, 255.0, out=values) if kernel == "lanczos" else values


def _shift_with_zeros(pixels: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """The zero-padded image cropped back to its size at offset (dy, dx): out[y, x] = in[y + dy, x + dx], or 0.

    Equal to padding by p and cropping at (p + dy, p + dx), without building the padded image.
    """
    if dy == 0 and dx == 0:
        return pixels
    height, width = pixels.shape[-2:]
    out = np.zeros_like(pixels)
    y0, y1, x0, x1 = max(0, -dy), height - max(0, dy), max(0, -dx), width - max(0, dx)
    if y0 < y1 and x0 < x1:
        out[:, y0:y1, x0:x1] = pixels[:, y0 + dy : y1 + dy, x0 + dx : x1 + dx]
    return out


class _Normalise:
    """``(x/255 − mean)/std`` per channel as one multiply-add on 0…255 floats."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        if len(mean) != len(std) or any(value <= 0 for value in std):
            raise ValueError(f"mean and std need one value per channel and std > 0, got {mean} / {std}")
        self.scale = np.array([1.0 / (255.0 * value) for value in std], dtype=np.float32).reshape(-1, 1, 1)
        self.shift = np.array([-m / s for m, s in zip(mean, std, strict=True)], dtype=np.float32).reshape(-1, 1, 1)

    def __call__(self, values: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(values * self.scale + self.shift))


class StageTransform:
    """Train transform: uint8 ``[C, H, W]`` → float ``[C, s, s]`` with s = bandwidth if set, else resolution.

    Args:
        mean, std: per-channel normalisation (one value applies to every channel); default 0.5 / 0.5.
        hflip: flip horizontally with probability 0.5.
        random_crop_padding: pad by this many zero pixels and crop back at random (CIFAR-style); 0 = off.
        randaugment_num_ops: timm's RandAugment ``n``, the ops drawn per image.
        fixed_magnitude: RandAugment magnitude (timm scale) for stages that set none; None = RandAugment
            only where a curriculum sets a magnitude.
        op_probability, magnitude_std: timm's RandAugment ``p`` and ``mstd`` (EfficientTrain++ uses
            ``rand-m{m}-mstd0.5-inc1``, with p = 0.5 by timm's default).

    Picklable (plain attributes only), so DataLoader workers can hold it.
    """

    def __init__(
        self,
        mean: Sequence[float] = (0.5,),
        std: Sequence[float] = (0.5,),
        *,
        hflip: bool = False,
        random_crop_padding: int = 0,
        randaugment_num_ops: int = 2,
        fixed_magnitude: float | None = None,
        op_probability: float = 0.5,
        magnitude_std: float = 0.5,
    ):
        self.normalise = _Normalise(mean, std)
        self.hflip = hflip
        self.random_crop_padding = random_crop_padding
        self.randaugment_num_ops = randaugment_num_ops
        self.fixed_magnitude = fixed_magnitude
        self.op_probability = op_probability
        self.magnitude_std = magnitude_std
        # RandAugment fills uncovered pixels with the mean (timm's img_mean), which normalises to 0.
        self._fill = tuple(min(255, round(255 * value)) for value in mean)
        self._augments: dict[float, object] = {}  # magnitude -> timm RandAugment, built on first use

    def __call__(
        self, image: torch.Tensor, resolution: int, magnitude: float | None, bandwidth: int | None, seed: int
    ) -> torch.Tensor:
        """Transform one uint8 image for a stage; the same arguments always give the same tensor.

        ``magnitude`` None falls back to ``fixed_magnitude``; both None means no RandAugment. With
        ``bandwidth`` set the output side is B (ET++ trains the model at B), else ``resolution``.
        """
        magnitude = self.fixed_magnitude if magnitude is None else magnitude
        if magnitude is not None and not 0.0 <= magnitude <= _TIMM_MAX_MAGNITUDE:
            raise ValueError(f"RandAugment magnitude must lie in [0, 10] (timm scale), got {magnitude}")
        side, kernel = (bandwidth, "lanczos") if bandwidth is not None else (resolution, "bilinear")
        if magnitude is None and not self.hflip and not self.random_crop_padding:
            # Nothing random to do: skip the seeded generator (about half of a 28-px image's cost).
            return self.normalise(_resize(image.numpy(), side, kernel))
        generator = torch.Generator().manual_seed(seed)
        # One draw for crop row, crop column and flip; RandAugment draws after these.
        crop_y, crop_x, flip_draw = torch.rand(3, generator=generator).tolist()
        pad = self.random_crop_padding
        dy, dx = int(crop_y * (2 * pad + 1)) - pad, int(crop_x * (2 * pad + 1)) - pad
        flip = self.hflip and flip_draw < 0.5
        pixels = _shift_with_zeros(image.numpy(), dy, dx)
        if magnitude is None:
            values = _resize(pixels, side, kernel)
            return self.normalise(values[..., ::-1] if flip else values)
        pixels = np.ascontiguousarray(pixels[..., ::-1]) if flip else pixels
        pixels = self._rand_augment(torch.from_numpy(pixels), magnitude, generator).numpy()
        return self.normalise(_resize(pixels, side, kernel))

    def _rand_augment(self, image: torch.Tensor, magnitude: float, generator: torch.Generator) -> torch.Tensor:
        """timm's RandAugment on the uint8 ``[C, H, W]`` image, its RNGs seeded from ``generator``."""
        from PIL import Image

        from curricurun.data.pipelines.base import seeded_library_rngs

        if magnitude not in self._augments:
            from curricurun.data.pipelines.randaugment import timm_rand_augment

            channels = image.shape[0]
            self._augments[magnitude] = timm_rand_augment(
                magnitude,
                self.randaugment_num_ops,
                magnitude_std=self.magnitude_std,
                probability=self.op_probability,
                fill=self._fill if len(self._fill) == channels else self._fill[:1] * channels,
            )
        pixels = image.numpy()
        picture = Image.fromarray(pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0))
        with seeded_library_rngs(int(torch.randint(0, 2**62, (), generator=generator))):
            array = np.array(self._augments[magnitude](picture))  # writable: torch.from_numpy shares it
        return torch.from_numpy(np.ascontiguousarray(array[None] if array.ndim == 2 else array.transpose(2, 0, 1)))

    def train_sample(self, data, index: int, resolution: int, magnitude, bandwidth, seed: int) -> torch.Tensor:
        """The pipeline contract (:mod:`curricurun.data.pipelines.base`): decode ``index`` and transform it."""
        return self(data.image(index), resolution, magnitude, bandwidth, seed)


class EvalTransform:
    """Eval transform: antialiased bilinear resize to ``resolution`` (when the size differs), then normalise."""

    def __init__(self, mean: Sequence[float] = (0.5,), std: Sequence[float] = (0.5,)):
        self.normalise = _Normalise(mean, std)

    def __call__(self, image: torch.Tensor, resolution: int) -> torch.Tensor:
        return self.normalise(_resize(image.numpy(), resolution, "bilinear"))

    def eval_sample(self, data, index: int, resolution: int) -> torch.Tensor:
        return self(data.image(index), resolution)
