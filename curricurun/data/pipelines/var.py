"""``var``: VAR's image transform (FoundationVision/VAR ``utils/data.py:17-27``).

Train: [``RandomHorizontalFlip`` first, only with ``hflip``: off by default, ``--hflip`` in ``utils/arg_util.py``]
→ ``Resize(round(1.125·size), LANCZOS)`` of the short side → ``RandomCrop(size)`` → ``ToTensor`` → ``x + x − 1``
into [-1, 1]. Eval: the same resize, then ``CenterCrop(size)``. torchvision's own ops do the resizing and the
cropping, from RNGs seeded per sample (:mod:`.base`). With ``reduced_decode`` a JPEG whose short side is at
least twice the resize target is decoded at 1/2-1/8 scale first (then Lanczos from there; off the exact path).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from pydantic import Field

from curricurun.data.pipelines.base import PipelineParams, require_rgb, seeded_library_rngs, to_plus_minus_one
from curricurun.recipe.fields import Float

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from curricurun.data.sources import ImageClassificationData


class VarParams(PipelineParams):
    hflip: bool = Field(False, description="Random horizontal flip before the resize (VAR --hflip, default off).")
    mid_reso: Float = Field(1.125, ge=1, description="The short side is resized to round(mid_reso · size) first.")
    reduced_decode: bool = Field(False, description="Decode JPEGs at 1/2-1/8 scale when twice the resize target.")


class VarPipeline:
    name: ClassVar[str] = "var"
    summary: ClassVar[str] = "VAR: short side Lanczos to 1.125·size, random crop (eval: centre), [-1, 1]"
    reference: ClassVar[str] = "FoundationVision/VAR utils/data.py:17-27"
    Params: ClassVar[type[PipelineParams]] = VarParams

    def __init__(self, params: VarParams) -> None:
        self.params = params

    def describe(self) -> str:
        p = self.params
        flip = "flip → " if p.hflip else ""
        return f"var: {flip}short side Lanczos to {p.mid_reso:g}·size → random crop (eval: centre) → [-1, 1]"

    def train_sample(
        self,
        data: ImageClassificationData,
        index: int,
        resolution: int,
        magnitude: float | None,
        bandwidth: int | None,
        seed: int,
    ) -> torch.Tensor:
        from torchvision import transforms

        require_rgb(data, self.name)
        side = bandwidth if bandwidth is not None and bandwidth < resolution else resolution
        with seeded_library_rngs(seed):
            picture = self._resized(data, index, side)
            top, left, height, width = transforms.RandomCrop.get_params(picture, (side, side))
            picture = picture.crop((left, top, left + width, top + height))
        return to_plus_minus_one(picture)

    def eval_sample(self, data: ImageClassificationData, index: int, resolution: int) -> torch.Tensor:
        from torchvision.transforms.v2 import functional as tvf

        require_rgb(data, self.name)
        picture = self._resized(data, index, resolution, reduce=False)
        return to_plus_minus_one(tvf.center_crop(picture, [resolution, resolution]))

    def _resized(self, data: ImageClassificationData, index: int, side: int, reduce: bool = True) -> Image.Image:
        """Decoded (flipped first with ``hflip``, as VAR inserts the flip at index 0), short side Lanczos-resized."""
        import torch
        from PIL import Image
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms.v2 import functional as tvf

        from curricurun.data.decode import draft_request

        mid = round(self.params.mid_reso * side)

        def fit(picture: Image.Image) -> tuple[int, int] | None:
            width, height = picture.size
            return draft_request(picture.size, (0, 0, width, height), mid)

        use_fit = fit if reduce and self.params.reduced_decode else None
        picture, _ = data.picture(index, use_fit)
        if reduce and self.params.hflip and torch.rand(1) < 0.5:
            picture = picture.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return tvf.resize(picture, [mid], interpolation=InterpolationMode.LANCZOS)
