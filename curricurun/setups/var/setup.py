"""The ``var`` setup: VAR's next-scale prediction transformer trained on a frozen multi-scale tokenizer.

The tokenizer (a directory written by the ``vqvae`` setup's export, or any tokenizer in that format) turns each
batch's images into the token pyramid: the ground-truth indices and the teacher-forcing inputs. It is held here,
not in the trained model, so it is never decayed, clipped or checkpointed, and it is moved lazily to the device of
the first batch. The curriculum's stage (``progressive_scales``) truncates the pyramid to its first scales; the
images are never resized (VAR ``utils/arg_util.py:252``, ``train.py:43``).

The transformer's shape depends only on the vocabulary size, the code width Cvae and the patch numbers, so those
are recipe fields (VAR's defaults: 4096, 32, the 256 set) and ``inspect-model`` needs no tokenizer; they are
checked against the tokenizer's ``tokenizer.json`` by ``validate`` when that file already exists, and always when
the tokenizer is loaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, Field, field_validator, model_validator

from curricurun.curriculum.base import StageState
from curricurun.errors import UserError
from curricurun.recipe.fields import Float, Int, Params
from curricurun.setups.base import DataShape, SampleOptions
from curricurun.setups.from_data import from_recipe_or_data
from curricurun.setups.var.model import PATCH_NUM_SETS, VarConfig, VarTransformer
from curricurun.setups.var.sampling import generate
from curricurun.setups.var.tokens import (
    per_scale_sums,
    stage_scale_index,
    token_weights,
    truncated_pyramid,
    weighted_token_loss,
)

TOKENIZER_CONFIG = "tokenizer.json"  # the vqvae export's configuration file (curricurun/setups/vqvae/tokenizer.py)


class VarParams(Params):
    """Recipe fields of the ``var`` setup; defaults are VAR's (``utils/arg_util.py:33-81``)."""

    tokenizer: str | None = Field(
        default=None,
        description="directory of the frozen tokenizer (tokenizer.safetensors + tokenizer.json, the vqvae setup's "
        "export); needed to train, evaluate and sample, not to validate or inspect-model",
    )
    weights: str | None = Field(
        default=None,
        description="initial weights: a model.safetensors file or a directory holding one (curricurun import-weights "
        "of VAR's var_d16.pth … or a checkpoint); training starts from them",
    )
    depth: Int = Field(default=16, gt=0, description="blocks (VAR --depth)")
    width: Int | None = Field(default=None, gt=0, description="default 64·depth")
    num_heads: Int | None = Field(default=None, gt=0, description="default depth")
    mlp_ratio: Float = Field(default=4.0, gt=0)
    drop_path_rate: Float | None = Field(default=None, ge=0, lt=1, description="default 0.1·depth/24")
    shared_adaln: bool = Field(default=False, description="VAR --saln: one adaLN projection for all blocks")
    attn_l2_norm: bool = Field(default=True, description="VAR --anorm: L2-normalised q/k, learned per-head scale")
    class_dropout: Float = Field(default=0.1, ge=0, lt=1, description="label → unconditional class, for guidance")
    patch_nums: tuple[Int, ...] = Field(
        default=PATCH_NUM_SETS["256"], description="token-map sides, coarse to fine, or VAR's alias 256 / 512 / 1024"
    )
    vocab_size: Int = Field(default=4096, gt=1, description="V: the tokenizer's codebook size")
    token_channels: Int = Field(default=32, gt=0, description="Cvae: the tokenizer's code width")
    num_classes: Int | None = Field(default=None, gt=0, description="default: from the data")
    in_channels: Int | None = Field(default=None, gt=0, description="image channels; default: from the data")
    label_smoothing: Float = Field(default=0.0, ge=0, lt=1, description="VAR --ls")
    init_std: Float = Field(default=-1.0, description="VAR --ini; negative: √(1/(3·width))")
    init_head: Float = Field(default=0.02, ge=0, description="VAR --hd")
    init_adaln: Float = Field(default=0.5, ge=0, description="VAR --aln")
    init_adaln_gamma: Float = Field(default=1e-5, ge=0, description="VAR --alng")
    preview_classes: Int = Field(default=0, ge=0, description="after each evaluation, one sample per class (0: none)")

    @field_validator("patch_nums", mode="before")
    @classmethod
    def _alias(cls, value: Any) -> Any:
        if isinstance(value, (int, str)) and str(value) in PATCH_NUM_SETS:
            return PATCH_NUM_SETS[str(value)]
        if isinstance(value, (int, str)):
            raise ValueError(f"expected a list of token-map sides or one of {', '.join(PATCH_NUM_SETS)}, got {value!r}")
        return value

    @field_validator("patch_nums")
    @classmethod
    def _increasing(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or any(p <= 0 for p in value) or list(value) != sorted(set(value)):
            raise ValueError(f"expected strictly increasing positive token-map sides, got {list(value)}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> VarParams:
        width, heads = self.width or 64 * self.depth, self.num_heads or self.depth
        if width % heads:
            raise ValueError(f"width {width} is not divisible by num_heads {heads}")
        if self.tokenizer is not None:
            problems = tokenizer_mismatches(read_tokenizer_config(Path(self.tokenizer)), self)
            if problems:
                raise ValueError(f"does not match the tokenizer {self.tokenizer}: {'; '.join(problems)}")
        return self


def read_tokenizer_config(directory: Path) -> dict[str, Any] | None:
    """The model configuration in ``directory/tokenizer.json``, or None when there is no such file yet."""
    path = directory / TOKENIZER_CONFIG
    if not path.is_file():
        return None
    try:
        return dict(json.loads(path.read_text())["config"])
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path} is not a tokenizer configuration ({error})") from None


def tokenizer_mismatches(config: dict[str, Any] | None, params: VarParams) -> list[str]:
    """Each field whose value differs between the tokenizer's configuration and the setup's parameters."""
    if config is None:
        return []
    pairs = [
        ("vocab_size", config.get("vocab_size"), params.vocab_size),
        ("token_channels", config.get("z_channels"), params.token_channels),
        ("patch_nums", tuple(config.get("patch_nums", ())), params.patch_nums),
    ]
    if params.in_channels is not None:
        pairs.append(("in_channels", config.get("in_channels"), params.in_channels))
    return [f"{name} {ours!r} (tokenizer: {theirs!r})" for name, theirs, ours in pairs if theirs != ours]


class VarSetup:
    """VAR (Tian et al. 2024): class-conditional next-scale prediction, progressive scales, guided sampling."""

    name: ClassVar[str] = "var"
    summary: ClassVar[str] = "VAR: next-scale prediction on a frozen multi-scale tokenizer (progressive scales, CFG)"
    Params: ClassVar[type[BaseModel]] = VarParams

    def __init__(self, params: VarParams, data: DataShape | None):
        self.params = params
        (classes,) = from_recipe_or_data(params, data, "num_classes")
        self.data = data
        self.config = model_config(params, classes)
        self.patch_nums = params.patch_nums
        self._tokenizer = None

    def build_model(self) -> torch.nn.Module:
        """VAR's transformer, freshly initialised or, with ``setup.weights``, holding those weights."""
        from curricurun.weights import load_safetensors_weights

        model = VarTransformer(self.config)
        if self.params.weights:
            path = Path(self.params.weights)
            load_safetensors_weights(model, path / "model.safetensors" if path.is_dir() else path)
        return model

    @property
    def num_classes(self) -> int:
        """Class labels the transformer is conditioned on (the recipe's, else the data's)."""
        return self.config.num_classes

    @property
    def channels(self) -> int:
        """Image channels: the recipe's, else the data's, else the tokenizer's (loaded for it)."""
        if self.params.in_channels is not None:
            return self.params.in_channels
        if self.data is not None:
            return self.data.channels
        if self._tokenizer is None:
            self._tokenizer = self._load_tokenizer()
        return self._tokenizer.in_channels

    def tokenizer(self, device: torch.device):
        """The frozen tokenizer on ``device``, loaded on first use and checked against the recipe and the data."""
        if self._tokenizer is None:
            self._tokenizer = self._load_tokenizer()
        if next(self._tokenizer.parameters()).device != device:
            self._tokenizer = self._tokenizer.to(device)
        return self._tokenizer

    def _load_tokenizer(self):
        from curricurun.setups.vqvae.tokenizer import load_tokenizer

        if self.params.tokenizer is None:
            raise UserError("setup.tokenizer: expected the directory of a trained tokenizer, got nothing")
        tokenizer = load_tokenizer(self.params.tokenizer)
        problems = tokenizer_mismatches(json.loads(tokenizer.config.to_json()), self.params)
        data = self.data
        if data is not None and tokenizer.in_channels != data.channels:
            problems.append(f"data channels {data.channels} (tokenizer: {tokenizer.in_channels})")
        if data is not None and tokenizer.image_size != data.image_size:
            # VAR never resizes for its curriculum: it loads every image at the tokenizer's size (``arg_util.py:252``).
            problems.append(f"data.image_size {data.image_size} (tokenizer: {tokenizer.image_size})")
        if problems:
            raise UserError(
                f"setup.tokenizer: {self.params.tokenizer} does not match the recipe: {'; '.join(problems)}"
            )
        return tokenizer

    def stage_tokens(self, batch: dict[str, torch.Tensor], scale_index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(targets [B, e_p], teacher-forcing inputs [B, e_p − p_0², Cvae]) of the batch's first p + 1 scales.

        A batch may carry them already (``tokens`` [B, L], ``token_inputs`` [B, L − p_0², Cvae]): ``measure_batch``
        does, so ``inspect-schedule --measure`` times the transformer without a tokenizer.
        """
        end = self.config.token_ends[scale_index]
        if "tokens" in batch:
            first = self.patch_nums[0] ** 2
            return batch["tokens"][:, :end], batch["token_inputs"][:, : end - first]
        return truncated_pyramid(self.tokenizer(batch["image"].device), batch["image"], scale_index)

    def training_loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor], stage: StageState) -> torch.Tensor:
        """VAR's loss at the stage: mean over images of Σ_t w_t·CE_t, w_t = multiplier/L_full (trainer.py:112-120)."""
        scale_index = stage_scale_index(stage, len(self.patch_nums))
        targets, inputs = self.stage_tokens(batch, scale_index)
        logits = model(batch["label"], inputs, scale_index=scale_index)
        weights = token_weights(self.patch_nums, stage, scale_index, targets.device)
        return weighted_token_loss(logits, targets, weights, self.params.label_smoothing)

    @torch.no_grad()
    def evaluation_sums(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per-scale sums over the full pyramid (evaluation is never truncated, as VAR resets prog_si after a step)."""
        last = len(self.patch_nums) - 1
        targets, inputs = self.stage_tokens(batch, last)
        logits = model(batch["label"], inputs, scale_index=last)
        return per_scale_sums(logits, targets, self.patch_nums)

    @staticmethod
    def metrics_from_sums(sums: dict[str, torch.Tensor | float]) -> dict[str, float]:
        """``loss`` and ``accuracy`` over every token, ``*_tail`` of the last scale (VAR's Lt / Acct), and per scale
        ``loss_scale<k>`` / ``accuracy_scale<k>``."""
        loss = torch.as_tensor(sums["loss_sum"], dtype=torch.float64).reshape(-1)
        correct = torch.as_tensor(sums["correct"], dtype=torch.float64).reshape(-1)
        tokens = torch.as_tensor(sums["tokens"], dtype=torch.float64).reshape(-1).clamp_min(1.0)
        metrics = {
            "loss": float(loss.sum() / tokens.sum()),
            "accuracy": float(correct.sum() / tokens.sum()),
            "loss_tail": float(loss[-1] / tokens[-1]),
            "accuracy_tail": float(correct[-1] / tokens[-1]),
        }
        for k in range(loss.numel()):
            metrics[f"loss_scale{k}"] = float(loss[k] / tokens[k])
        for k in range(loss.numel()):
            metrics[f"accuracy_scale{k}"] = float(correct[k] / tokens[k])
        return metrics

    def measure_batch(self, stage: StageState, batch_size: int) -> dict[str, torch.Tensor]:
        """Random labels, tokens and teacher-forcing inputs of the full pyramid (for ``inspect-schedule --measure``)."""
        length, first = self.config.token_ends[-1], self.patch_nums[0] ** 2
        return {
            "label": torch.randint(self.config.num_classes, (batch_size,)),
            "tokens": torch.randint(self.config.vocab_size, (batch_size, length)),
            "token_inputs": torch.randn(batch_size, length - first, self.config.token_channels),
        }

    def after_evaluation(
        self, model: torch.nn.Module, batch: dict[str, torch.Tensor], step: int, run_dir: Path
    ) -> None:
        """``samples/step-<N>.png``: one sample per class for the first ``preview_classes`` classes, seed 0."""
        from curricurun.images import save_grid

        count = min(self.params.preview_classes, self.config.num_classes)
        if count:
            images = self.sample(model, list(range(count)), 0, SampleOptions())
            save_grid(images, run_dir / "samples" / f"step-{step:08d}.png", columns=count, upscale=2)

    @torch.no_grad()
    def sample(self, model: torch.nn.Module, classes: list[int], seed: int, options: SampleOptions) -> torch.Tensor:
        """Images [N, C, H, W] in [0, 1], ``options.per_class`` per class, class by class (VAR's sampler)."""
        from curricurun.images import to_unit_range

        if max(classes) >= self.config.num_classes:
            raise UserError(f"--classes: expected class indices below {self.config.num_classes}, got {max(classes)}")
        device = next(model.parameters()).device
        labels = torch.tensor([c for c in classes for _ in range(options.per_class)], device=device)
        generator = torch.Generator(device=device).manual_seed(seed)
        was_training = model.training
        model.eval()
        images = generate(model, self.tokenizer(device), labels, options.cfg, options.top_k, options.top_p, generator)
        model.train(was_training)
        return to_unit_range(images)


def model_config(params: VarParams, num_classes: int) -> VarConfig:
    """VAR's depth rule: width 64·depth, heads = depth, drop path 0.1·depth/24 (``models/__init__.py:19-21``)."""
    depth = params.depth
    return VarConfig(
        depth=depth,
        width=params.width or 64 * depth,
        num_heads=params.num_heads or depth,
        num_classes=num_classes,
        vocab_size=params.vocab_size,
        token_channels=params.token_channels,
        patch_nums=params.patch_nums,
        mlp_ratio=params.mlp_ratio,
        drop_path_rate=0.1 * depth / 24 if params.drop_path_rate is None else params.drop_path_rate,
        shared_adaln=params.shared_adaln,
        attn_l2_norm=params.attn_l2_norm,
        class_dropout=params.class_dropout,
        init_std=params.init_std,
        init_head=params.init_head,
        init_adaln=params.init_adaln,
        init_adaln_gamma=params.init_adaln_gamma,
    )
