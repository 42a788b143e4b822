"""VAR's state-dict layout ↔ curricurun's: the key mapping of the released VQ-VAE and transformer checkpoints.

curricurun's VQ-VAE and transformer use VAR's parameter names, so the mapping is small (FoundationVision/VAR):

* VQ-VAE: VAR keeps its φ convolutions in ``PhiPartiallyShared.qresi_ls`` (``share_quant_resi`` ≥ 2) or
  ``PhiShared.qresi`` (``share_quant_resi`` 1; ``models/quant.py:199-240``); curricurun keeps them in one
  ``ModuleList``, ``quantize.quant_resi.<n>``. ``quantize.ema_vocab_hit_SV`` is a usage statistic
  (``models/quant.py:35``), not a weight: dropped on import, written as zeros on export.
* transformer: ``lvl_1L`` and ``attn_bias_for_masking`` are derived from the patch numbers (``models/var.py:105-112``)
  and ``blocks.<i>.attn.zero_k_bias`` is a constant zero (``models/basic_var.py:76``): dropped on import and
  re-derived on export, exactly as VAR builds them, so ``VAR(...).load_state_dict(sd, strict=True)`` accepts the file.
"""

from __future__ import annotations

import re

import torch

from curricurun.setups.var.attention import token_levels

VQVAE_DERIVED = ("quantize.ema_vocab_hit_SV",)
TRANSFORMER_DERIVED = re.compile(r"^(lvl_1L|attn_bias_for_masking|blocks\.\d+\.attn\.zero_k_bias)$")
_PARTIALLY_SHARED = re.compile(r"^quantize\.quant_resi\.qresi_ls\.(\d+)\.")
_SHARED = "quantize.quant_resi.qresi."
_OURS_PHI = re.compile(r"^quantize\.quant_resi\.(\d+)\.")


def vqvae_from_reference(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A VAR ``VQVAE`` state dict under curricurun's names (φ's renamed, the usage statistic dropped)."""
    mapped = {}
    for key, value in state.items():
        if key in VQVAE_DERIVED:
            continue
        if key.startswith(_SHARED):
            key = "quantize.quant_resi.0." + key[len(_SHARED) :]
        mapped[_PARTIALLY_SHARED.sub(r"quantize.quant_resi.\1.", key)] = value
    return mapped


def vqvae_to_reference(
    state: dict[str, torch.Tensor], share_quant_resi: int, num_scales: int, vocab_size: int
) -> dict[str, torch.Tensor]:
    """curricurun's tokenizer weights under VAR's names, for ``VQVAE(...).load_state_dict(sd, strict=True)``."""
    mapped = {}
    for key, value in state.items():
        if share_quant_resi == 1:
            key = _OURS_PHI.sub("quantize.quant_resi.qresi.", key)
        elif share_quant_resi >= 2:
            key = _OURS_PHI.sub(r"quantize.quant_resi.qresi_ls.\1.", key)
        mapped[key] = value
    mapped["quantize.ema_vocab_hit_SV"] = torch.zeros(num_scales, vocab_size)
    return mapped


def transformer_from_reference(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A VAR ``VAR`` state dict under curricurun's names: the derived buffers dropped, the rest as it is."""
    return {key: value for key, value in state.items() if not TRANSFORMER_DERIVED.match(key)}


def transformer_to_reference(
    state: dict[str, torch.Tensor], patch_nums: tuple[int, ...], depth: int, width: int
) -> dict[str, torch.Tensor]:
    """curricurun's transformer weights with VAR's derived buffers, built as ``models/var.py:105-112`` builds them."""
    levels = token_levels(tuple(patch_nums))
    length = levels.numel()
    d = levels.view(1, length, 1)
    mapped = dict(state)
    mapped["lvl_1L"] = d.transpose(1, 2)[:, 0].contiguous()
    mapped["attn_bias_for_masking"] = (
        torch.where(d >= d.transpose(1, 2), 0.0, -torch.inf).reshape(1, 1, length, length).contiguous()
    )
    for block in range(depth):
        mapped[f"blocks.{block}.attn.zero_k_bias"] = torch.zeros(width)
    return mapped
