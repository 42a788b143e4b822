"""The ``pyramid_flow`` setup: pyramidal flow matching with the stage mix of the ``stage_mixture`` curriculum.

Each training batch is split by position into pyramid stages (``stage_columns`` of the curriculum's
``stage_ratios``: [1, 2, 1] → columns 0, 1, 1, 2), every sample gets its own within-stage time, and the loss is
the unweighted mean of per-sample velocity MSEs (``calculate_loss``, ``pipeline`` L616-637). Evaluation reports the
same loss per stage at fixed times and fixed per-sample noise, so two runs are compared on identical draws.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

import torch
from pydantic import BaseModel, Field, model_validator

from curricurun.curriculum.base import StageState
from curricurun.curriculum.stage_mixture import stage_columns
from curricurun.errors import UserError
from curricurun.recipe.fields import Float, Int, Params
from curricurun.setups.base import DataShape, SampleOptions
from curricurun.setups.from_data import from_recipe_or_data
from curricurun.setups.pyramid_flow.dit import DiTConfig, PyramidDiT
from curricurun.setups.pyramid_flow.latents import AutoencoderLatents, LatentCache, PixelSpace
from curricurun.setups.pyramid_flow.pyramid import (
    clean_pyramid,
    interpolate,
    noise_pyramid,
    stage_endpoints,
    stage_times,
    stage_windows,
    timestep_at,
)
from curricurun.setups.pyramid_flow.sampling import sample_latents

EVAL_NOISE_SEED = 20_241_030
"""Base seed of the evaluation noise: sample i of the eval split always gets the noise of seed base + i."""


class PyramidFlowParams(Params):
    """Recipe fields of the ``pyramid_flow`` setup (``setup:`` section, besides ``name``)."""

    num_classes: Int | None = Field(default=None, gt=0, description="default: from the data")
    in_channels: Int | None = Field(default=None, gt=0, description="image channels; default: from the data")
    image_size: Int | None = Field(
        default=None, gt=0, description="default: data.image_size (needed only when the data is not loaded)"
    )
    stages: Int = Field(default=3, ge=1, le=6, description="pyramid stages K (Pyramid-Flow: 3, sides 1/4, 1/2, 1)")
    gamma: Float = Field(default=1 / 3, gt=0, le=1 / 3, description="scheduler_gamma of the start correction")
    class_dropout: Float = Field(default=0.1, ge=0, lt=1, description="condition dropout for guidance (cfg_rate)")
    latents: Literal["pixel", "vae"] = Field(default="pixel", description="pixel space, or a diffusers AutoencoderKL")
    vae: str | None = Field(default=None, description="hub id of the AutoencoderKL (latents: vae)")
    vae_subfolder: str | None = None
    vae_revision: str | None = None
    vae_dtype: Literal["float32", "bfloat16", "float16"] = "bfloat16"
    latent_channels: Int | None = Field(default=None, gt=0, description="the VAE's latent channels (SD3/Flux: 16)")
    vae_downsample: Int = Field(default=8, gt=0, description="the VAE's spatial down-sampling factor")
    latent_shift: Float | None = Field(default=None, description="z ← (z − shift)·scale; VAE default: its config")
    latent_scale: Float | None = Field(default=None, gt=0)
    latent_cache: str | None = Field(
        default=None, description="directory of per-sample latent files (latents: vae; no random augmentation)"
    )
    hidden_size: Int = Field(default=384, gt=0)
    depth: Int = Field(default=12, gt=0)
    num_heads: Int = Field(default=6, gt=0)
    patch_size: Int = Field(default=2, gt=0)
    mlp_ratio: Float = Field(default=4.0, gt=0)
    positions: Literal["sincos", "rope"] = "sincos"
    packing: Literal["packed", "unpacked"] = "packed"
    packed_attention: Literal["mask", "flex"] = "mask"
    conditioning: Literal["class", "text"] = "class"
    text_embeddings: str | None = Field(default=None, description="safetensors file: embeddings [N, D], null [D]")
    text_embeddings_per: Literal["class", "sample"] = "class"
    sample_steps: Int = Field(default=20, gt=0, description="Euler steps per stage when sampling (README: 20)")
    eval_ratios: list[Float] = Field(
        default_factory=lambda: [0.9, 0.5, 0.1], description="within-stage ratios r at which evaluation measures"
    )
    preview_classes: Int = Field(default=10, ge=0, description="sample grid after each evaluation (0: none)")

    @model_validator(mode="after")
    def _consistent(self) -> PyramidFlowParams:
        if self.latents == "vae":
            if not self.vae or self.latent_channels is None:
                raise ValueError("latents 'vae' needs 'vae' (a hub id) and 'latent_channels'")
        else:
            named = [key for key in ("vae", "latent_cache", "latent_channels") if getattr(self, key) is not None]
            if named:
                raise ValueError(f"'{named[0]}' needs latents: vae")
        if (self.conditioning == "text") != (self.text_embeddings is not None):
            raise ValueError("'text_embeddings' is needed with conditioning: text, and only then")
        if self.packing == "unpacked" and self.packed_attention != "mask":
            raise ValueError("'packed_attention' applies to packing: packed only")
        if not self.eval_ratios or any(not 0 < r <= 1 for r in self.eval_ratios):
            raise ValueError("'eval_ratios' must list within-stage ratios in (0, 1]")
        return self


class PyramidFlowSetup:
    """Pyramidal flow matching (Jin et al. 2024) with a class- or text-conditional DiT."""

    name: ClassVar[str] = "pyramid_flow"
    summary: ClassVar[str] = "Pyramid-Flow: pyramidal flow matching, stage mix per batch, stage-wise sampling"
    Params: ClassVar[type[BaseModel]] = PyramidFlowParams

    def __init__(self, params: PyramidFlowParams, data: DataShape | None):
        self.params = params
        channels, classes, size = from_recipe_or_data(params, data, "in_channels", "num_classes", "image_size")
        if data is not None and params.image_size is not None and params.image_size != data.image_size:
            raise UserError(f"setup.image_size: expected data.image_size {data.image_size}, got {params.image_size}")
        self.channels, self.num_classes, self.image_size = channels, classes, size
        if params.latents == "vae":
            self.space = AutoencoderLatents(
                params.vae,
                params.latent_channels,
                params.vae_downsample,
                params.vae_subfolder,
                params.vae_revision,
                params.vae_dtype,
                params.latent_shift,
                params.latent_scale,
            )
        else:
            shift = 0.0 if params.latent_shift is None else params.latent_shift
            self.space = PixelSpace(channels, shift, 1.0 if params.latent_scale is None else params.latent_scale)
        self.latent_side = self._latent_side(size)
        self.windows = stage_windows(params.stages, params.gamma)
        self.cache = None
        if params.latent_cache:
            fingerprint = {**self.space.fingerprint(), "image_size": str(size)}
            self.cache = LatentCache(Path(params.latent_cache), fingerprint)
        self.text = None
        if params.conditioning == "text":
            from curricurun.setups.pyramid_flow.conditioning import TextEmbeddings

            self.text = TextEmbeddings(Path(params.text_embeddings), params.text_embeddings_per, classes)

    def _latent_side(self, size: int) -> int:
        """The final stage's latent side; every stage must tile into whole patches (side / 2^(K−1) / patch)."""
        down, patch, stages = self.space.downsample, self.params.patch_size, self.params.stages
        unit = down * patch * 2 ** (stages - 1)
        if size % unit:
            raise UserError(
                f"setup.image_size: expected a multiple of {unit} (downsample {down} × patch {patch}"
                f" × 2^(stages − 1) = {2 ** (stages - 1)}), got {size}"
            )
        return size // down

    def build_model(self) -> torch.nn.Module:
        p = self.params
        config = DiTConfig(
            channels=self.space.channels,
            num_classes=self.num_classes,
            hidden_size=p.hidden_size,
            depth=p.depth,
            num_heads=p.num_heads,
            patch_size=p.patch_size,
            mlp_ratio=p.mlp_ratio,
            positions=p.positions,
            packing=p.packing,
            packed_attention=p.packed_attention,
            condition_dim=self.text.dim if self.text is not None else None,
        )
        try:
            return PyramidDiT(config)
        except ValueError as error:
            raise UserError(f"setup.hidden_size: {error}") from None

    def stage_mix(self, stage: StageState) -> tuple[int, ...]:
        """The curriculum's ``stage_ratios``; without a ``stage_mixture`` curriculum, the reference class default
        [1, …, 1] (``sample_ratios=[1, 1, 1]``, ``pipeline`` L121)."""
        ratios = stage.stage_ratios or (1,) * self.params.stages
        if len(ratios) != self.params.stages:
            raise UserError(
                f"curriculum stage_mixture: {len(ratios)} ratios {list(ratios)} for setup.stages {self.params.stages}"
            )
        return tuple(ratios)

    def latents(self, batch: dict[str, torch.Tensor], split: str) -> torch.Tensor:
        """The batch's normalised latents (from the cache when one is configured)."""
        images = batch["image"]
        if self.cache is not None:
            raw = self.cache.encode(split, batch["index"], images, self.space.encode)
        else:
            raw = self.space.encode(images)
        return self.space.normalise(raw).float()

    def conditions(self, batch: dict[str, torch.Tensor], split: str) -> torch.Tensor:
        """Labels, or text embeddings (per-sample tables key the TRAIN split; evaluation then uses the null row)."""
        labels = batch["label"]
        if self.text is None:
            return labels
        if self.text.per == "sample" and split != "train":
            return self.text.null.to(labels.device).expand(labels.shape[0], -1)
        return self.text.conditions(labels, batch["index"])

    def _drop(self, conditions: torch.Tensor, dropped: torch.Tensor) -> torch.Tensor:
        """Condition dropout for guidance: the null class (index ``num_classes``) or the null embedding."""
        if self.text is not None:
            return self.text.drop(conditions, dropped)
        return torch.where(dropped, torch.full_like(conditions, self.num_classes), conditions)

    def training_loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor], stage: StageState) -> torch.Tensor:
        """Mean over samples of the per-sample velocity MSE, each sample at its column's stage (L616-637)."""
        x = self.latents(batch, "train")
        count, device, stages = x.shape[0], x.device, self.params.stages
        columns = torch.tensor(stage_columns(self.stage_mix(stage), count), device=device)
        clean = clean_pyramid(x, stages)
        noise = noise_pyramid(torch.randn_like(x), stages)
        dropped = torch.rand(count, device=device) < self.params.class_dropout
        conditions = self._drop(self.conditions(batch, "train"), dropped)
        inputs, targets, times, order = [], [], [], []
        for k in range(stages):
            members = (columns == k).nonzero().squeeze(1)
            start, end = stage_endpoints(k, self.windows, [c[members] for c in clean], [n[members] for n in noise])
            ratio, timestep = stage_times(self.windows[k], torch.rand(members.numel(), device=device))
            noisy, target = interpolate(start, end, ratio)
            inputs.append(noisy)
            targets.append(target)
            times.append(timestep)
            order.append(members)
        predictions = model(*inputs, timesteps=torch.cat(times), conditions=conditions[torch.cat(order)])
        per_sample = [_per_sample_mse(p, t) for p, t in zip(predictions, targets, strict=True)]
        return torch.cat(per_sample).mean()

    @torch.no_grad()
    def evaluation_sums(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per stage, the summed per-sample velocity MSE averaged over ``eval_ratios``, with per-sample fixed noise.

        Sample i of the split always gets the noise of seed ``EVAL_NOISE_SEED + i`` and the same ratios, so the
        metric is deterministic and two recipes (e.g. [1, 2, 1] vs [1, 1, 1]) are compared on identical draws.
        """
        x = self.latents(batch, "eval")
        count, device, stages = x.shape[0], x.device, self.params.stages
        noise = torch.stack(
            [
                torch.randn(x.shape[1:], generator=torch.Generator().manual_seed(EVAL_NOISE_SEED + int(i)))
                for i in batch["index"].tolist()
            ]
        ).to(device)
        clean, noise = clean_pyramid(x, stages), noise_pyramid(noise, stages)
        conditions = self.conditions(batch, "eval")
        endpoints = [stage_endpoints(k, self.windows, clean, noise) for k in range(stages)]
        repeated = conditions.repeat(stages, *([1] * (conditions.dim() - 1)))  # one copy per stage group
        sums = torch.zeros(stages, device=device)
        for r in self.params.eval_ratios:
            ratio = torch.full((count,), r, device=device)
            pairs = [interpolate(start, end, ratio) for start, end in endpoints]
            times = torch.cat([timestep_at(window, ratio) for window in self.windows])
            predictions = model(*(noisy for noisy, _ in pairs), timesteps=times, conditions=repeated)
            for k, (prediction, (_, target)) in enumerate(zip(predictions, pairs, strict=True)):
                sums[k] += _per_sample_mse(prediction, target).sum() / len(self.params.eval_ratios)
        return {"loss_sum": sums, "count": torch.tensor(float(count), device=device)}

    @staticmethod
    def metrics_from_sums(sums: dict[str, torch.Tensor | float]) -> dict[str, float]:
        """``loss``: the mean over stages of the per-stage held-out loss; ``loss_stage<k>``: each stage's."""
        count = max(float(sums["count"]), 1.0)
        per_stage = torch.as_tensor(sums["loss_sum"], dtype=torch.float64).reshape(-1) / count
        metrics = {"loss": float(per_stage.mean())}
        metrics.update({f"loss_stage{k}": float(value) for k, value in enumerate(per_stage)})
        return metrics

    def after_evaluation(
        self, model: torch.nn.Module, batch: dict[str, torch.Tensor], step: int, run_dir: Path
    ) -> None:
        """A grid of one sample per class (the first ``preview_classes``), seed 0: ``samples/step-<N>.png``."""
        from curricurun.images import save_grid

        count = min(self.params.preview_classes, self.num_classes)
        if count:
            images = self.sample(model, list(range(count)), 0, SampleOptions())
            save_grid(images, run_dir / "samples" / f"step-{step:08d}.png", columns=count, upscale=2)

    @torch.no_grad()
    def sample(self, model: torch.nn.Module, classes: list[int], seed: int, options: SampleOptions) -> torch.Tensor:
        """Images ``[N, C, H, W]`` in [0, 1], ``options.per_class`` per class, class by class (``generate_one_unit``).

        With per-sample text embeddings, ``classes`` are rows of the embedding table.
        """
        from curricurun.images import to_unit_range

        device = next(model.parameters()).device
        keys = torch.tensor([c for c in classes for _ in range(options.per_class)], device=device)
        if self.text is None:
            if int(keys.max()) >= self.num_classes:
                raise UserError(f"--classes: expected class indices below {self.num_classes}, got {int(keys.max())}")
            conditions, null = keys, torch.full_like(keys, self.num_classes)
        else:
            conditions = self.text.rows(keys)
            null = self.text.null.to(device).expand_as(conditions)
        latents = sample_latents(
            model,
            conditions,
            null,
            self.windows,
            (self.space.channels, self.latent_side, self.latent_side),
            options.steps or self.params.sample_steps,
            options.cfg,
            torch.Generator().manual_seed(seed),
            self.params.gamma,
        )
        return to_unit_range(self.space.decode(latents))


def _per_sample_mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Unweighted mean over elements, one value per sample, in float32 (``calculate_loss``, ``pipeline`` L616-637)."""
    return (prediction.float() - target.float()).pow(2).flatten(1).mean(1)
