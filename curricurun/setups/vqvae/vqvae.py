"""The VQ-VAE: encoder → 3×3 quant conv → quantiser → 3×3 post-quant conv → decoder (VAR ``models/vqvae.py``).

The layout and defaults are VAR's ``models/vqvae.py:16-53``: ``vae_ch160v4096z32`` is ch 160, ch_mult
(1, 1, 2, 2, 4) (16× down-sampling), 2 residual blocks per level, attention on, dropout 0, V = 4096, Cvae = 32,
β = 0.25, no z-normalisation, quant_resi 0.5 with 4 shared φ's, patch numbers 1…16 for 256-pixel images.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from curricurun.setups.vqvae.codebook import CodebookOptions, CodebookUpkeep
from curricurun.setups.vqvae.model import Decoder, Encoder
from curricurun.setups.vqvae.quantizer import MultiScaleResidualQuantizer, SingleScaleQuantizer

QUANTIZERS = ("multiscale_residual", "single")
VAR_PATCH_NUMS = (1, 2, 3, 4, 5, 6, 8, 10, 13, 16)  # utils/arg_util.py:244-249, the 256-pixel set


@dataclass(frozen=True)
class VQVAEConfig:
    """Everything needed to rebuild the model (stored as the exported tokenizer's JSON)."""

    in_channels: int = 3
    image_size: int = 256
    ch: int = 160
    ch_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    num_res_blocks: int = 2
    dropout: float = 0.0
    attention: bool = True
    mid_attention: bool = True
    norm_groups: int = 32
    z_channels: int = 32
    vocab_size: int = 4096
    beta: float = 0.25
    z_normalise: bool = False
    quant_conv_kernel: int = 3
    quant_resi: float = 0.5
    share_quant_resi: int = 4
    quantizer: str = "multiscale_residual"
    patch_nums: tuple[int, ...] = field(default=VAR_PATCH_NUMS)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ch_mult", tuple(self.ch_mult))
        object.__setattr__(self, "patch_nums", tuple(self.patch_nums))
        if self.quantizer not in QUANTIZERS:
            raise ValueError(f"quantizer: expected one of {', '.join(QUANTIZERS)}, got {self.quantizer!r}")
        if self.image_size % self.downsampling:
            raise ValueError(f"image_size {self.image_size} is not a multiple of the down-sampling {self.downsampling}")
        if self.patch_nums[-1] != self.latent_size:
            raise ValueError(
                f"patch_nums: the last patch number must be the latent side image_size / {self.downsampling}"
                f" = {self.latent_size}, got {self.patch_nums[-1]}"
            )
        if self.quantizer == "single" and len(self.patch_nums) != 1:
            raise ValueError(f"patch_nums: the single-scale quantiser has one scale, got {self.patch_nums}")

    @property
    def downsampling(self) -> int:
        return 2 ** (len(self.ch_mult) - 1)

    @property
    def latent_size(self) -> int:
        return self.image_size // self.downsampling

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> VQVAEConfig:
        return cls(**values)


@dataclass
class VQVAEOutput:
    reconstruction: torch.Tensor  # [B, C, H, W], not clamped (the training loss sees the raw output)
    vq_loss: torch.Tensor
    code_hits: torch.Tensor  # [K, V]
    residual_energy: torch.Tensor  # [K]


def build_quantizer(config: VQVAEConfig) -> MultiScaleResidualQuantizer:
    if config.quantizer == "single":
        return SingleScaleQuantizer(
            config.vocab_size, config.z_channels, config.latent_size, config.beta, config.z_normalise, config.quant_resi
        )
    return MultiScaleResidualQuantizer(
        config.vocab_size,
        config.z_channels,
        config.patch_nums,
        config.beta,
        config.z_normalise,
        config.quant_resi,
        config.share_quant_resi,
    )


class VQVAE(nn.Module):
    """The trainable VQ-VAE; ``codebook`` options add a ``codebook_upkeep`` child that exists only for training."""

    def __init__(self, config: VQVAEConfig, codebook: CodebookOptions | None = None):
        super().__init__()
        self.config = config
        common = {
            "ch": config.ch,
            "ch_mult": config.ch_mult,
            "num_res_blocks": config.num_res_blocks,
            "z_channels": config.z_channels,
            "dropout": config.dropout,
            "attention": config.attention,
            "mid_attention": config.mid_attention,
            "groups": config.norm_groups,
        }
        kernel = config.quant_conv_kernel
        self.encoder = Encoder(in_channels=config.in_channels, **common)
        self.quant_conv = nn.Conv2d(config.z_channels, config.z_channels, kernel, padding=kernel // 2)
        self.quantize = build_quantizer(config)
        self.post_quant_conv = nn.Conv2d(config.z_channels, config.z_channels, kernel, padding=kernel // 2)
        self.decoder = Decoder(out_channels=config.in_channels, **common)
        self.codebook_upkeep = CodebookUpkeep(codebook, self.quantize) if codebook and codebook.active else None

    def encode_latent(self, images: torch.Tensor) -> torch.Tensor:
        """f = quant_conv(encoder(images)), the map the quantiser works on."""
        return self.quant_conv(self.encoder(images))

    def decode_latent(self, f_hat: torch.Tensor) -> torch.Tensor:
        """decoder(post_quant_conv(f̂)), not clamped."""
        return self.decoder(self.post_quant_conv(f_hat))

    def forward(self, images: torch.Tensor) -> VQVAEOutput:
        f = self.encode_latent(images)
        upkeep = self.codebook_upkeep if self.training else None
        if upkeep is not None:
            upkeep.before_quantising(self.quantize, f)
        quantised = self.quantize(f)
        if upkeep is not None:
            upkeep.after_quantising(self.quantize, quantised)
        return VQVAEOutput(
            reconstruction=self.decode_latent(quantised.f_hat),
            vq_loss=quantised.loss,
            code_hits=quantised.code_hits,
            residual_energy=quantised.residual_energy,
        )
