"""VAR's multi-scale residual quantiser and the classic single-scale VQ (VAR and vaex ``models/quant.py``).

Multi-scale residual quantisation (VAR ``models/quant.py:52-104``): the encoder output f ``[B, C, P, P]`` is
quantised K times, from the coarsest patch number p_0 to the finest p_{K-1} = P. At scale k the residual r (f minus
everything quantised so far) is area-down-sampled to p_k × p_k, each of its vectors takes its nearest code (L2, or
cosine when z-normalised), the code map is bicubic-up-sampled back to P × P and passed through φ_k, and the result
h_k is added to f̂ and subtracted from r. φ(h) = (1 − r)·h + r·conv3×3(h) with r = ``quant_resi`` (``Phi``,
:199-206). The loss is the mean over scales of β·‖sg(f̂_k) − f‖² + ‖f̂_k − sg(f)‖², f̂_k the running sum after
scale k (:95-97), and the straight-through estimator passes the decoder's gradient to f unchanged (:98). The
quantiser runs in fp32 with autocast off (:53-61), whatever precision the rest of the model trains in.

The classic VQ (van den Oord et al. 2017; vaex's single-scale ``VectorQuantizer``, ``models/quant.py:37-102``) is the
K = 1 case: one scale at the full latent size, no down- or up-sampling, the same φ, loss and estimator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def phi_index(scale: int, num_scales: int, num_phis: int) -> int:
    """Which of ``num_phis`` shared φ's scale ``scale`` (of ``num_scales``) uses: VAR's nearest-tick rule.

    Scale k sits at k/(K−1) on [0, 1] and takes the φ whose tick is nearest. The n ticks are
    linspace(1/(3n), 1 − 1/(3n), n) when n = 4 and linspace(1/(2n), 1 − 1/(2n), n) otherwise
    (``PhiPartiallyShared``, ``models/quant.py:218-226``). Two of VAR's ten scales are exact ties
    on paper (k = 2 and 7 with n = 4): the reference breaks them by float64 ``numpy.linspace`` rounding, so the ticks
    are computed the same way here, and an exact tie goes to the first φ as ``argmin`` does.
    """
    if num_phis == 1:
        return 0
    margin = 3 if num_phis == 4 else 2
    ticks = np.linspace(1 / margin / num_phis, 1 - 1 / margin / num_phis, num_phis)
    position = scale / (num_scales - 1) if num_scales > 1 else 0.0
    return int(np.argmin(np.abs(ticks - position)))


def phi_count(share_quant_resi: int, num_scales: int) -> int:
    """How many φ's exist: 0 → one per scale, 1 → one shared, n ≥ 2 → n partially shared (``quant.py:28-33``)."""
    return num_scales if share_quant_resi == 0 else share_quant_resi


class Phi(nn.Conv2d):
    """φ(h) = (1 − r)·h + r·conv3×3(h): the residual refinement after up-sampling a code map (``quant.py:199-206``)."""

    def __init__(self, channels: int, ratio: float):
        super().__init__(channels, channels, kernel_size=3, padding=1)
        self.ratio = abs(ratio)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h * (1 - self.ratio) + super().forward(h) * self.ratio


@dataclass
class QuantizerOutput:
    """One quantisation pass (``f_hat`` carries the straight-through gradient to the encoder output)."""

    f_hat: torch.Tensor  # [B, C, P, P] fp32
    loss: torch.Tensor  # scalar: mean over scales of β‖sg(f̂_k) − f‖² + ‖f̂_k − sg(f)‖²
    code_hits: torch.Tensor  # [K, V] how often each code was chosen at each scale in this batch
    residual_energy: torch.Tensor  # [K] mean squared residual ‖f − f̂_k‖² after each scale
    indices: list[torch.Tensor]  # per scale [B, p_k, p_k]
    targets: list[torch.Tensor]  # per scale the vectors that were quantised, [B·p_k², C], detached


