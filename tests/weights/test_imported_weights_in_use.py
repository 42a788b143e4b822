"""Imported weights are used as they are: ``curricurun sample --checkpoint DIR`` and ``setup.weights`` in training.

The sampling test runs ``recipes/var_d16.yaml`` narrowed to the fixture's depth-2 model (a full random-weight d16
sample was run by hand, see the README); the training test starts ``recipes/var_tiny.yaml`` from imported weights
and checks the logged loss of step 0 against the imported model's loss on the very batch that step trained on.
"""

from __future__ import annotations

import json

import torch
import torch.nn.functional as F
from engine_helpers import FASHION_MNIST, REPO, needs_fashion_mnist, run_cli
from setup_helpers import tiny_tokenizer
from weights.var_reference import generated_tensor, sets, transformer_sets

from curricurun import cli
from curricurun.curriculum.base import StageState
from curricurun.data.idx import load_idx_split
from curricurun.recipe import load_recipe
from curricurun.setups.var.model import VarTransformer
from curricurun.setups.var.reference_layout import transformer_to_reference
from curricurun.setups.var.setup import VarSetup

VAR_TINY = REPO / "recipes" / "var_tiny.yaml"


def test_sample_writes_a_grid_from_an_imported_transformer(imported, tmp_path):
    grid = tmp_path / "grid.png"
    args = ["sample", str(REPO / "recipes" / "var_d16.yaml"), "--checkpoint", str(imported["var_d2"]),
            "--classes", "1,2", "--cfg", "4", "--top-k", "900", "--top-p", "0.96", "--seed", "0", "--out", str(grid)]
    assert cli.run([*args, *sets(transformer_sets("var_d2", imported["vqvae"]))]) == 0  # fmt: skip
    assert grid.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _var_layout_file(recipe, path) -> None:
    """A VAR-layout state dict of the recipe's shape with non-trivial weights (what ``var_d16.pth`` would be)."""
    config = VarSetup(recipe.setup_params, None).config
    with torch.device("meta"):
        shapes = {key: tuple(value.shape) for key, value in VarTransformer(config).state_dict().items()}
    state = {key: generated_tensor(key, shape) for key, shape in shapes.items()}
    torch.save(transformer_to_reference(state, config.patch_nums, config.depth, config.width), path)


@needs_fashion_mnist
def test_training_starts_from_imported_weights(tmp_path):
    tokenizer = tiny_tokenizer(tmp_path / "tok")
    # No curriculum, no class dropout, no drop path: step 0's loss is a function of the weights and the batch only.
    overrides = [f"setup.tokenizer={tokenizer}", "curriculum=[]", "schedule.shape=lin0", "setup.class_dropout=0",
                 "setup.drop_path_rate=0", "data.max_train_samples=64", "batch.per_device=16", "training.steps=3",
                 "schedule.warmup_steps=1",
                 "training.log_every_steps=1", "training.eval={every_steps: null, every_epochs: null}",
                 "setup.preview_classes=0"]  # fmt: skip
    source, weights = tmp_path / "var_tiny.pth", tmp_path / "imported"
    _var_layout_file(load_recipe(VAR_TINY, overrides), source)
    assert cli.run(["import-weights", str(VAR_TINY), str(source), "--out", str(weights), *sets(overrides)]) == 0

    run_dir, trace = tmp_path / "run", tmp_path / "trace"
    train_args = ["train", str(VAR_TINY), *sets([*overrides, f"setup.weights={weights}"]), "--output-dir", str(run_dir)]
    run_cli(train_args, env={"CURRICURUN_SAMPLE_TRACE": str(trace)})
    logged = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    step0_loss = next(entry["loss"] for entry in logged if "loss" in entry)
    record = json.loads((trace / "samples-rank0.jsonl").read_text().splitlines()[0])

    images, labels = load_idx_split(FASHION_MNIST, "train")
    pixels = torch.from_numpy(images[record["indices"]]).float().div(255).unsqueeze(1)
    batch = {"image": F.interpolate(pixels, size=32, mode="bilinear", align_corners=False) * 2 - 1,
             "label": torch.from_numpy(labels[record["indices"]])}  # fmt: skip
    assert abs(float(batch["image"][0].double().sum()) - record["first_image_sum"]) < 1e-3  # the same batch
    setup = VarSetup(load_recipe(VAR_TINY, [*overrides, f"setup.weights={weights}"]).setup_params, None)
    model = setup.build_model().train()
    with torch.no_grad():
        expected = float(setup.training_loss(model, batch, StageState()))
    assert abs(step0_loss - expected) <= 1e-5 * max(1.0, abs(expected)), (step0_loss, expected)
    # And the run really started from the file, not from a fresh initialisation.
    fresh = VarSetup(load_recipe(VAR_TINY, overrides).setup_params, None)
    with torch.no_grad():
        assert abs(float(fresh.training_loss(fresh.build_model().train(), batch, StageState())) - expected) > 1e-3
