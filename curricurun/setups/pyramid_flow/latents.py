"""Where the flow is learned: pixel space (offline, the tiny recipe) or a frozen diffusers ``AutoencoderKL``.

Both normalise as Pyramid-Flow does, ``z ← (z − shift)·scale`` before the pyramid and the inverse before decoding
(``pyramid_dit_for_video_gen_pipeline.py`` L164-176, L578-584). The autoencoder is a frozen helper of the setup, never
part of the trained model (setups/base.py); diffusers is imported only when it is first used, so recipes that
name a VAE validate and inspect without it. :class:`LatentCache` keeps each sample's encoding on disk so the VAE
runs once per image, as Pyramid-Flow pre-extracts its latents (``tools/extract_video_vae_latents.py``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import torch

from curricurun.errors import UserError


class LatentSpace(Protocol):
    channels: int
    downsample: int

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] → the RAW latent (before normalisation; what a cache stores)."""

    def normalise(self, latents: torch.Tensor) -> torch.Tensor: ...

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Normalised latents → images in [-1, 1]."""


class PixelSpace:
    """The image itself is the latent: no encoder, ``downsample`` 1, shift 0 and scale 1 unless the recipe says."""

    def __init__(self, channels: int, shift: float = 0.0, scale: float = 1.0):
        self.channels, self.downsample, self.shift, self.scale = channels, 1, shift, scale

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return images

    def normalise(self, latents: torch.Tensor) -> torch.Tensor:
        return (latents - self.shift) * self.scale

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return latents / self.scale + self.shift


class AutoencoderLatents:
    """A diffusers ``AutoencoderKL`` from the hub (SD3 or Flux VAE), loaded on first use and kept frozen.

    ``shift``/``scale`` None take the VAE config's ``shift_factor``/``scaling_factor``. Grey images are repeated to
    the three channels the VAE expects. Encoding draws from the posterior (``latent_dist.sample()``, as the
    reference's ``get_vae_latent`` does).
    """

    def __init__(
        self,
        hub_id: str,
        channels: int,
        downsample: int,
        subfolder: str | None = None,
        revision: str | None = None,
        dtype: str = "bfloat16",
        shift: float | None = None,
        scale: float | None = None,
    ):
        self.hub_id, self.subfolder, self.revision = hub_id, subfolder, revision
        self.channels, self.downsample, self.dtype = channels, downsample, getattr(torch, dtype)
        self.shift, self.scale = shift, scale
        self._vae, self._device = None, None

    def fingerprint(self) -> dict[str, str]:
        """What a cached latent depends on besides the image (checked when a cache is reused)."""
        return {
            "vae": self.hub_id,
            "subfolder": str(self.subfolder),
            "revision": str(self.revision),
            "dtype": str(self.dtype),
        }

    def _load(self, device: torch.device):
        if self._vae is None:
            try:
                from diffusers import AutoencoderKL
            except ImportError:
                raise UserError("setup.latents: 'vae' needs diffusers: pip install diffusers") from None
            try:
                vae = AutoencoderKL.from_pretrained(
                    self.hub_id, subfolder=self.subfolder, revision=self.revision, torch_dtype=self.dtype
                )
            except (OSError, ValueError) as error:
                raise UserError(f"setup.vae: could not load AutoencoderKL '{self.hub_id}' ({error})") from None
            if vae.config.latent_channels != self.channels:
                raise UserError(
                    f"setup.latent_channels: expected {vae.config.latent_channels} (the VAE's), got {self.channels}"
                )
            vae.requires_grad_(False).eval()
            if self.shift is None:
                self.shift = vae.config.shift_factor or 0.0  # SD1/SDXL VAEs have no shift (None in their config)
            if self.scale is None:
                self.scale = vae.config.scaling_factor
            self._vae = vae
        if self._device != device:
            self._vae.to(device)
            self._device = device
        return self._vae

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        vae = self._load(images.device)
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        return vae.encode(images.to(self.dtype)).latent_dist.sample()

    def normalise(self, latents: torch.Tensor) -> torch.Tensor:
        return (latents.float() - self.shift) * self.scale

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        vae = self._load(latents.device)
        raw = latents / self.scale + self.shift
        return vae.decode(raw.to(self.dtype)).sample.float()


class LatentCache:
    """One safetensors file per sample, ``DIR/<split>/<index>.safetensors``, written the first time it is encoded.

    The raw encoder output is stored unchanged, so a cached run trains on exactly the values the first pass made.
    Each file carries the encoder's fingerprint and the image size; a cache made by another VAE or size is a user
    error, never silently reused. Keyed by the sample's index in its split: use it without random augmentation
    (flips, crops), as the reference's pre-extracted ones are (``dataset_cls.py`` L151). Files are written under a
    temporary name and renamed, so concurrent ranks and interrupted runs never leave a half-written latent.
    """

    def __init__(self, directory: Path, fingerprint: dict[str, str]):
        self.directory = Path(directory)
        self.fingerprint = fingerprint

    def encode(self, split: str, indices: torch.Tensor, images: torch.Tensor, encoder) -> torch.Tensor:
        """The raw latents of ``images`` (``[B, ...]``): read where cached, else encoded with ``encoder`` and stored."""
        from safetensors.torch import safe_open, save_file

        folder = self.directory / split
        folder.mkdir(parents=True, exist_ok=True)
        paths = [folder / f"{int(i)}.safetensors" for i in indices.tolist()]
        found: dict[int, torch.Tensor] = {}
        for position, path in enumerate(paths):
            if path.is_file():
                with safe_open(str(path), framework="pt") as stream:
                    self._check(path, stream.metadata() or {})
                    found[position] = stream.get_tensor("latent")
        missing = [p for p in range(len(paths)) if p not in found]
        if missing:
            fresh = encoder(images[missing])
            for position, latent in zip(missing, fresh, strict=True):
                found[position] = latent.cpu()
                temporary = paths[position].with_name(f".{paths[position].name}.tmp-{os.getpid()}")
                save_file({"latent": latent.detach().cpu().contiguous()}, str(temporary), metadata=self.fingerprint)
                os.replace(temporary, paths[position])
        return torch.stack([found[p] for p in range(len(paths))]).to(images.device)

    def _check(self, path: Path, metadata: dict[str, str]) -> None:
        for key, wanted in self.fingerprint.items():
            if metadata.get(key) != wanted:
                raise UserError(
                    f"setup.latent_cache: {path} was made with {key}={metadata.get(key)!r}, this run needs"
                    f" {wanted!r}; delete {self.directory} or choose another directory"
                )
