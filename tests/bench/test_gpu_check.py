"""bench/gpu_check.py --tiny: the GPU check's code paths on CPU, so the script cannot rot between device runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from engine_helpers import REPO, SOLO_TEST_THREADS

# Not on the device machine (README "Run on a GPU"): the check must run without them.
ABSENT_ON_THE_DEVICE = ("datasets", "matplotlib", "typer", "scipy", "skimage")


def test_gpu_check_tiny_runs_every_section_and_writes_sane_json(tmp_path):
    from photo_folder import write_photo_folder

    write_photo_folder(tmp_path / "photos", 16)  # what `make gpu-wheels` prebuilds (256 of them)
    blocked = tmp_path / "absent"
    blocked.mkdir()
    for name in ABSENT_ON_THE_DEVICE:
        (blocked / f"{name}.py").write_text(f"raise ImportError('{name} is not on the device')\n")
    command = [sys.executable, str(REPO / "bench" / "gpu_check.py"), "--tiny", "--out", str(tmp_path),
               "--photos", str(tmp_path / "photos")]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": SOLO_TEST_THREADS, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(blocked)}
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "gpu_check_cpu.json").read_text())
    assert json.loads(done.stdout.strip().splitlines()[-1]) == result
    assert "error" not in done.stdout and result["tiny"] is True and result["device"] == "cpu"

    var, sizes = result["var_d16"], result["sizes"]
    assert var["tokens"] == sum(p * p for p in sizes["patch_nums"])
    # Counted FLOPs of forward + backward: near 6 · parameters · tokens (embeddings and per-image adaLN excepted).
    assert 0.3 < var["flops_per_step"] / (6 * var["params"] * var["batch"] * var["tokens"]) < 3
    for arm in ("eager", "compiled"):
        assert var[arm]["step_s"] > 0 and var[arm]["images_per_s"] > 0 and var[arm]["mfu"] is None  # no CPU peak
    assert var["compiled"]["backend"] == "eager"
    stages = result["var_stages"]
    assert [s["stage"] for s in stages] == list(range(len(sizes["patch_nums"])))
    assert stages[-1]["token_ratio"] == stages[-1]["time_ratio"] == 1.0
    assert all(0 < s["token_ratio"] <= 1 and s["time_ratio"] > 0 for s in stages)

    resnet = result["resnet50"]["stages"]
    assert [s["side"] for s in resnet] == sizes["sides"]
    for stage in resnet:
        assert stage["pixel_ratio"] == round((stage["side"] / sizes["sides"][-1]) ** 2, 4)
        assert abs(stage["fidelity"] - stage["pixel_ratio"] / stage["time_ratio"]) < 2e-3
        assert stage["loader_images_per_s"] > 0 and isinstance(stage["loader_keeps_up"], bool)
    both = result["engine_vs_hand"]
    assert abs(both["ratio"] - both["engine_images_per_s"] / both["hand_images_per_s"]) < 1e-3  # (rates rounded)
    assert 0.3 < both["ratio"] < 3 and both["goal"] == 0.98
    assert result["elapsed_s"] < 60
