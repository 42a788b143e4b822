"""A short real Fashion-MNIST run of the vqvae setup: it learns, draws its grids, and exports an exact tokenizer."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from engine_helpers import FASHION_MNIST, needs_fashion_mnist
from PIL import Image
from safetensors.torch import load_file

from curricurun import cli
from curricurun.engine.evaluation import first_evaluation_batch
from curricurun.setups.vqvae.tokenizer import load_tokenizer
from curricurun.setups.vqvae.vqvae import VQVAE


def _recipe(tmp_path, **setup):
    """960 Fashion-MNIST images at 16 px, a small VQ-VAE with a 1, 2, 4, 8 pyramid, 45 steps."""
    recipe = {
        "description": "vqvae test recipe",
        "seed": 1,
        "setup": {
            "name": "vqvae",
            "ch": 8,
            "ch_mult": [1, 2],
            "num_res_blocks": 1,
            "norm_groups": 4,
            "z_channels": 8,
            "vocab_size": 64,
            "patch_nums": [1, 2, 4, 8],
            "pictures": 4,
            **setup,
        },
        "data": {
            "source": "idx",
            "path": str(FASHION_MNIST),
            "image_size": 16,
            "max_train_samples": 960,
            "max_eval_samples": 64,
        },
        "batch": {"per_device": 32},
        "optim": {"name": "adamw", "lr": 3e-3, "betas": [0.5, 0.9]},
        "schedule": {"shape": "cosine", "warmup_steps": 2, "final_ratio": 0.3},
        "training": {
            "steps": 45,
            "log_every_steps": 15,
            "eval": {"every_steps": 5},
            "checkpoint": {"every_steps": 45, "keep_last": 1},
        },
    }
    path = tmp_path / "vqvae.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def _evaluations(run):
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in records if "eval/psnr" in r]


@needs_fashion_mnist
@pytest.mark.slow
def test_a_short_run_learns_draws_its_grids_and_exports_a_tokenizer_that_reproduces_its_reconstructions(tmp_path):
    run = tmp_path / "run"
    recipe = _recipe(tmp_path)
    assert cli.run(["train", str(recipe), "--output-dir", str(run)]) == 0
    evaluations = _evaluations(run)
    assert len(evaluations) == 9  # every 5 of 45 steps
    first, last = evaluations[0]["eval/psnr"], evaluations[-1]["eval/psnr"]
    assert last - first >= 6.0, [round(e["eval/psnr"], 2) for e in evaluations]
    assert evaluations[-1]["eval/mse"] < evaluations[0]["eval/mse"]
    assert 0 < evaluations[-1]["eval/usage"] <= 100

    grids = sorted(p.name for p in (run / "reconstructions").iterdir())
    assert grids[0] == "step-00000005.png" and grids[-1] == "step-00000045.png" and len(grids) == 9
    assert Image.open(run / "reconstructions" / grids[-1]).size == (4 * 98 + 2, 2 * 98 + 2)

    # The exported tokenizer against the final checkpoint's model, on the grid's evaluation images.
    tokenizer = load_tokenizer(run / "tokenizer")
    model = VQVAE(tokenizer.config)
    model.load_state_dict(load_file(str(run / "checkpoint-00000045" / "model.safetensors")))
    from curricurun.data import load_recipe_split
    from curricurun.recipe import load_recipe

    data = load_recipe(recipe).data
    images = first_evaluation_batch(load_recipe_split(data, "test", 16), 16, 16, "cpu")["image"]
    with torch.no_grad():
        expected = model.eval()(images).reconstruction.clamp(-1, 1)
    assert torch.equal(tokenizer.decode(tokenizer.encode(images)), expected)


@needs_fashion_mnist
@pytest.mark.slow
def test_a_resumed_run_with_every_codebook_option_ends_with_the_same_weights_and_codebook_state(tmp_path):
    recipe = _recipe(tmp_path, codebook_update="ema", codebook_init="kmeans", dead_code_restart=True)
    steps = ["--set", "training.steps=6", "--set", "training.eval.every_steps=6", "--set", "data.max_train_samples=192"]
    assert cli.run(["train", str(recipe), "--output-dir", str(tmp_path / "straight"), *steps]) == 0
    paused = ["train", str(recipe), "--output-dir", str(tmp_path / "paused"), *steps]
    assert cli.run([*paused, "--stop-after", "3"]) == 0
    assert cli.run([*paused, "--resume"]) == 0
    straight = load_file(str(tmp_path / "straight" / "checkpoint-00000006" / "model.safetensors"))
    resumed = load_file(str(tmp_path / "paused" / "checkpoint-00000006" / "model.safetensors"))
    assert int(resumed["codebook_upkeep.updates"]) == 6 and bool(resumed["codebook_upkeep.initialised"])
    assert straight.keys() == resumed.keys()
    assert all(torch.equal(straight[key], resumed[key]) for key in straight)
