"""``training.eval.generative``: a pyramid_flow run logs ``eval/fid`` at its evaluations, the same number
``curricurun evaluate`` gives on that step's checkpoint; the feature network is checked before training."""

from __future__ import annotations

import json
import math

from engine_helpers import needs_fashion_mnist

from curricurun import cli
from curricurun.commands.evaluate import EvaluateRequest, run_evaluate
from curricurun.recipe import load_recipe
from curricurun.setups.base import SampleOptions

pytestmark = needs_fashion_mnist


def test_fid_is_logged_at_each_evaluation_and_matches_evaluate(tiny_flow_run, random_classifier_run, tmp_path):
    out = tmp_path / "run"
    generative = f"{{num_samples: 8, batch_size: 4, seed: 5, cfg: 1.5, feature_extractor: {random_classifier_run}}}"
    sets = ["training.steps=4", "training.eval.every_steps=2", "training.checkpoint.every_steps=4",
            "schedule.warmup_steps=1", "batch.per_device=12", "data.max_eval_samples=40", "setup.preview_classes=0",
            f"training.eval.generative={generative}"]  # fmt: skip
    arguments = ["train", str(tiny_flow_run / "recipe.resolved.yaml"), "--output-dir", str(out)]
    assert cli.run([*arguments, *[part for value in sets for part in ("--set", value)]]) == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    fids = {record["step"]: record["eval/fid"] for record in records if "eval/fid" in record}
    assert sorted(fids) == [2, 4] and all(math.isfinite(value) and value > 0 for value in fids.values()), fids
    assert fids[2] != fids[4]  # the weights moved between the evaluations; the samples' noise did not
    recipe = load_recipe(out / "recipe.resolved.yaml", [])
    request = EvaluateRequest(checkpoint=out, num_samples=8, batch_size=4, seed=5, npz=tmp_path / "s.npz",
                              feature_extractor=str(random_classifier_run), options=SampleOptions(cfg=1.5))  # fmt: skip
    assert abs(run_evaluate(recipe, request, print)["fid"] - fids[4]) < 1e-6 * max(1.0, fids[4])


def test_missing_feature_network_is_one_line_before_training(tiny_flow_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    recipe = str(tiny_flow_run / "recipe.resolved.yaml")
    for value, expected in (("{num_samples: 8}", "weights-inception-2015-12-05-6726825d.pth"),
                            ("{feature_extractor: no/such/run}", "classification run directory")):  # fmt: skip
        code = cli.run(
            ["train", recipe, "--output-dir", str(tmp_path / "x"), "--set", f"training.eval.generative={value}"]
        )
        error = capsys.readouterr().err.strip()
        assert code == 2 and "\n" not in error and "training.eval.generative.feature_extractor" in error, error
        assert expected in error and not (tmp_path / "x").exists()
