"""Bad files given to import-weights: one line naming the file or the recipe field, exit 2, nothing written."""

from __future__ import annotations

import os

import pytest
import torch
from engine_helpers import REPO
from weights.var_reference import TOKENIZER_SETS, reference_state, sets, transformer_sets

from curricurun import cli

VQVAE_RECIPE, VAR_RECIPE = str(REPO / "recipes" / "vqvae_var.yaml"), str(REPO / "recipes" / "var_d16.yaml")


class RunsCode:
    """Unpickling this would create the file ``marker`` (a pickle's ``__reduce__`` runs any callable)."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def _refused(capsys, tmp_path, recipe: str, source, overrides: list[str]) -> str:
    out = tmp_path / "out"
    code = cli.run(["import-weights", recipe, str(source), "--out", str(out), *sets(overrides)])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1, lines
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]
    return lines[0]


def test_a_pickle_that_would_run_code_is_refused_and_never_run(capsys, tmp_path):
    marker = tmp_path / "code_ran"
    source = tmp_path / "var_d16.pth"
    torch.save({"head.weight": torch.zeros(2), "payload": RunsCode(str(marker))}, source)
    line = _refused(capsys, tmp_path, VAR_RECIPE, source, ["setup.tokenizer=null"])
    assert "refused by the safe loader" in line and "weights_only=True" in line
    assert not marker.exists()


def test_html_empty_and_truncated_files_say_so(capsys, tmp_path, reference_files):
    html = tmp_path / "var_d16.pth"
    html.write_text("<!DOCTYPE html>\n<html><head><title>Hugging Face</title></head></html>\n")
    assert "is an HTML page" in _refused(capsys, tmp_path, VAR_RECIPE, html, ["setup.tokenizer=null"])
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    assert "is empty (0 bytes)" in _refused(capsys, tmp_path, VAR_RECIPE, empty, ["setup.tokenizer=null"])
    data = reference_files["var_d2"].read_bytes()
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(data[: len(data) // 2])
    assert "is truncated" in _refused(capsys, tmp_path, VAR_RECIPE, truncated, ["setup.tokenizer=null"])


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (["setup.depth=4", "setup.width=128", "setup.num_heads=2"],
         "setup.depth: the file holds 2 blocks, the recipe builds 4"),
        (["setup.vocab_size=4096"], "setup.vocab_size: the file predicts 512 tokens, the recipe builds 4096"),
        (["setup.patch_nums=256"],
         "setup.patch_nums: the file has positions for 130 tokens (first scale 1), the recipe builds 680 tokens"),
    ],
)  # fmt: skip
def test_a_transformer_of_another_configuration_is_named_in_recipe_terms(
    capsys, tmp_path, reference_files, changes, expected
):
    overrides = [*transformer_sets("var_d2", None), *changes]
    assert _refused(capsys, tmp_path, VAR_RECIPE, reference_files["var_d2"], overrides).startswith("error: " + expected)


def test_a_tokenizer_file_passed_as_the_transformer_is_named(capsys, tmp_path, reference_files):
    line = _refused(capsys, tmp_path, VAR_RECIPE, reference_files["vqvae"], ["setup.tokenizer=null"])
    assert "is a VQ-VAE (tokenizer) state dict, but the recipe's setup is var" in line


def test_a_tokenizer_of_another_vocabulary_is_named(capsys, tmp_path, reference_files):
    overrides = [*TOKENIZER_SETS, "setup.vocab_size=4096"]
    line = _refused(capsys, tmp_path, VQVAE_RECIPE, reference_files["vqvae"], overrides)
    assert line.startswith("error: setup.vocab_size: the file has a codebook of 512 codes, the recipe builds 4096")


def test_missing_and_unexpected_keys_are_listed_ten_then_a_count(capsys, tmp_path):
    state = reference_state("var_d2")
    state.pop("head.bias")
    state.update({f"extra.{i}": torch.zeros(1) for i in range(12)})
    source = tmp_path / "edited.pth"
    torch.save(state, source)
    line = _refused(capsys, tmp_path, VAR_RECIPE, source, transformer_sets("var_d2", None))
    assert "1 missing keys: head.bias" in line and "12 unexpected keys: extra.0" in line and "and 2 more" in line


def test_an_existing_output_directory_is_left_as_it_is(capsys, tmp_path, reference_files):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code = cli.run(["import-weights", VAR_RECIPE, str(reference_files["var_d2"]), "--out", str(out),
                    *sets(transformer_sets("var_d2", None))])  # fmt: skip
    assert code == 2 and "already exists" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_export_refuses_a_vqvae_that_vars_class_cannot_build(capsys, tmp_path):
    out = tmp_path / "vae.pth"
    code = cli.run(["export-weights", str(REPO / "recipes" / "vqvae_tiny.yaml"), str(tmp_path), "--out", str(out),
                    "--set", "setup.in_channels=1"])  # fmt: skip
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and not out.exists()
    assert "setup.ch_mult: VAR's VQVAE builds (1, 1, 2, 2, 4), the recipe has (1, 2, 2)" in lines[0]
    assert "setup.in_channels: VAR's VQVAE builds 3, the recipe has 1" in lines[0]
