"""``pyramid_flow``: Pyramid-Flow's image transform (jy0205/Pyramid-Flow ``dataset/dataset_cls.py`` at 3040d71).

``ImageTextDataset.__getitem__`` (L93-114): resize with bicubic (antialias) so that the picture covers the
target size (``get_resize_size``, L81-88: for a square target, the short side to ``size``), then
``RandomCrop`` (``crop_mode='random'``, the default of L39 that ``train/train_pyramid_flow.py`` L391-396 keeps),
then ``ToTensor`` and ``Normalize(0.5, 0.5)`` into [-1, 1] (L56-61). No flip. Evaluation takes the centre crop
(the ``crop_mode='center'`` branch, L107-108). curricurun trains square images, so the 1:1 bucket is the one
used (the reference's 384p buckets 512², 384×640, 640×384 need its aspect-ratio bucketing).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from curricurun.data.pipelines.base import PipelineParams, require_rgb, seeded_library_rngs, to_normalised_tensor

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from curricurun.data.sources import ImageClassificationData

_HALF = (0.5, 0.5, 0.5)


class PyramidFlowParams(PipelineParams):
    pass


class PyramidFlowPipeline:
    name: ClassVar[str] = "pyramid_flow"
    summary: ClassVar[str] = "Pyramid-Flow: short side bicubic to size, random crop (eval: centre), [-1, 1]"
    reference: ClassVar[str] = "jy0205/Pyramid-Flow dataset/dataset_cls.py:81-114"
    Params: ClassVar[type[PipelineParams]] = PyramidFlowParams

    def __init__(self, params: PyramidFlowParams) -> None:
        self.params = params

    def describe(self) -> str:
        return "pyramid_flow: short side bicubic (antialias) to size → random crop (eval: centre) → Normalize(0.5, 0.5)"

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
        with seeded_library_rngs(seed):
            picture = _resized(data, index, resolution)
            top, left, height, width = transforms.RandomCrop.get_params(picture, (resolution, resolution))
            picture = picture.crop((left, top, left + width, top + height))
        return to_normalised_tensor(picture, _HALF, _HALF)

    def eval_sample(self, data: ImageClassificationData, index: int, resolution: int) -> torch.Tensor:
        from torchvision.transforms.v2 import functional as tvf

        require_rgb(data, self.name)
        picture = tvf.center_crop(_resized(data, index, resolution), [resolution, resolution])
        return to_normalised_tensor(picture, _HALF, _HALF)


def _resized(data: ImageClassificationData, index: int, side: int) -> Image.Image:
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as tvf

    picture, _ = data.picture(index)
    return tvf.resize(picture, [side], interpolation=InterpolationMode.BICUBIC, antialias=True)
