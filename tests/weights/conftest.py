"""Shared fixtures: VAR's reference state dicts written as ``.pth`` files and imported once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from engine_helpers import REPO
from weights.var_reference import TOKENIZER_SETS, TRANSFORMER_OPTIONS, reference_state, sets, transformer_sets

from curricurun import cli


@pytest.fixture(scope="session")
def reference_files(tmp_path_factory) -> dict[str, Path]:
    """Each fixture's VAR state dict saved as VAR saves it (``torch.save(model.state_dict())``)."""
    folder = tmp_path_factory.mktemp("var_pth")
    files = {}
    for name in ("vqvae", *TRANSFORMER_OPTIONS):
        files[name] = folder / f"{name}.pth"
        torch.save(reference_state(name), files[name])
    return files


@pytest.fixture(scope="session")
def imported(reference_files, tmp_path_factory) -> dict[str, Path]:
    """``curricurun import-weights`` of each reference file: a tokenizer directory and two weights directories."""
    folder = tmp_path_factory.mktemp("imported")
    vqvae_recipe, var_recipe = str(REPO / "recipes" / "vqvae_var.yaml"), str(REPO / "recipes" / "var_d16.yaml")
    out = {"vqvae": folder / "tokenizer"}
    args = ["import-weights", vqvae_recipe, str(reference_files["vqvae"]), "--out", str(out["vqvae"])]
    assert cli.run([*args, *sets(TOKENIZER_SETS)]) == 0
    for name in TRANSFORMER_OPTIONS:
        out[name] = folder / name
        args = ["import-weights", var_recipe, str(reference_files[name]), "--out", str(out[name])]
        assert cli.run([*args, *sets(transformer_sets(name, out["vqvae"]))]) == 0
    return out

