"""Checks of a state dict against the model a recipe builds, with each mismatch named as a recipe field.

VAR's issue tracker shows what goes wrong when loading its released files: the wrong depth for the file (VAR#136),
key mismatches after the checkpoints were replaced (VAR#25, #38), the VQ-VAE passed where the transformer belongs.
So before anything is written, the file's shapes are read back into the recipe's terms
(``setup.depth: the file holds 30 blocks, the recipe builds 16``), and only then are the keys compared.
"""

from __future__ import annotations

import re

import torch

from curricurun.errors import UserError

_BLOCK = re.compile(r"^blocks\.(\d+)\.")
_PHI = re.compile(r"^quantize\.quant_resi\.(?:qresi_ls\.)?(\d+|qresi)\.weight$")  # VAR's 3 φ layouts
LISTED_KEYS = 10


def _dim(state: dict[str, torch.Tensor], key: str, axis: int) -> int | None:
    value = state.get(key)
    return int(value.shape[axis]) if value is not None and value.dim() > axis else None


def _blocks(state: dict[str, torch.Tensor]) -> int:
    found = {int(match.group(1)) for key in state if (match := _BLOCK.match(key))}
    return max(found) + 1 if found else 0


def _looks_like_tokenizer(state: dict[str, torch.Tensor]) -> bool:
    return any(key.startswith(("encoder.", "decoder.", "quantize.")) for key in state)


def _looks_like_transformer(state: dict[str, torch.Tensor]) -> bool:
    return "class_emb.weight" in state or _blocks(state) > 0


def _field_problems(pairs: list[tuple[str, str, object, object]]) -> list[str]:
    """``(field, what, file value, recipe value)`` → one phrase per difference (a value the file lacks is skipped)."""
    return [
        f"{field}: the file {what.format(theirs)}, the recipe builds {ours}"
        for field, what, theirs, ours in pairs
        if theirs is not None and theirs != ours
    ]


def transformer_problems(state: dict[str, torch.Tensor], config) -> list[str]:
    """Recipe fields that disagree with a VAR transformer state dict (``config``: the recipe's ``VarConfig``)."""
    length = sum(p * p for p in config.patch_nums)
    shared = "shared_ada_lin.1.weight" in state
    normalised = any(key.endswith("attn.scale_mul_1H11") for key in state)
    first = _dim(state, "pos_start", 1)
    positions = _dim(state, "pos_1LC", 1)
    positions = None if positions is None else f"{positions} tokens (first scale {first})"
    classes = _dim(state, "class_emb.weight", 0)
    return _field_problems(
        [
            ("setup.depth", "holds {} blocks", _blocks(state), config.depth),
            ("setup.width", "has width {}", _dim(state, "word_embed.weight", 0), config.width),
            ("setup.vocab_size", "predicts {} tokens", _dim(state, "head.weight", 0), config.vocab_size),
            ("setup.token_channels", "reads {}-channel codes", _dim(state, "word_embed.weight", 1),
             config.token_channels),
            ("setup.patch_nums", "has positions for {}", positions,
             f"{length} tokens (first scale {config.patch_nums[0] ** 2})"),
            ("setup.num_classes", "has {} classes", None if classes is None else classes - 1, config.num_classes),
            ("setup.shared_adaln", "has shared_adaln {}", shared, config.shared_adaln),
            ("setup.attn_l2_norm", "has attn_l2_norm {}", normalised, config.attn_l2_norm),
        ]
    )


def tokenizer_problems(state: dict[str, torch.Tensor], config) -> list[str]:
    """Recipe fields that disagree with a VAR VQ-VAE state dict (``config``: the recipe's ``VQVAEConfig``).

    The patch numbers are not in the weights: one VQ-VAE serves 256, 512 and 1024 px (VAR ``models/vqvae.py:92-95``
    replaces ``ema_vocab_hit_SV`` when its scale count differs), so they are the recipe's choice, never an error.
    """
    phis = {match.group(1) for key in state if (match := _PHI.match(key))}
    ours_phis = {str(i) for i in range(config.share_quant_resi or len(config.patch_nums))}
    return _field_problems(
        [
            ("setup.vocab_size", "has a codebook of {} codes", _dim(state, "quantize.embedding.weight", 0),
             config.vocab_size),
            ("setup.z_channels", "has {}-channel codes", _dim(state, "quantize.embedding.weight", 1),
             config.z_channels),
            ("setup.ch", "has base width {}", _dim(state, "encoder.conv_in.weight", 0), config.ch),
            ("setup.in_channels", "reads {}-channel images", _dim(state, "encoder.conv_in.weight", 1),
             config.in_channels),
            ("setup.share_quant_resi", "has {} φ convolutions", len(phis) if phis else None, len(ours_phis)),
        ]
    )


def check_kind(state: dict[str, torch.Tensor], setup_name: str, source: str) -> None:
    """A VQ-VAE file given to a transformer recipe (or the reverse) is named as such, not as 300 missing keys."""
    if setup_name == "var" and _looks_like_tokenizer(state) and not _looks_like_transformer(state):
        raise UserError(
            f"SOURCE: {source} is a VQ-VAE (tokenizer) state dict, but the recipe's setup is var (the transformer):"
            " import it with a vqvae recipe such as recipes/vqvae_var.yaml"
        )
    if setup_name == "vqvae" and _looks_like_transformer(state) and not _looks_like_tokenizer(state):
        raise UserError(
            f"SOURCE: {source} is a VAR transformer state dict, but the recipe's setup is vqvae:"
            " import it with a var recipe such as recipes/var_d16.yaml"
        )


def check_keys(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], source: str) -> None:
    """Every key mapped and every shape equal, or one line listing what differs (at most 10 keys, then a count)."""
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    shapes = [
        f"{key} {list(state[key].shape)} (model: {list(value.shape)})"
        for key, value in expected.items()
        if key in state and state[key].shape != value.shape
    ]
    parts = []
    for label, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)):
        if keys:
            more = f" and {len(keys) - LISTED_KEYS} more" if len(keys) > LISTED_KEYS else ""
            parts.append(f"{len(keys)} {label}: {', '.join(keys[:LISTED_KEYS])}{more}")
    if parts:
        raise UserError(f"SOURCE: {source} does not match the recipe's model: {'; '.join(parts)}")


def raise_problems(problems: list[str], source: str) -> None:
    if problems:
        raise UserError(f"{'; '.join(problems)} (SOURCE: {source})")
