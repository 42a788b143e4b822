"""export-weights → VAR-layout state dict → import-weights gives back the same tensors, bit for bit.

The exported files are VAR's layout exactly (the same keys, shapes, dtypes and derived buffers as the state dicts
VAR's classes produced), so ``VQVAE(...).load_state_dict(sd, strict=True)`` / ``VAR(...)`` accept them; that load is
run against VAR's code by ``tools/build_var_reference_fixtures.py --check-export``.
"""

from __future__ import annotations

import pytest
import torch
from engine_helpers import REPO
from safetensors.torch import load_file
from weights.var_reference import TOKENIZER_SETS, reference_state, sets, transformer_sets

from curricurun import cli

VQVAE_RECIPE, VAR_RECIPE = str(REPO / "recipes" / "vqvae_var.yaml"), str(REPO / "recipes" / "var_d16.yaml")


def _assert_same(ours: dict[str, torch.Tensor], theirs: dict[str, torch.Tensor]) -> None:
    assert sorted(ours) == sorted(theirs)
    for key, value in theirs.items():
        assert ours[key].dtype == value.dtype and torch.equal(ours[key], value), key


def test_tokenizer_round_trip_is_exact(imported, tmp_path):
    exported = tmp_path / "vae.pth"
    args = ["export-weights", VQVAE_RECIPE, str(imported["vqvae"]), "--out", str(exported), "--format", "var"]
    assert cli.run([*args, *sets(TOKENIZER_SETS)]) == 0
    _assert_same(torch.load(exported, weights_only=True), reference_state("vqvae"))
    again = tmp_path / "again"
    assert cli.run(["import-weights", VQVAE_RECIPE, str(exported), "--out", str(again), *sets(TOKENIZER_SETS)]) == 0
    first = load_file(str(imported["vqvae"] / "tokenizer.safetensors"))
    _assert_same(load_file(str(again / "tokenizer.safetensors")), first)


@pytest.mark.parametrize("name", ["var_d2", "var_d3_saln"])
def test_transformer_round_trip_is_exact(imported, tmp_path, name):
    exported = tmp_path / f"{name}.pth"
    overrides = sets(transformer_sets(name, imported["vqvae"]))
    assert cli.run(["export-weights", VAR_RECIPE, str(imported[name]), "--out", str(exported), *overrides]) == 0
    _assert_same(torch.load(exported, weights_only=True), reference_state(name))
    again = tmp_path / "again"
    assert cli.run(["import-weights", VAR_RECIPE, str(exported), "--out", str(again), *overrides]) == 0
    _assert_same(load_file(str(again / "model.safetensors")), load_file(str(imported[name] / "model.safetensors")))


def test_training_checkpoint_layout_is_accepted(reference_files, imported, tmp_path):
    """VAR's ``ar-ckpt-*.pth`` keeps the weights under ['trainer']['var_wo_ddp'] (VAR#144)."""
    nested = tmp_path / "ar-ckpt-last.pth"
    torch.save({"epoch": 3, "trainer": {"var_wo_ddp": reference_state("var_d2"), "config": {}}}, nested)
    out = tmp_path / "from_nested"
    overrides = sets(transformer_sets("var_d2", imported["vqvae"]))
    assert cli.run(["import-weights", VAR_RECIPE, str(nested), "--out", str(out), *overrides]) == 0
    _assert_same(load_file(str(out / "model.safetensors")), load_file(str(imported["var_d2"] / "model.safetensors")))
