"""training.fsdp: the plugin it builds, its refusal on CPU, and the full-state checkpoint under FSDP2 on 2 processes.

Accelerate does not shard on CPU (curricurun/engine/sharding.py quotes where), so the 2-process test shards with
torch's ``fully_shard`` on gloo, which is what Accelerate's FSDP2 path calls on GPUs, and runs curricurun's gather,
checkpoint files and restore on it (tests/engine/fsdp_worker.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from engine_helpers import REPO, small_recipe
from safetensors.torch import load_file

from curricurun.engine import sharding
from curricurun.errors import RecipeError, UserError
from curricurun.recipe.schema import FsdpConfig

WORKER = REPO / "tests" / "engine" / "fsdp_worker.py"


def _worker(args: list[str], processes: int) -> None:
    launcher = ["-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(29600 + os.getpid() % 900)]
    command = [sys.executable, *(launcher if processes == 2 else []), str(WORKER), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.slow
def test_sharded_training_checkpoints_full_states_and_resumes_bitwise_on_two_processes_and_on_one(tmp_path):
    _worker(["two", str(tmp_path)], processes=2)
    _worker(["one", str(tmp_path)], processes=1)
    checkpoint = tmp_path / "checkpoint-00000002"
    weights = load_file(str(checkpoint / "model.safetensors"))
    assert weights["0.fc.weight"].shape == (16, 16) and weights["2.weight"].shape == (4, 16)  # whole, not shards
    moments = torch.load(checkpoint / "optimizer.pt", weights_only=True)
    assert sorted(moments["state"]) == list(range(10)) and moments["state"][0]["exp_avg"].shape == (16, 16)
    uninterrupted, resumed, one = (
        load_file(str(tmp_path / f"{n}.safetensors")) for n in ("uninterrupted", "resumed", "one")
    )
    assert all(torch.equal(uninterrupted[name], resumed[name]) for name in uninterrupted)
    # 1 process sums the global batch in another order than the sharded reduce-scatter: rounding only.
    for name in uninterrupted:
        torch.testing.assert_close(one[name], uninterrupted[name], atol=1e-6, rtol=0)


def test_a_recipe_asking_for_fsdp_on_cpu_is_one_line_and_exit_2(tmp_path):
    recipe = small_recipe(tmp_path, training={"fsdp": {"wrap_classes": ["BasicBlock"]}})
    command = [sys.executable, "-m", "curricurun", "train", str(recipe), "--output-dir", str(tmp_path / "run")]
    result = subprocess.run(
        command, capture_output=True, text=True, cwd=REPO, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: {sharding.CPU_REFUSAL}"], result.stderr
    assert not (tmp_path / "run").exists()


def test_the_plugin_follows_the_recipe_with_a_gpu(monkeypatch):
    monkeypatch.setenv("FSDP_CPU_RAM_EFFICIENT_LOADING", "False")  # the plugin sets it: restored after the test
    two = sharding.fsdp_plugin(FsdpConfig(wrap_classes=["AdaLNSelfAttn"]), cuda=True)
    assert (two.fsdp_version, two.reshard_after_forward, two.transformer_cls_names_to_wrap) == (
        2, False, ["AdaLNSelfAttn"],
    )  # fmt: skip
    assert two.state_dict_type.name == "FULL_STATE_DICT"
    one = sharding.fsdp_plugin(FsdpConfig(version=1, sharding_strategy="FULL_SHARD"), cuda=True)
    assert one.fsdp_version == 1 and str(one.reshard_after_forward).endswith("FULL_SHARD")
    assert sharding.fsdp_plugin(None, cuda=False) is None
    with pytest.raises(UserError, match="FSDP needs a CUDA GPU"):
        sharding.fsdp_plugin(FsdpConfig(), cuda=False)


def test_wrap_classes_must_be_modules_of_the_model_and_fsdp_excludes_ema_and_exporting_setups(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU())
    sharding.check_wrap_classes(model, SimpleNamespace(wrap_classes=["Linear"]))
    with pytest.raises(UserError, match=r"wrap_classes: Block is not a module of the model; it has Linear, ReLU"):
        sharding.check_wrap_classes(model, SimpleNamespace(wrap_classes=["Block"]))
    sharding.refuse_exporting_setups(SimpleNamespace(), "var", None)
    with pytest.raises(UserError, match="training.fsdp: the vqvae setup exports its model from one process"):
        sharding.refuse_exporting_setups(SimpleNamespace(), "vqvae", object())
    sharding.refuse_exporting_setups(None, "vqvae", object())
    from curricurun.recipe import load_recipe

    with pytest.raises(RecipeError, match="'fsdp' with 'ema' is not supported"):
        load_recipe(small_recipe(tmp_path, training={"fsdp": {}, "ema": {"decay": 0.99}}))
    with pytest.raises(RecipeError, match="version"):
        load_recipe(small_recipe(tmp_path, training={"fsdp": {"version": True}}))