class MultiScaleResidualQuantizer(nn.Module):
    """VAR's quantiser over ``patch_nums`` (strictly increasing; the last is the latent side P)."""

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int,
        patch_nums: tuple[int, ...],
        beta: float = 0.25,
        z_normalise: bool = False,
        quant_resi: float = 0.5,
        share_quant_resi: int = 4,
    ):
        super().__init__()
        if not patch_nums or list(patch_nums) != sorted(set(patch_nums)) or patch_nums[0] < 1:
            raise ValueError(f"patch_nums must be positive and strictly increasing, got {patch_nums}")
        if share_quant_resi < 0:
            raise ValueError(f"share_quant_resi must be >= 0, got {share_quant_resi}")
        self.vocab_size, self.embed_dim = vocab_size, embed_dim
        self.patch_nums = tuple(patch_nums)
        self.beta, self.z_normalise = beta, z_normalise
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        # VAR's ``eini(-1)``: uniform ±1/V (``quant.py:44-46``), as taming-transformers initialises its codebook.
        nn.init.uniform_(self.embedding.weight, -1.0 / vocab_size, 1.0 / vocab_size)
        count = phi_count(share_quant_resi, len(self.patch_nums))
        # |r| ≈ 0 means no φ at all (identity, no parameters), as in the reference.
        self.quant_resi = nn.ModuleList(
            Phi(embed_dim, quant_resi) if abs(quant_resi) > 1e-6 else nn.Identity() for _ in range(count)
        )
        self.phi_of_scale = tuple(phi_index(k, len(self.patch_nums), count) for k in range(len(self.patch_nums)))

    @property
    def latent_size(self) -> int:
        return self.patch_nums[-1]

    def nearest_codes(self, vectors: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code of each row of ``vectors`` [N, C]: L2, or cosine when z-normalised."""
        codebook = self.embedding.weight.detach().float()
        if self.z_normalise:
            return (F.normalize(vectors, dim=1) @ F.normalize(codebook, dim=1).T).argmax(dim=1)
        # ‖v − e‖² = ‖v‖² + ‖e‖² − 2 v·e, without materialising the differences
        distances = torch.addmm(
            vectors.square().sum(1, keepdim=True) + codebook.square().sum(1), vectors, codebook.T, beta=1, alpha=-2
        )
        return distances.argmin(dim=1)

    def embed(self, indices: torch.Tensor) -> torch.Tensor:
        """Codebook lookup ``[B, p, p]`` → ``[B, C, p, p]`` fp32 (contiguous, so every path computes alike)."""
        return self.embedding(indices).float().permute(0, 3, 1, 2).contiguous()

    def scale_contribution(self, scale: int, h: torch.Tensor) -> torch.Tensor:
        """h_k: the embedded code map of scale k bicubic-up-sampled to P × P (not at the last scale), then φ_k."""
        if scale != len(self.patch_nums) - 1:
            h = F.interpolate(h, size=(self.latent_size, self.latent_size), mode="bicubic")
        return self.quant_resi[self.phi_of_scale[scale]](h)

    def forward(self, f: torch.Tensor) -> QuantizerOutput:
        """Quantise ``f`` [B, C, P, P] scale by scale; in training the loss trains the codebook and the φ's."""
        with torch.autocast(device_type=f.device.type, enabled=False):
            return self._quantise(f.float())

    def _quantise(self, f: torch.Tensor) -> QuantizerOutput:
        batch, channels, height, width = f.shape
        if (height, width) != (self.latent_size, self.latent_size):
            raise ValueError(
                f"the latent is {height}x{width} but the last patch number is {self.latent_size}: "
                f"images must be latent_size × down-sampling pixels"
            )
        f_detached = f.detach()
        residual = f_detached.clone()
        f_hat = torch.zeros_like(f)
        loss = f.new_zeros(())
        hits, energy, indices, targets = [], [], [], []
        last = len(self.patch_nums) - 1
        for scale, side in enumerate(self.patch_nums):
            target = residual if scale == last else F.interpolate(residual, size=(side, side), mode="area")
            vectors = target.permute(0, 2, 3, 1).reshape(-1, channels)
            index = self.nearest_codes(vectors).view(batch, side, side)
            h = self.scale_contribution(scale, self.embed(index))
            f_hat = f_hat + h
            residual = residual - h.detach()
            loss = loss + self.beta * F.mse_loss(f_hat.detach(), f) + F.mse_loss(f_hat, f_detached)
            hits.append(torch.bincount(index.flatten(), minlength=self.vocab_size))
            energy.append(residual.square().mean())
            indices.append(index)
            targets.append(vectors)
        # Straight-through: the value is exactly f̂ (f − sg(f) is an exact zero), the gradient reaches f unchanged.
        straight_through = f_hat.detach() + (f - f_detached)
        return QuantizerOutput(
            f_hat=straight_through,
            loss=loss / len(self.patch_nums),
            code_hits=torch.stack(hits).float(),
            residual_energy=torch.stack(energy),
            indices=indices,
            targets=targets,
        )

    @torch.no_grad()
    def exact_residual_targets(self, f: torch.Tensor) -> torch.Tensor:
        """The vectors each scale would quantise if every code were exact (an unlimited codebook), [N, C].

        Scale k's target is the area-down-sampled residual; taking it as its own code, up-sampling it and applying
        φ_k gives the next residual. These are what a well-fitted codebook must cover at every scale, so k-means
        on them (codebook.py) initialises one shared codebook for all scales; for the single-scale VQ they are
        simply the encoder's output vectors.
        """
        with torch.autocast(device_type=f.device.type, enabled=False):
            residual = f.detach().float().clone()
            last = len(self.patch_nums) - 1
            rows = []
            for scale, side in enumerate(self.patch_nums):
                target = residual if scale == last else F.interpolate(residual, size=(side, side), mode="area")
                rows.append(target.permute(0, 2, 3, 1).reshape(-1, target.shape[1]))
                residual = residual - self.scale_contribution(scale, target)
            return torch.cat(rows)


class SingleScaleQuantizer(MultiScaleResidualQuantizer):
    """Classic VQ at the latent size P (vaex-style): the K = 1 case, with one φ when ``quant_resi`` ≠ 0."""

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int,
        latent_size: int,
        beta: float = 0.25,
        z_normalise: bool = False,
        quant_resi: float = 0.0,
    ):
        super().__init__(vocab_size, embed_dim, (latent_size,), beta, z_normalise, quant_resi, share_quant_resi=1)
