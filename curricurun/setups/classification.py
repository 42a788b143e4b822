"""Image classification with any timm model: the engine's first user and the demo's setup.

The number of input channels and classes come from the data unless the recipe states them, so the same
recipe runs on Fashion-MNIST (1 channel) or an RGB dataset by changing only the data section.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, Field, field_validator

from curricurun.errors import UserError
from curricurun.recipe.fields import Float, Int, Params
from curricurun.setups.from_data import from_recipe_or_data
from curricurun.setups.timm_names import unknown_model_message

if TYPE_CHECKING:  # torch and timm are imported where used, so validating a recipe imports neither
    import torch

    from curricurun.curriculum.base import StageState
    from curricurun.setups.base import DataShape


_FILE_LOADING_KEYS = frozenset(
    {"checkpoint_path", "pretrained_cfg", "pretrained_cfg_overlay", "pretrained_strict", "cache_dir"}
)
_SETUP_OWNED_KEYS = {
    "pretrained": "pretrained weights come from a local file, setup.weights",
    "in_chans": "use setup.in_channels (default: from the data)",
    "num_classes": "use setup.num_classes (default: from the data)",
}


class ClassificationParams(Params):
    """Recipe fields of the ``classification`` setup (``setup:`` section, besides ``name``)."""

    model: str = Field(description="timm model name, e.g. resnet18, deit_small_patch16_224")
    num_classes: Int | None = Field(default=None, gt=0, description="default: from the data")
    in_channels: Int | None = Field(default=None, gt=0, description="default: from the data")
    weights: str | None = Field(default=None, description="local .safetensors file to start from")
    label_smoothing: Float = Field(default=0.0, ge=0.0, lt=1.0)
    drop_path_rate: Float | None = Field(default=None, ge=0.0, lt=1.0)
    drop_rate: Float | None = Field(default=None, ge=0.0, lt=1.0)
    model_kwargs: dict[str, Any] = Field(default_factory=dict, description="extra timm.create_model arguments")

    @field_validator("model_kwargs")
    @classmethod
    def _no_file_loading_or_clashing_keys(cls, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Weights come through ``weights`` (safetensors only): no ``model_kwargs`` key may make timm read a file
        (``checkpoint_path`` goes to ``torch.load``; a ``pretrained_cfg`` / ``pretrained_cfg_overlay`` may name a
        ``file``; timm ``_builder.py`` build_model_with_cfg), and the keys this setup passes itself are its fields."""
        for key in kwargs:
            if key in _FILE_LOADING_KEYS:
                raise ValueError(f"'{key}' would load a file: start from a .safetensors file with setup.weights")
            if key in _SETUP_OWNED_KEYS:
                raise ValueError(f"'{key}' is set by the setup: {_SETUP_OWNED_KEYS[key]}")
        return kwargs

    @field_validator("model")
    @classmethod
    def _known_to_timm(cls, name: str) -> str:
        """Checked at validation time, so `validate` catches a typo before any compute is spent."""
        problem = unknown_model_message(name)
        if problem is not None:
            raise ValueError(problem)
        return name


class ClassificationSetup:
    """Cross-entropy classification of a timm model, reporting top-1 and top-5 accuracy."""

    name: ClassVar[str] = "classification"
    summary: ClassVar[str] = "image classification with any timm model (label smoothing, top-1/top-5)"
    Params: ClassVar[type[BaseModel]] = ClassificationParams

    def __init__(self, params: ClassificationParams, data: DataShape | None):
        self.params = params
        self.channels, self.num_classes = from_recipe_or_data(params, data, "in_channels", "num_classes")

    def build_model(self) -> torch.nn.Module:
        """Create the timm model; load local safetensors weights when the recipe names them."""
        import timm

        from curricurun.weights import load_safetensors_weights

        kwargs = dict(self.params.model_kwargs)
        for key in ("drop_path_rate", "drop_rate"):
            if getattr(self.params, key) is not None:
                kwargs[key] = getattr(self.params, key)
        try:
            model = timm.create_model(
                self.params.model, pretrained=False, in_chans=self.channels, num_classes=self.num_classes, **kwargs
            )
        except (TypeError, ValueError) as error:
            if not self.params.model_kwargs:
                raise
            # An argument the model does not take, or one of the wrong type: timm passes them to the model's class.
            first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise UserError(
                f"setup.model_kwargs: timm model '{self.params.model}' refused {sorted(self.params.model_kwargs)}:"
                f" {first_line}"
            ) from None
        if self.params.weights:
            load_safetensors_weights(model, Path(self.params.weights))
        return model

    def training_loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor], stage: StageState) -> torch.Tensor:
        """Cross-entropy with label smoothing, against ``batch["target"]`` (soft, mixup/cutmix) when present.

        With probability targets ``F.cross_entropy`` smooths them as ``target·(1 − ε) + ε/K``, which equals
        timm's smoothed mixup targets (curricurun/data/mixing.py), so ε stays this one setup parameter.
        """
        import torch.nn.functional as F

        logits = model(batch["image"])
        target = batch.get("target", batch["label"])
        return F.cross_entropy(
            logits.float(),
            target.float() if target.is_floating_point() else target,
            label_smoothing=self.params.label_smoothing,
        )

    def evaluation_sums(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per-batch sums (never means) so that summing across ranks gives exact metrics."""
        import torch
        import torch.nn.functional as F

        with torch.no_grad():
            logits = model(batch["image"]).float()
            labels = batch["label"]
            top5 = logits.topk(min(5, logits.shape[1]), dim=1).indices
            return {
                "loss_sum": F.cross_entropy(logits, labels, reduction="sum"),
                "top1_correct": (top5[:, 0] == labels).sum().float(),
                "top5_correct": (top5 == labels[:, None]).any(dim=1).sum().float(),
                "count": torch.tensor(float(labels.numel()), device=labels.device),
            }

    @staticmethod
    def metrics_from_sums(sums: dict[str, float]) -> dict[str, float]:
        count = max(sums["count"], 1.0)
        return {
            "loss": sums["loss_sum"] / count,
            "top1": sums["top1_correct"] / count,
            "top5": sums["top5_correct"] / count,
        }
