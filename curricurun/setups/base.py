"""The setup protocol: what the engine asks of a model family (classification, VQ-VAE, VAR, Pyramid-Flow, ...).

A setup owns the model, its loss and its metrics; the engine owns data order, curriculum, optimisation,
precision, checkpoints and processes. Frozen helpers a setup needs (VAR's tokenizer, a latent autoencoder) are
held by the setup, never returned from ``build_model``: they must not be trained, decayed or checkpointed. A setup
moves them lazily to the device of the first batch it sees.

Batches are dicts of tensors on the training device: ``image`` float ``[B, C, H, W]`` normalised to [-1, 1]
(``(x - 0.5) / 0.5``), ``label`` long ``[B]``, ``index`` long ``[B]`` (the sample's position in the split).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel

from curricurun.curriculum.base import StageState

if TYPE_CHECKING:  # annotations only: a recipe can be validated without importing torch
    import torch


@dataclass(frozen=True)
class DataShape:
    """What a setup needs to know about the data to build its model (None when the data is not loaded)."""

    channels: int
    num_classes: int
    image_size: int


@dataclass(frozen=True)
class SampleOptions:
    """Options of ``curricurun sample``; each generative setup uses the ones that mean something to it."""

    cfg: float = 1.5
    top_k: int = 0
    top_p: float = 0.0
    steps: int | None = None
    per_class: int = 1


@runtime_checkable
class Setup(Protocol):
    """Required members. Construct with ``Setup(params, data_shape_or_None)``.

    ``channels`` is the number of image channels the model reads (``inspect-schedule --measure`` builds its
    random images with it).
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    Params: ClassVar[type[BaseModel]]
    channels: int

    def build_model(self) -> torch.nn.Module:
        """The trainable model only (built under ``torch.device("meta")`` by ``inspect-model``)."""

    def training_loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor], stage: StageState) -> torch.Tensor:
        """Scalar loss of one micro-batch at the curriculum stage ``stage``."""

    def evaluation_sums(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per-batch SUMS (tensors of any shape, e.g. code histograms): summed over batches and ranks."""

    @staticmethod
    def metrics_from_sums(sums: dict[str, torch.Tensor | float]) -> dict[str, float]:
        """Metrics from the summed values (scalars arrive as floats, other shapes as CPU tensors)."""


@runtime_checkable
class SetupWithPictures(Protocol):
    """Optional: called on the main process after each evaluation with the first evaluation batch."""

    def after_evaluation(
        self, model: torch.nn.Module, batch: dict[str, torch.Tensor], step: int, run_dir: Path
    ) -> None: ...


@runtime_checkable
class ExportingSetup(Protocol):
    """Optional: called on the main process once training ends (after the final checkpoint)."""

    def export(self, model: torch.nn.Module, run_dir: Path) -> Path | None: ...


@runtime_checkable
class GenerativeSetup(Protocol):
    """Optional: ``curricurun sample`` calls it; returns images ``[N, C, H, W]`` in [0, 1], class by class."""

    def sample(self, model: torch.nn.Module, classes: list[int], seed: int, options: SampleOptions) -> torch.Tensor: ...


@runtime_checkable
class SetupWithOwnData(Protocol):
    """Optional: the setup loads and serves its samples itself (pose/detection ground truth, not class labels).

    The engine keeps the data ORDER (the planned, rank-aware, resumable sampler and its per-sample seeds); the
    setup owns what a sample IS: ``load_split`` returns a split object with ``len()`` (and ``channels``),
    ``training_sample`` builds one augmented sample from a :class:`~curricurun.data.sampler.SampleKey`
    (index, stage resolution, per-sample seed: the result must depend on nothing else, so it is the same on any
    worker or rank) at ``key.resolution or full_resolution`` (``data.image_size``), ``evaluation_sample`` one
    deterministic evaluation sample at ``resolution``, and ``collate`` stacks them into
    a batch dict that holds at least ``image`` and ``index``. Training-sample transforms may read other samples
    of the split (mosaic), which is why the split object, not a decoded image, is passed in.
    """

    def load_split(self, data, split: str, max_samples: int | None): ...

    def training_sample(self, source, key, full_resolution: int) -> dict: ...

    def evaluation_sample(self, source, index: int, resolution: int) -> dict: ...

    def collate(self, samples: list[dict]) -> dict[str, torch.Tensor]: ...


@runtime_checkable
class SetupWithRecordMetrics(Protocol):
    """Optional: metrics that are not sums (COCO AP ranks every prediction of the split by score).

    ``evaluation_step`` replaces ``evaluation_sums``: it returns the batch's sums and its per-sample records
    (any picklable objects). The engine gathers the records of every rank in sample order (shards are contiguous)
    and every rank calls ``metrics_from_records`` on the whole list, so early stopping agrees across ranks.
    """

    def evaluation_step(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[dict, list]: ...

    def metrics_from_records(self, records: list) -> dict[str, float]: ...


@runtime_checkable
class SetupWithRecipeChecks(Protocol):
    """Optional: recipe fields that mean nothing to this setup, reported by ``validate`` as ``(location, message)``."""

    @staticmethod
    def recipe_problems(recipe) -> list[tuple[tuple[str, ...], str]]: ...


@runtime_checkable
class SetupWithMeasureBatch(Protocol):
    """Optional: ``inspect-schedule --measure`` times its steps on this batch instead of random images + labels."""

    def measure_batch(self, stage: StageState, batch_size: int) -> dict[str, torch.Tensor]: ...


@dataclass(frozen=True)
class SetupHooks:
    """The optional members of one setup, each the setup itself when it provides them and None when not.

    The engine and the commands read a setup's optional hooks only through :func:`optional_hooks`, so the
    Protocols above are the one declaration of each hook's name and signature.
    """

    pictures: SetupWithPictures | None
    exporter: ExportingSetup | None
    generator: GenerativeSetup | None
    own_data: SetupWithOwnData | None
    record_metrics: SetupWithRecordMetrics | None
    recipe_checks: SetupWithRecipeChecks | None
    measure: SetupWithMeasureBatch | None


def optional_hooks(setup: Any) -> SetupHooks:
    """Which optional Protocols a setup (instance or class) implements: the one place that checks them."""

    def provided(protocol: type) -> Any:
        return setup if isinstance(setup, protocol) else None

    return SetupHooks(
        pictures=provided(SetupWithPictures),
        exporter=provided(ExportingSetup),
        generator=provided(GenerativeSetup),
        own_data=provided(SetupWithOwnData),
        record_metrics=provided(SetupWithRecordMetrics),
        recipe_checks=provided(SetupWithRecipeChecks),
        measure=provided(SetupWithMeasureBatch),
    )
