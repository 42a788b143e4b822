"""``imagenet``: timm's ImageNet train/eval transforms (EfficientTrain++, ICCV EfficientTrain, DeiT, ConvNeXt).

Train, as timm's ``transforms_imagenet_train`` builds it (huggingface/pytorch-image-models
``timm/data/transforms_factory.py``; ET++ ``datasets_buffer.py`` L57-89 calls it with ``--aa
rand-m{m}-mstd0.5-inc1`` and bicubic): ``RandomResizedCropAndInterpolation(size, scale (0.08, 1), ratio
(3/4, 4/3), bicubic)`` → ``RandomHorizontalFlip(0.5)`` → timm's ``RandAugment`` → ``ToTensor`` → ImageNet
``Normalize``. Random erasing is the recipe's ``data.augment.random_erasing`` (applied to the batch).
timm's own objects draw the crop, the flip and the ops, from RNGs seeded per sample (:mod:`.base`).

EfficientTrain++'s low-frequency stage (``datasets_buffer.py`` L75-82) inserts a Lanczos resize to B right
after RandAugment at the base size: crop to 224 → flip → RandAugment at 224 → Lanczos to B → normalise.
That is the default (``augment_at: base``). Two cheaper options, both off the reference's exact path:

- ``reduced_decode`` (on by default): when the crop is at least twice the size it is resized to, the JPEG is
  decoded at 1/2, 1/4 or 1/8 scale by libjpeg (PIL ``draft``) and the crop box scaled to it; the pixels then
  differ from a full decode by the DCT down-scaling, the geometry not at all. With ``augment_at: base`` this
  only fires for crops of ≥ 448 px; for 500×375 photos at 224, never.
- ``augment_at: stage`` (a labelled deviation from ET++'s order): the crop is resized straight to B and
  RandAugment runs at B, so nothing runs at 224 and the decode can shrink too.

Eval, as timm's ``transforms_imagenet_eval``: resize the short side to ``floor(size / crop_pct)`` (bicubic),
centre-crop ``size``, ``ToTensor``, ``Normalize``.

``decode: torchvision`` (issue 15) decodes JPEGs with ``torchvision.io.decode_jpeg`` on ``decode_device`` (``cpu``
or ``cuda``, nvJPEG) instead of PIL. The crop + resize (torchvision ``resized_crop``, antialiased, on the uint8
tensor), the flip and ``Normalize`` then run on that device; timm's RandAugment and ET++'s Lanczos resize need PIL,
so when they apply the crop comes back to the host for them. The sample is returned on the host (the loader's
pinned batches). Not PIL's bytes: the decoders and resamplers differ by a few grey levels (tests/data/
test_torchvision_decode.py measures it); ``reduced_decode`` does not apply (decode_jpeg has no DCT scaling) and
non-JPEG files take the PIL path. ``cuda`` needs ``data.num_workers: 0`` (forked DataLoader workers cannot use CUDA;
validate says so) and a CUDA device (refused with one line when the training data is loaded).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, model_validator

from curricurun.data.pipelines.base import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    PipelineParams,
    require_rgb,
    seeded_library_rngs,
    to_normalised_tensor,
)
from curricurun.recipe.fields import Float, Int

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from curricurun.data.sources import ImageClassificationData


class ImagenetParams(PipelineParams):
    hflip: Float = Field(0.5, ge=0, le=1, description="Horizontal flip probability (timm --hflip).")
    scale: tuple[Float, Float] = Field((0.08, 1.0), description="RandomResizedCrop area range (timm --scale).")
    ratio: tuple[Float, Float] = Field((3 / 4, 4 / 3), description="RandomResizedCrop aspect range (timm --ratio).")
    interpolation: Literal["bicubic", "bilinear"] = Field("bicubic", description="Crop and RandAugment resampling.")
    magnitude: Float | None = Field(
        None, ge=0, le=10, description="RandAugment m when no curriculum sets one; null = only where one does."
    )
    num_ops: Int = Field(2, gt=0, description="RandAugment ops per image (timm's n).")
    magnitude_std: Float = Field(0.5, ge=0, description="RandAugment magnitude noise (timm's mstd).")
    op_probability: Float = Field(0.5, ge=0, le=1, description="Probability of each drawn op (timm's p).")
    mean: tuple[Float, Float, Float] = IMAGENET_MEAN
    std: tuple[Float, Float, Float] = IMAGENET_STD
    crop_pct: Float = Field(0.875, gt=0, le=1, description="Eval: resize the short side to size / crop_pct.")
    augment_at: Literal["base", "stage"] = Field(
        "base",
        description="'base': RandAugment at the base size, then Lanczos to B (ET++ order); 'stage': crop straight to "
        "B and augment there (a deviation from ET++, cheaper).",
    )
    reduced_decode: bool = Field(True, description="Decode JPEGs at 1/2-1/8 scale where the crop allows it.")
    decode: Literal["pil", "torchvision"] = Field(
        "pil", description="'pil': PIL, with reduced_decode; 'torchvision': torchvision.io.decode_jpeg, decode_device."
    )
    decode_device: Literal["cpu", "cuda"] = Field("cpu", description="Where decode: torchvision decodes and crops.")

    @model_validator(mode="after")
    def _device_needs_torchvision(self) -> ImagenetParams:
        if self.decode_device != "cpu" and self.decode != "torchvision":
            raise ValueError(f"decode_device '{self.decode_device}' needs decode: torchvision (PIL decodes on the CPU)")
        return self

    def require_decode_device(self) -> None:
        """Refuse ``decode_device: cuda`` with one line where no CUDA device is present (validate does not check)."""
        import torch

        from curricurun.errors import UserError

        if self.decode_device == "cuda" and not torch.cuda.is_available():
            raise UserError("data.pipeline.decode_device: 'cuda' needs a CUDA device, none is present; use 'cpu'")


class ImagenetPipeline:
    name: ClassVar[str] = "imagenet"
    summary: ClassVar[str] = "timm ImageNet: RandomResizedCrop, flip, timm RandAugment, mean/std; eval crop_pct"
    reference: ClassVar[str] = "timm/data/transforms_factory.py (imagenet train/eval); ET++ datasets_buffer.py L57-89"
    Params: ClassVar[type[PipelineParams]] = ImagenetParams

    def __init__(self, params: ImagenetParams) -> None:
        self.params = params
        self._augments: dict[float, Any] = {}  # magnitude -> timm RandAugment, built on first use

    def describe(self) -> str:
        p = self.params
        augment = "" if p.magnitude is None else f" m={p.magnitude:g}"
        return (
            f"imagenet: RandomResizedCrop(scale={p.scale[0]:g}-{p.scale[1]:g}, {p.interpolation}) → flip {p.hflip:g} → "
            f"timm RandAugment n={p.num_ops}{augment} mstd={p.magnitude_std:g} at {p.augment_at} → Lanczos to B → "
            f"ImageNet mean/std; eval crop_pct {p.crop_pct:g}; "
            + (
                f"torchvision decode on {p.decode_device}"
                if p.decode == "torchvision"
                else f"reduced decode {'on' if p.reduced_decode else 'off'}"
            )
        )

    def train_sample(
        self,
        data: ImageClassificationData,
        index: int,
        resolution: int,
        magnitude: float | None,
        bandwidth: int | None,
        seed: int,
    ) -> torch.Tensor:
        """One training tensor ``[3, s, s]``: s = B when a bandwidth below the resolution is set, else resolution."""
        from PIL import Image

        from curricurun.data.decode import draft_request

        p = self.params
        require_rgb(data, self.name)
        magnitude = p.magnitude if magnitude is None else magnitude
        side = bandwidth if bandwidth is not None and bandwidth < resolution else resolution
        crop_side = side if p.augment_at == "stage" else resolution
        with seeded_library_rngs(seed):
            picture = self._tensor_crop(data, index, crop_side)
            if picture is None:
                chosen: list[tuple[int, int, int, int]] = []

                def fit(picture: Image.Image) -> tuple[int, int] | None:
                    chosen.append(self._crop_box(picture))
                    return draft_request(picture.size, chosen[0], crop_side) if p.reduced_decode else None

                picture, full = data.picture(index, fit)
                box = chosen[0] if chosen else self._crop_box(picture)
                picture = _resized_crop(picture, full, box, crop_side, _pil_filter(p.interpolation))
            if p.hflip > 0:
                import torch

                if torch.rand(1) < p.hflip:  # torchvision RandomHorizontalFlip's draw
                    picture = _flip(picture)
            if magnitude is not None or crop_side != side:
                picture = _to_pil(picture)  # timm's RandAugment and the Lanczos resize take PIL (on the host)
            if magnitude is not None:
                picture = self._augment(magnitude)(picture)
            if crop_side != side:  # ET++: transforms.Resize(B, LANCZOS) after RandAugment (datasets_buffer.py L75-82)
                picture = picture.resize((side, side), Image.Resampling.LANCZOS)
        return to_normalised_tensor(picture, p.mean, p.std).cpu()

    def eval_sample(self, data: ImageClassificationData, index: int, resolution: int) -> torch.Tensor:
        """timm's eval transform: short side to ``floor(resolution / crop_pct)``, centre crop, normalise."""
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms.v2 import functional as tvf

        p = self.params
        require_rgb(data, self.name)
        short = math.floor(resolution / p.crop_pct)
        picture = self._decoded_tensor(data, index)
        if picture is None:
            picture, _ = data.picture(index)  # always a full decode: evaluation stays the reference's
        mode = InterpolationMode.BICUBIC if p.interpolation == "bicubic" else InterpolationMode.BILINEAR
        picture = tvf.resize(picture, [short], interpolation=mode, antialias=True)
        picture = tvf.center_crop(picture, [resolution, resolution])
        return to_normalised_tensor(picture, p.mean, p.std).cpu()

    def _decoded_tensor(self, data: ImageClassificationData, index: int) -> torch.Tensor | None:
        """With ``decode: torchvision``, the JPEG decoded to a uint8 tensor on ``decode_device``; else ``None``."""
        from curricurun.data.decode import decode_jpeg_tensor, encoded_jpeg

        p = self.params
        found = encoded_jpeg(data, index) if p.decode == "torchvision" else None
        if found is None:
            return None
        if p.decode_device == "cuda":
            from torch.utils.data import get_worker_info

            from curricurun.errors import UserError

            p.require_decode_device()
            if get_worker_info() is not None:
                raise UserError("data.pipeline.decode_device: 'cuda' decodes in the main process; set num_workers: 0")
        return decode_jpeg_tensor(found[0], found[1], index, p.decode_device)

    def _tensor_crop(self, data: ImageClassificationData, index: int, side: int) -> torch.Tensor | None:
        """The torchvision path's crop: timm's box drawn on the decoded tensor, ``resized_crop`` to ``side``."""
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms.v2 import functional as tvf

        image = self._decoded_tensor(data, index)
        if image is None:
            return None
        left, top, right, bottom = self._crop_box(image)
        mode = InterpolationMode.BICUBIC if self.params.interpolation == "bicubic" else InterpolationMode.BILINEAR
        return tvf.resized_crop(image, top, left, bottom - top, right - left, [side, side], mode, antialias=True)

    def _crop_box(self, picture: Image.Image | torch.Tensor) -> tuple[int, int, int, int]:
        """timm's ``RandomResizedCropAndInterpolation.get_params`` (python ``random``) as (left, top, right, bottom)."""
        from timm.data.transforms import RandomResizedCropAndInterpolation

        top, left, height, width = RandomResizedCropAndInterpolation.get_params(
            picture, self.params.scale, self.params.ratio
        )
        return left, top, left + width, top + height

    def _augment(self, magnitude: float) -> Any:
        if magnitude not in self._augments:
            from curricurun.data.pipelines.randaugment import timm_rand_augment

            p = self.params
            self._augments[magnitude] = timm_rand_augment(
                magnitude,
                p.num_ops,
                magnitude_std=p.magnitude_std,
                probability=p.op_probability,
                fill=tuple(min(255, round(255 * value)) for value in p.mean),
                interpolation=p.interpolation,
            )
        return self._augments[magnitude]


