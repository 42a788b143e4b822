"""The ``vqvae`` setup: VAR's VQ-VAE trained end to end, exported as the tokenizer VAR trains on.

Loss (VAR ``models/quant.py:95-97``; vaex ``arg_util.py:104-108``): l1_weight·|x − x̂| + l2_weight·(x − x̂)² (means over
pixels) + the quantiser's mean over scales of β‖sg(f̂_k) − f‖² + ‖f̂_k − sg(f)‖². vaex's LPIPS and DINO-discriminator
terms are not included: they need pretrained networks, which curricurun never downloads.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

import torch
from pydantic import BaseModel, Field, field_validator

from curricurun.curriculum.base import StageState
from curricurun.errors import UserError
from curricurun.recipe.fields import Float, Int, Params
from curricurun.setups.base import DataShape
from curricurun.setups.from_data import from_recipe_or_data
from curricurun.setups.vqvae import metrics
from curricurun.setups.vqvae.codebook import CodebookOptions
from curricurun.setups.vqvae.quantizer import phi_count, phi_index
from curricurun.setups.vqvae.vqvae import VAR_PATCH_NUMS, VQVAE, VQVAEConfig


class VqvaeParams(Params):
    """Recipe fields of the ``vqvae`` setup; the defaults are VAR's ``vae_ch160v4096z32`` (VAR ``train.py:85-98``)."""

    quantizer: Literal["multiscale_residual", "single"] = Field(
        default="multiscale_residual", description="VAR's multi-scale residual quantiser, or classic VQ"
    )
    in_channels: Int | None = Field(default=None, gt=0, description="default: from the data")
    ch: Int = Field(default=160, gt=0, description="base width of the encoder/decoder")
    ch_mult: tuple[Int, ...] = Field(default=(1, 1, 2, 2, 4), min_length=1, description="width per level")
    num_res_blocks: Int = Field(default=2, gt=0)
    dropout: Float = Field(default=0.0, ge=0.0, lt=1.0)
    attention: bool = Field(default=True, description="self-attention in the deepest level's blocks")
    mid_attention: bool = Field(default=True, description="self-attention in the middle block")
    norm_groups: Int = Field(default=32, gt=0, description="GroupNorm groups (VAR: 32)")
    z_channels: Int = Field(default=32, gt=0, description="Cvae: code vector width")
    vocab_size: Int = Field(default=4096, gt=1, description="V: codebook size")
    beta: Float = Field(default=0.25, ge=0.0, description="commitment weight")
    z_normalise: bool = Field(default=False, description="cosine nearest code (VAR's using_znorm)")
    quant_conv_kernel: Int = Field(default=3, gt=0)
    quant_resi: Float = Field(default=0.5, ge=-1.0, le=1.0, description="φ ratio r; 0: no φ")
    share_quant_resi: Int = Field(default=4, ge=0, description="0: one φ per scale, 1: one shared, n: n shared")
    patch_nums: tuple[Int, ...] | None = Field(
        default=None, description="default: VAR's 1..16 (multiscale), the latent side (single)"
    )
    l1_weight: Float = Field(default=0.2, ge=0.0, description="vaex: 0.2")
    l2_weight: Float = Field(default=1.0, ge=0.0, description="vaex: 1.0")
    codebook_update: Literal["gradient", "ema"] = Field(default="gradient", description="VAR: gradient")
    ema_decay: Float = Field(default=0.99, gt=0.0, lt=1.0)
    ema_epsilon: Float = Field(default=1e-5, gt=0.0, description="Laplace smoothing of the EMA counts")
    codebook_init: Literal["uniform", "kmeans"] = Field(default="uniform", description="VAR: uniform ±1/V")
    kmeans_iterations: Int = Field(default=10, gt=0)
    dead_code_restart: bool = Field(default=False)
    dead_code_threshold: Float = Field(default=1.0, gt=0.0, description="running hits per batch below which")
    pictures: Int = Field(default=8, gt=0, le=16, description="images in the reconstruction grid")

    @field_validator("ch_mult", "patch_nums")
    @classmethod
    def _positive_increasing(cls, values: tuple[int, ...] | None, info) -> tuple[int, ...] | None:
        if values is None:
            return values
        if any(v <= 0 for v in values):
            raise ValueError(f"expected positive integers, got {list(values)}")
        if info.field_name == "patch_nums" and list(values) != sorted(set(values)):
            raise ValueError(f"expected strictly increasing patch numbers, got {list(values)}")
        return values


