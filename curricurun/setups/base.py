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
from typing import ClassVar, Protocol, runtime_checkable

import torch
from pydantic import BaseModel

from curricurun.curriculum.base import StageState


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
    """Required members. Construct with ``Setup(params, data_shape_or_None)``."""

    name: ClassVar[str]
    summary: ClassVar[str]
    Params: ClassVar[type[BaseModel]]

    def build_model(self) -> torch.nn.Module:
        """The trainable model only (built under ``torch.device("meta")`` by ``inspect-model``)."""

    def training_loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor], stage: StageState) -> torch.Tensor:
        """Scalar loss of one micro-batch at the curriculum stage ``stage``."""

    def evaluation_sums(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per-batch SUMS (tensors of any shape, e.g. code histograms): summed over batches and ranks."""

    @staticmethod
    def metrics_from_sums(sums: dict[str, torch.Tensor | float]) -> dict[str, float]:
        """Metrics from the summed values (scalars arrive as floats, other shapes as CPU tensors)."""


class SetupWithPictures(Protocol):
    """Optional: called on the main process after each evaluation with the first evaluation batch."""

    def after_evaluation(
        self, model: torch.nn.Module, batch: dict[str, torch.Tensor], step: int, run_dir: Path
    ) -> None: ...


class ExportingSetup(Protocol):
    """Optional: called on the main process once training ends (after the final checkpoint)."""

    def export(self, model: torch.nn.Module, run_dir: Path) -> Path | None: ...


class GenerativeSetup(Protocol):
    """Optional: ``curricurun sample`` calls it; returns images ``[N, C, H, W]`` in [0, 1], class by class."""

    def sample(self, model: torch.nn.Module, classes: list[int], seed: int, options: SampleOptions) -> torch.Tensor: ...
