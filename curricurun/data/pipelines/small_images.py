"""``small_images``: the pad-crop / flip path for 28-64 px data (Fashion-MNIST, CIFAR-style), kept fast.

Per-sample ops from ``data.augment`` (``random_crop_padding``, ``hflip``, ``randaugment_magnitude``,
``randaugment_num_ops``), then the stage's resize and ``(x/255 − mean)/std``: :class:`~curricurun.data.transforms.
StageTransform` (train) and :class:`~curricurun.data.transforms.EvalTransform` (eval), whose resizing is two small
matrix products on the stage's pixels. RandAugment, when asked for, is timm's. The reference is the CIFAR
recipe of Krizhevsky et al. / He et al. 2016 §4.2 (4-px zero padding, random crop, flip).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from curricurun.data.pipelines.base import PipelineParams
from curricurun.recipe.fields import Float

if TYPE_CHECKING:
    import torch

    from curricurun.data.sources import ImageClassificationData


class SmallImagesParams(PipelineParams):
    mean: tuple[Float, ...] = Field((0.5,), description="Per-channel mean (one value applies to every channel).")
    std: tuple[Float, ...] = Field((0.5,), description="Per-channel std; the default maps 0..255 to [-1, 1].")


class SmallImagesPipeline:
    name: ClassVar[str] = "small_images"
    summary: ClassVar[str] = "28-64 px data: pad-crop, flip, timm RandAugment (data.augment), stage resize, mean/std"
    reference: ClassVar[str] = "He et al. 2016 §4.2 (CIFAR pad-crop-flip)"
    Params: ClassVar[type[PipelineParams]] = SmallImagesParams

    def __init__(self, params: SmallImagesParams, augment: Any = None) -> None:
        from curricurun.data.transforms import EvalTransform, StageTransform

        self.params = params
        options = {}
        if augment is not None:
            options = {
                "hflip": augment.hflip,
                "random_crop_padding": augment.random_crop_padding,
                "randaugment_num_ops": augment.randaugment_num_ops,
                "fixed_magnitude": augment.randaugment_magnitude,
            }
        self.train = StageTransform(params.mean, params.std, **options)
        self.eval = EvalTransform(params.mean, params.std)

    def describe(self) -> str:
        t = self.train
        steps = [f"pad {t.random_crop_padding} + random crop"] if t.random_crop_padding else []
        steps += ["flip 0.5"] if t.hflip else []
        if t.fixed_magnitude is not None:
            steps.append(f"timm RandAugment n={t.randaugment_num_ops} m={t.fixed_magnitude:g}")
        steps += ["resize to stage size", f"mean {list(self.params.mean)} std {list(self.params.std)}"]
        return "small_images: " + " → ".join(steps)

    def train_sample(
        self,
        data: ImageClassificationData,
        index: int,
        resolution: int,
        magnitude: float | None,
        bandwidth: int | None,
        seed: int,
    ) -> torch.Tensor:
        return self.train(data.image(index), resolution, magnitude, bandwidth, seed)

    def eval_sample(self, data: ImageClassificationData, index: int, resolution: int) -> torch.Tensor:
        return self.eval(data.image(index), resolution)
