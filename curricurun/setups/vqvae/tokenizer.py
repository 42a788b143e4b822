"""The trained VQ-VAE as a frozen multi-scale tokenizer: what VAR trains on (``models/quant.py:135-184``).

A tokenizer is a directory with ``tokenizer.safetensors`` (the weights) and ``tokenizer.json`` (the model
configuration); the ``vqvae`` setup writes one to ``<run_dir>/tokenizer/`` at the end of training::

    from curricurun.setups.vqvae.tokenizer import load_tokenizer

    tokenizer = load_tokenizer("runs/vqvae_tiny/tokenizer").to(device)
    indices = tokenizer.encode(images)              # per scale [B, p_k, p_k], images in [-1, 1]
    images = tokenizer.decode(indices)              # [B, C, H, W] in [-1, 1]
    inputs = tokenizer.teacher_forcing_input(indices)   # [B, L − p_0², Cvae]: VAR's next-scale inputs

Every method matches the code path the VQ-VAE trained with (same lookups, same up-sampling and φ, in the same
order), so ``decode(encode(x))`` is bit for bit the reconstruction the training run evaluated. The quantiser math
runs in fp32 with autocast off; the encoder and decoder follow the caller's autocast.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from curricurun.errors import UserError
from curricurun.setups.vqvae.vqvae import VQVAE, VQVAEConfig

WEIGHTS_FILE = "tokenizer.safetensors"
CONFIG_FILE = "tokenizer.json"
FORMAT = "curricurun-vqvae-tokenizer"


class MultiScaleTokenizer(nn.Module):
    """A frozen VQ-VAE seen as images ↔ per-scale token maps (VAR's ``img_to_idxBl`` / ``idxBl_to_img``)."""

    def __init__(self, config: VQVAEConfig):
        super().__init__()
        self.config = config
        self.vqvae = VQVAE(config)
        self.patch_nums: tuple[int, ...] = self.vqvae.quantize.patch_nums
        self.vocab_size: int = config.vocab_size
        self.embed_dim: int = config.z_channels
        self.in_channels: int = config.in_channels
        self.image_size: int = config.image_size
        self.eval().requires_grad_(False)

    @classmethod
    def from_vqvae(cls, model: VQVAE) -> MultiScaleTokenizer:
        """A tokenizer holding a copy of a trained model's weights (its training-only codebook state is dropped)."""
        tokenizer = cls(model.config)
        tokenizer.vqvae.load_state_dict(tokenizer_state(model))
        return tokenizer.to(next(model.parameters()).device)

    def train(self, mode: bool = True) -> MultiScaleTokenizer:
        """Always in evaluation mode: a tokenizer is frozen (dropout off, no codebook updates)."""
        return super().train(False)

    @property
    def _quantizer(self):
        return self.vqvae.quantize

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Images [B, C, H, W] in [-1, 1] → token maps, per scale [B, p_k, p_k] (long)."""
        return self._quantizer(self.vqvae.encode_latent(images)).indices

    @torch.no_grad()
    def embed(self, indices: torch.Tensor) -> torch.Tensor:
        """Token map [B, p, p] → code vectors [B, Cvae, p, p] (fp32)."""
        return self._quantizer.embed(indices)

    @torch.no_grad()
    def f_hat(self, indices: list[torch.Tensor]) -> torch.Tensor:
        """The quantised latent f̂ [B, Cvae, P, P] of a full pyramid: Σ_k φ_k(up(embed(indices_k)))."""
        maps = self._as_maps(indices)
        with torch.autocast(device_type=maps[0].device.type, enabled=False):
            f_hat = self._zero_latent(maps[0])
            for scale, index in enumerate(maps):
                f_hat = f_hat + self._quantizer.scale_contribution(scale, self._quantizer.embed(index))
            return f_hat

    @torch.no_grad()
    def decode(self, indices: list[torch.Tensor]) -> torch.Tensor:
        """Token maps of every scale → images [B, C, H, W] clamped to [-1, 1]."""
        return self.decode_latent(self.f_hat(indices))

    @torch.no_grad()
    def decode_latent(self, f_hat: torch.Tensor) -> torch.Tensor:
        """f̂ [B, Cvae, P, P] → images in [-1, 1]."""
        return self.vqvae.decode_latent(f_hat).clamp(-1.0, 1.0)

    @torch.no_grad()
    def teacher_forcing_input(self, indices: list[torch.Tensor]) -> torch.Tensor:
        """VAR's teacher-forcing input [B, L − p_0², Cvae] (``idxBl_to_var_input``, ``models/quant.py``).

        For scale k ≥ 1: the running f̂ after scales 0..k−1, area-down-sampled to p_k × p_k and flattened row-major;
        the scales are concatenated in order. Given the first n token maps (VAR's progressive stage n − 1), it
        returns the inputs of scales 1..n − 1, the first e_{n−1} − p_0² rows of the full result.
        """
        maps = self._as_maps(indices)
        with torch.autocast(device_type=maps[0].device.type, enabled=False):
            inputs, f_hat = [], self._zero_latent(maps[0])
            for scale, index in enumerate(maps[:-1]):
                f_hat = f_hat + self._quantizer.scale_contribution(scale, self._quantizer.embed(index))
                side = self.patch_nums[scale + 1]
                inputs.append(F.interpolate(f_hat, size=(side, side), mode="area").flatten(2).transpose(1, 2))
            if not inputs:
                return f_hat.new_zeros(f_hat.shape[0], 0, self.embed_dim)
            return torch.cat(inputs, dim=1)

    @torch.no_grad()
    def next_autoregressive_input(
        self, scale: int, f_hat: torch.Tensor, h: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One sampling step (``get_next_autoregressive_input``): add scale ``scale``'s codes ``h`` [B, Cvae, p, p].

        Returns the new f̂ [B, Cvae, P, P] and the next scale's input (f̂ area-down-sampled to p_{k+1}), or f̂
        itself after the last scale. ``f_hat`` is not modified in place.
        """
        with torch.autocast(device_type=h.device.type, enabled=False):
            f_hat = f_hat.float() + self._quantizer.scale_contribution(scale, h.float())
            if scale == len(self.patch_nums) - 1:
                return f_hat, f_hat
            side = self.patch_nums[scale + 1]
            return f_hat, F.interpolate(f_hat, size=(side, side), mode="area")

    def _zero_latent(self, index: torch.Tensor) -> torch.Tensor:
        side = self.patch_nums[-1]
        return torch.zeros(index.shape[0], self.embed_dim, side, side, device=index.device)

    def _as_maps(self, indices: list[torch.Tensor]) -> list[torch.Tensor]:
        """Accept [B, p, p] or flattened [B, p²] token maps."""
        if not 0 < len(indices) <= len(self.patch_nums):
            raise ValueError(f"{len(indices)} token maps for {len(self.patch_nums)} scales")
        return [
            index.reshape(index.shape[0], side, side) for index, side in zip(indices, self.patch_nums, strict=False)
        ]


def tokenizer_state(model: VQVAE) -> dict[str, torch.Tensor]:
    """The weights a tokenizer needs: the model's state without the training-only codebook upkeep."""
    return {k: v for k, v in model.state_dict().items() if not k.startswith("codebook_upkeep.")}


def save_tokenizer(model: MultiScaleTokenizer | VQVAE, directory: Path) -> Path:
    """Write ``tokenizer.safetensors`` and ``tokenizer.json`` into ``directory``; returns the directory."""
    from safetensors.torch import save_file

    vqvae = model.vqvae if isinstance(model, MultiScaleTokenizer) else model
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in tokenizer_state(vqvae).items()}
    save_file(state, str(directory / WEIGHTS_FILE), metadata={"format": FORMAT})
    document = {"format": FORMAT, "version": 1, "config": json.loads(vqvae.config.to_json())}
    (directory / CONFIG_FILE).write_text(json.dumps(document, indent=2) + "\n")
    return directory


def load_tokenizer(path: str | Path) -> MultiScaleTokenizer:
    """Load a tokenizer directory (or either of its two files); a missing or bad file is a user error naming it."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(path)
    if directory.is_file():
        directory = directory.parent
    config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    for required in (config_path, weights_path):
        if not required.is_file():
            raise UserError(f"tokenizer: file not found: {required}")
    try:
        document = json.loads(config_path.read_text())
        if document.get("format") != FORMAT:
            raise ValueError(f"expected format '{FORMAT}', got {document.get('format')!r}")
        config = VQVAEConfig.from_dict(document["config"])
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise UserError(f"tokenizer: {config_path} is not a tokenizer configuration ({error})") from None
    tokenizer = MultiScaleTokenizer(config)
    try:
        state = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as error:
        raise UserError(f"tokenizer: {weights_path} is not a readable safetensors file ({error})") from None
    try:
        tokenizer.vqvae.load_state_dict(state)
    except RuntimeError as error:
        first = str(error).splitlines()[0]
        raise UserError(f"tokenizer: {weights_path} does not match {config_path} ({first})") from None
    return tokenizer.requires_grad_(False)
