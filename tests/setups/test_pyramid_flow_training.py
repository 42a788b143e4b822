"""The tiny Pyramid-Flow recipe trains through the real CLI: the loss falls, the model sees stage segments, and
``curricurun sample`` writes a grid from the checkpoint."""

from __future__ import annotations

import json

import pytest
import yaml
from engine_helpers import REPO, needs_fashion_mnist, run_cli
from PIL import Image


@pytest.mark.slow
@needs_fashion_mnist
def test_the_tiny_recipe_learns_and_samples_a_grid(tmp_path):
    # The shipped recipe, shortened: 40 steps of 24 images (a multiple of 4 for [1, 2, 1]) and a small evaluation.
    recipe = tmp_path / "short.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "base": str(REPO / "recipes" / "pyramid_flow_tiny.yaml"),
                "setup": {"preview_classes": 3, "sample_steps": 3},
                "data": {"max_eval_samples": 24},
                "batch": {"per_device": 24},
                "schedule": {"warmup_steps": 5},
                "training": {"steps": 40, "log_every_steps": 5, "eval": {"every_steps": 40}},
            }
        )
    )
    run = tmp_path / "run"
    trace = tmp_path / "trace"
    run_cli(["train", str(recipe), "--output-dir", str(run)], env={"CURRICURUN_SAMPLE_TRACE": str(trace)})

    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    assert len(losses) == 8
    # measured: 0.321 over steps 1-5 and 0.155 over steps 36-40
    assert losses[-1] < 0.7 * losses[0], losses
    evaluation = [r for r in records if "eval/loss" in r][-1]
    assert {"eval/loss_stage0", "eval/loss_stage1", "eval/loss_stage2"} <= set(evaluation)
    assert (run / "samples" / "step-00000040.png").is_file()

    first = json.loads((trace / "samples-rank0.jsonl").read_text().splitlines()[0])
    # [1, 2, 1] of 24: 6 samples at 8 px, 12 at 16 px, 6 at 32 px, then 24 timesteps and 24 labels
    assert first["model_inputs"][0] == [[6, 1, 8, 8], [12, 1, 16, 16], [6, 1, 32, 32], [24], [24]]

    grid = tmp_path / "grid.png"
    arguments = ["sample", str(recipe), "--checkpoint", str(run), "--classes", "0,1,2", "--steps", "3"]
    run_cli([*arguments, "--cfg", "1.5", "--seed", "0", "--out", str(grid)])
    # 3 images of 32 px, upscaled 128 // 32 = 4× to 128 px, with 2 px padding: 3·130 + 2 = 392 by 132
    assert Image.open(grid).size == (392, 132)
