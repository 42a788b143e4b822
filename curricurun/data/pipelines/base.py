"""What every named image pipeline shares: its parameter model, per-sample seeding, and the contract.

Per-sample determinism with library ops. timm's and torchvision's transforms draw from the process-global RNGs:
timm's ``RandomResizedCropAndInterpolation`` and ``AugmentOp`` from python's ``random``, timm's ``RandAugment``
op choice from numpy's global generator, torchvision's flip and ``RandomCrop`` from torch's default generator.
:func:`seeded_library_rngs` seeds all three from the sample's seed (which travels in its
:class:`~curricurun.data.sampler.SampleKey`), so a sample's tensor depends only on its key, whichever worker or
rank builds it. In the main process (``num_workers: 0``) the three states are restored afterwards, so the
model-side randomness the trainer seeds per step is left alone; DataLoader workers skip that (~10 µs).
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, ClassVar, Protocol

from curricurun.recipe.fields import Params

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from curricurun.data.sources import ImageClassificationData

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # timm.data.constants IMAGENET_DEFAULT_MEAN
IMAGENET_STD = (0.229, 0.224, 0.225)  # timm.data.constants IMAGENET_DEFAULT_STD


class PipelineParams(Params):
    """Base of every pipeline's parameters: the setups' and curricula's ``Params`` rules (unknown keys rejected,
    validate suggesting the closest name; a YAML bool is no number with ``Int`` / ``Float``; no .inf / .nan)."""


class Pipeline(Protocol):
    """A named pipeline: ``train_sample`` for the stage a sample's key carries, ``eval_sample`` for evaluation.

    Implementations set ``name`` (the recipe's ``data.pipeline.name``), ``summary`` (one line), ``reference``
    (the primary source: repository path and line) and ``Params``. They must pickle (DataLoader workers).
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    reference: ClassVar[str]
    Params: ClassVar[type[PipelineParams]]

    def train_sample(
        self,
        data: ImageClassificationData,
        index: int,
        resolution: int,
        magnitude: float | None,
        bandwidth: int | None,
        seed: int,
    ) -> torch.Tensor: ...

    def eval_sample(self, data: ImageClassificationData, index: int, resolution: int) -> torch.Tensor: ...

    def describe(self) -> str:
        """One line: the ops in order with their settings (``inspect-schedule`` prints it)."""
        ...


@contextlib.contextmanager
def seeded_library_rngs(seed: int) -> Iterator[None]:
    """Seed python's ``random``, numpy's global RNG and torch's default CPU generator from ``seed``."""
    import numpy as np
    import torch
    from torch.utils.data import get_worker_info

    restore = get_worker_info() is None
    saved = (random.getstate(), np.random.get_state(), torch.get_rng_state()) if restore else None
    random.seed(seed)
    np.random.seed([seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF])
    torch.default_generator.manual_seed(seed)
    try:
        yield
    finally:
        if saved is not None:
            random.setstate(saved[0])
            np.random.set_state(saved[1])
            torch.set_rng_state(saved[2])


def to_normalised_tensor(
    picture: Image.Image | torch.Tensor, mean: Sequence[float], std: Sequence[float]
) -> torch.Tensor:
    """torchvision's ``ToTensor`` then ``Normalize``, the same float operations in the same order (bit-equal).

    ``picture`` is a PIL picture or a uint8 ``[C, H, W]`` tensor (on any device: the arithmetic runs there).
    """
    import numpy as np
    import torch

    if isinstance(picture, torch.Tensor):
        pixels = picture
    else:
        array = np.array(picture)  # writable (torch.from_numpy shares it), as ToTensor copies
        pixels = torch.from_numpy(array[:, :, None] if array.ndim == 2 else array).permute(2, 0, 1).contiguous()
    values = pixels.float().div_(255)
    mean_t = torch.as_tensor(mean, dtype=torch.float32, device=values.device).view(-1, 1, 1)
    std_t = torch.as_tensor(std, dtype=torch.float32, device=values.device).view(-1, 1, 1)
    return values.sub_(mean_t).div_(std_t)


def to_plus_minus_one(picture: Image.Image) -> torch.Tensor:
    """``ToTensor`` then ``x + x − 1``: [0, 1] → [-1, 1] as VAR's ``normalize_01_into_pm1`` (utils/data.py:8-9)."""
    import numpy as np
    import torch

    array = np.array(picture)  # writable (torch.from_numpy shares it), as ToTensor copies
    pixels = torch.from_numpy(array[:, :, None] if array.ndim == 2 else array).permute(2, 0, 1).contiguous()
    values = pixels.float().div_(255)
    return values.add(values).add_(-1)


def require_rgb(data: ImageClassificationData, name: str) -> None:
    """Reference pipelines read RGB photos (they ``convert('RGB')``): refuse grey data with one line."""
    from curricurun.errors import UserError

    if data.channels != 3:
        raise UserError(
            f"data.pipeline: '{name}' reads RGB images, but {data.description} holds {data.channels}-channel "
            "images; use 'small_images' for grey data"
        )
