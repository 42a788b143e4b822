"""Shared helpers for the generative setups' tests."""

from __future__ import annotations

from pathlib import Path

import torch

TINY_PATCH_NUMS = (1, 2, 3, 4, 6, 8)


def tiny_tokenizer(directory: Path) -> Path:
    """vqvae_tiny's configuration (V 256, Cvae 16, 32 px, pyramid 1..8) with random weights: still a fixed
    function of the image, so its token pyramid is learnable."""
    from curricurun.setups.vqvae.tokenizer import MultiScaleTokenizer, save_tokenizer
    from curricurun.setups.vqvae.vqvae import VQVAEConfig

    torch.manual_seed(0)
    config = VQVAEConfig(
        in_channels=1,
        image_size=32,
        ch=32,
        ch_mult=(1, 2, 2),
        num_res_blocks=1,
        z_channels=16,
        vocab_size=256,
        patch_nums=TINY_PATCH_NUMS,
    )
    return save_tokenizer(MultiScaleTokenizer(config), directory)


def small_vqvae_config():
    """A 16-px, 4-scale VQ-VAE small enough for unit tests of the quantiser, codebook and tokenizer."""
    from curricurun.setups.vqvae.vqvae import VQVAEConfig

    return VQVAEConfig(
        in_channels=1,
        image_size=16,
        ch=8,
        ch_mult=(1, 2),
        num_res_blocks=1,
        norm_groups=4,
        z_channels=4,
        vocab_size=32,
        patch_nums=(1, 2, 4, 8),
    )