class VqvaeSetup:
    """VAR's VQ-VAE: reconstruction + VQ loss, PSNR and per-scale code usage, reconstruction grids, tokenizer export."""

    name: ClassVar[str] = "vqvae"
    summary: ClassVar[str] = "VAR's multi-scale residual VQ-VAE (or classic VQ); exports the tokenizer VAR trains on"
    Params: ClassVar[type[BaseModel]] = VqvaeParams

    def __init__(self, params: VqvaeParams, data: DataShape | None):
        self.params = params
        self.config = model_config(params, data)
        self.channels = self.config.in_channels
        self.codebook = CodebookOptions(
            update=params.codebook_update,
            ema_decay=params.ema_decay,
            ema_epsilon=params.ema_epsilon,
            init=params.codebook_init,
            kmeans_iterations=params.kmeans_iterations,
            dead_code_restart=params.dead_code_restart,
            dead_code_threshold=params.dead_code_threshold,
        )

    def build_model(self) -> torch.nn.Module:
        return VQVAE(self.config, self.codebook)

    def training_loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor], stage: StageState) -> torch.Tensor:
        images = batch["image"]
        output = model(images)
        error = output.reconstruction.float() - images.float()
        reconstruction = self.params.l1_weight * error.abs().mean() + self.params.l2_weight * error.square().mean()
        return reconstruction + output.vq_loss

    @torch.no_grad()
    def evaluation_sums(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        output = model(batch["image"])
        return metrics.reconstruction_sums(batch["image"], output.reconstruction, output.code_hits)

    @staticmethod
    def metrics_from_sums(sums: dict[str, torch.Tensor | float]) -> dict[str, float]:
        return metrics.metrics_from_sums(sums)

    def after_evaluation(
        self, model: torch.nn.Module, batch: dict[str, torch.Tensor], step: int, run_dir: Path
    ) -> None:
        """``reconstructions/step-XXXXXXXX.png``: the first evaluation images above their reconstructions."""
        from curricurun.images import save_grid, to_unit_range

        images = batch["image"][: self.params.pictures]
        reconstruction = model(images).reconstruction
        grid = torch.cat([to_unit_range(images), to_unit_range(reconstruction)])
        upscale = max(1, 96 // images.shape[-1])
        save_grid(grid, run_dir / "reconstructions" / f"step-{step:08d}.png", columns=images.shape[0], upscale=upscale)

    def export(self, model: torch.nn.Module, run_dir: Path) -> Path:
        """``<run_dir>/tokenizer/``: tokenizer.safetensors + tokenizer.json (curricurun/setups/vqvae/tokenizer.py)."""
        from curricurun.setups.vqvae.tokenizer import save_tokenizer

        return save_tokenizer(model, run_dir / "tokenizer")


def model_config(params: VqvaeParams, data: DataShape | None) -> VQVAEConfig:
    """The model configuration, with channels and the image side checked against the data when it is loaded."""
    (channels,) = from_recipe_or_data(params, data, "in_channels")
    downsampling = 2 ** (len(params.ch_mult) - 1)
    patch_nums = params.patch_nums
    if params.quantizer == "single":
        if patch_nums is None and data is None:
            raise UserError("setup.patch_nums: give [latent side] for the single quantiser when the data is not loaded")
        patch_nums = patch_nums or (data.image_size // downsampling,)
        if len(patch_nums) != 1:
            raise UserError(f"setup.patch_nums: the single quantiser has one scale, got {list(patch_nums)}")
    patch_nums = tuple(patch_nums or VAR_PATCH_NUMS)
    image_size = patch_nums[-1] * downsampling
    if data is not None and data.image_size != image_size:
        raise UserError(
            f"setup.patch_nums: the last patch number must be data.image_size / {downsampling} (the latent side)"
            f" = {data.image_size / downsampling:g}, got {patch_nums[-1]}"
        )
    widths = sorted({params.ch * m for m in params.ch_mult})
    if any(width % params.norm_groups for width in widths):
        raise UserError(f"setup.norm_groups: {params.norm_groups} must divide every level's width {widths}")
    count = phi_count(params.share_quant_resi, len(patch_nums)) if params.quantizer != "single" else 1
    unused = sorted(set(range(count)) - {phi_index(k, len(patch_nums), count) for k in range(len(patch_nums))})
    if abs(params.quant_resi) > 1e-6 and unused:
        raise UserError(
            f"setup.share_quant_resi: {count} shared φ's for {len(patch_nums)} scales leave φ {unused} unused"
            " (never trained); use fewer, or 0 for one per scale"
        )
    return VQVAEConfig(
        in_channels=channels,
        image_size=image_size,
        ch=params.ch,
        ch_mult=params.ch_mult,
        num_res_blocks=params.num_res_blocks,
        dropout=params.dropout,
        attention=params.attention,
        mid_attention=params.mid_attention,
        norm_groups=params.norm_groups,
        z_channels=params.z_channels,
        vocab_size=params.vocab_size,
        beta=params.beta,
        z_normalise=params.z_normalise,
        quant_conv_kernel=params.quant_conv_kernel,
        quant_resi=params.quant_resi,
        share_quant_resi=params.share_quant_resi,
        quantizer=params.quantizer,
        patch_nums=patch_nums,
    )
