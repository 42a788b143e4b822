"""``curricurun import-weights`` / ``export-weights``: VAR's released state dicts in, VAR-layout state dicts out.

The recipe says what the file is: a ``vqvae`` recipe (``recipes/vqvae_var.yaml`` for ``vae_ch160v4096z32.pth``) makes
a tokenizer directory that ``setup.tokenizer`` accepts; a ``var`` recipe (``recipes/var_d16.yaml`` … ``var_d36.yaml``
for ``var_d16.pth`` …) makes a directory with ``model.safetensors`` and ``recipe.resolved.yaml`` that
``curricurun sample --checkpoint`` and ``setup.weights`` accept. The file is read with the safe loader only
(``curricurun.weights.load_plain_state_dict``), every key and shape is checked before anything is written, and the
directory appears under its final name only when it is complete (written under a temporary name, then renamed).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch

from curricurun.commands import weights_checks as checks
from curricurun.errors import UserError
from curricurun.setups.var import reference_layout as layout
from curricurun.weights import load_plain_state_dict

SUPPORTED = ("vqvae", "var")


def _setup(recipe):
    from curricurun.data.sample_pipeline import open_sample_pipeline

    if recipe.setup.name not in SUPPORTED:
        raise UserError(
            f"setup.name: VAR's weights are a VQ-VAE (setup vqvae) or a transformer (setup var),"
            f" got setup '{recipe.setup.name}'"
        )
    return open_sample_pipeline(recipe).build_setup()


def _temporary_sibling(out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    return out.parent / f".{out.name}.partial-{os.getpid()}"


def _publish_directory(write, out: Path) -> Path:
    """Run ``write(tmp_dir)`` then rename to ``out``; on any failure nothing is left under either name."""
    if out.exists():
        raise UserError(f"--out: {out} already exists; choose a new directory (nothing was written)")
    tmp = _temporary_sibling(out)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        write(tmp)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def reference_tokenizer_state(state: dict[str, torch.Tensor], config, source: str) -> dict[str, torch.Tensor]:
    """A VAR VQ-VAE state dict → curricurun's tokenizer weights, checked against ``config`` (fp32)."""
    from curricurun.setups.vqvae.tokenizer import MultiScaleTokenizer

    checks.raise_problems(checks.tokenizer_problems(state, config), source)
    mapped = layout.vqvae_from_reference(state)
    with torch.device("meta"):
        expected = MultiScaleTokenizer(config).vqvae.state_dict()
    checks.check_keys(mapped, expected, source)
    return {key: value.float().contiguous() for key, value in mapped.items()}


def reference_transformer_state(state: dict[str, torch.Tensor], config, source: str) -> dict[str, torch.Tensor]:
    """A VAR transformer state dict → curricurun's transformer weights, checked against ``config`` (fp32)."""
    from curricurun.setups.var.model import VarTransformer

    checks.raise_problems(checks.transformer_problems(state, config), source)
    mapped = layout.transformer_from_reference(state)
    with torch.device("meta"):
        expected = VarTransformer(config).state_dict()
    checks.check_keys(mapped, expected, source)
    return {key: value.float().contiguous() for key, value in mapped.items()}


def import_weights(recipe, source: Path, out: Path) -> Path:
    """Read VAR's state dict ``source`` as the recipe's model and write ``out`` (a tokenizer or a weights dir)."""
    from safetensors.torch import save_file

    setup = _setup(recipe)
    state = load_plain_state_dict(source, "SOURCE")
    checks.check_kind(state, recipe.setup.name, str(source))
    if recipe.setup.name == "vqvae":
        from curricurun.setups.vqvae.tokenizer import MultiScaleTokenizer, save_tokenizer

        tokenizer = MultiScaleTokenizer(setup.config)
        tokenizer.vqvae.load_state_dict(reference_tokenizer_state(state, setup.config, str(source)), strict=True)
        return _publish_directory(lambda tmp: save_tokenizer(tokenizer, tmp), out)
    weights = reference_transformer_state(state, setup.config, str(source))

    def write(tmp: Path) -> None:
        save_file(weights, str(tmp / "model.safetensors"), metadata={"imported_from": source.name})
        (tmp / "recipe.resolved.yaml").write_text(_yaml(recipe.resolved))

    return _publish_directory(write, out)


def export_weights(recipe, checkpoint: Path, out: Path, fmt: str) -> Path:
    """The recipe's trained model (tokenizer dir, checkpoint or run dir) as a plain VAR-layout state dict ``out``."""
    if fmt != "var":
        raise UserError(f"--format: expected 'var' (VAR's key names), got '{fmt}'")
    if out.suffix not in (".pth", ".pt"):
        raise UserError(f"--out: expected a .pth file (what VAR's torch.load reads), got '{out}'")
    setup = _setup(recipe)
    if recipe.setup.name == "vqvae":
        state = _export_tokenizer(setup.config, checkpoint)
    else:
        state = _export_transformer(setup, checkpoint)
    state = {key: value.detach().cpu().contiguous() for key, value in state.items()}
    tmp = _temporary_sibling(out)
    try:
        torch.save(state, tmp)
        tmp.replace(out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out


VAR_VQVAE_STRUCTURE = {"ch_mult": (1, 1, 2, 2, 4), "num_res_blocks": 2, "attention": True, "mid_attention": True,
                       "norm_groups": 32, "in_channels": 3, "quantizer": "multiscale_residual"}
"""What VAR's ``VQVAE`` class always builds (``models/vqvae.py:31-36``, ``models/basic_vae.py`` ``Normalize``)."""


def _export_tokenizer(config, checkpoint: Path) -> dict[str, torch.Tensor]:
    from curricurun.setups.vqvae.tokenizer import CONFIG_FILE, load_tokenizer

    differences = [
        f"setup.{name}: VAR's VQVAE builds {wanted!r}, the recipe has {getattr(config, name)!r}"
        for name, wanted in VAR_VQVAE_STRUCTURE.items()
        if getattr(config, name) != wanted
    ]
    if differences:
        raise UserError("; ".join(differences) + " (the file would not load into VAR's VQVAE)")
    if not (checkpoint / CONFIG_FILE).is_file():
        raise UserError(f"CHECKPOINT: expected a tokenizer directory with {CONFIG_FILE}, got '{checkpoint}'")
    tokenizer = load_tokenizer(checkpoint)
    if tokenizer.config != config:
        raise UserError(f"CHECKPOINT: the tokenizer {checkpoint} was not made by this recipe (tokenizer.json differs)")
    return layout.vqvae_to_reference(
        tokenizer.vqvae.state_dict(), config.share_quant_resi, len(config.patch_nums), config.vocab_size
    )


def _export_transformer(setup, checkpoint: Path) -> dict[str, torch.Tensor]:
    from curricurun.commands.sample import find_weights
    from curricurun.setups.var.model import VarTransformer
    from curricurun.weights import load_safetensors_weights

    model = VarTransformer(setup.config)
    load_safetensors_weights(model, find_weights(checkpoint, use_ema=False), field="CHECKPOINT")
    config = setup.config
    return layout.transformer_to_reference(model.state_dict(), config.patch_nums, config.depth, config.width)


def _yaml(data) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False)