def _flip(picture: Image.Image | torch.Tensor) -> Image.Image | torch.Tensor:
    from PIL import Image

    if isinstance(picture, Image.Image):
        return picture.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return picture.flip(-1)


def _to_pil(picture: Image.Image | torch.Tensor) -> Image.Image:
    from PIL import Image

    if isinstance(picture, Image.Image):
        return picture
    return Image.fromarray(picture.permute(1, 2, 0).cpu().numpy())


def _pil_filter(interpolation: str) -> Any:
    from PIL import Image

    return Image.Resampling.BICUBIC if interpolation == "bicubic" else Image.Resampling.BILINEAR


def _resized_crop(
    picture: Image.Image, full: tuple[int, int], box: tuple[int, int, int, int], side: int, resample: Any
) -> Image.Image:
    """Crop ``box`` (full-size coordinates) and resize it to ``side × side``.

    Full-size decode: crop then resize, exactly torchvision's ``resized_crop`` on PIL. Reduced decode: the box
    scaled to the decoded size, resampled in one ``resize(box=...)`` (sub-pixel box, no rounding of the crop).
    """
    if picture.size == full:
        return picture.crop(box).resize((side, side), resample)
    scale_x, scale_y = picture.size[0] / full[0], picture.size[1] / full[1]
    scaled = (box[0] * scale_x, box[1] * scale_y, box[2] * scale_x, box[3] * scale_y)
    return picture.resize((side, side), resample, box=scaled)
