"""`curricurun validate` imports only the setup a recipe names, and no torch: what keeps it fast.

Module sets, not timings: each check runs the CLI in a fresh interpreter and reads its ``sys.modules``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from curricurun.setups import timm_names

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "timm", "torchvision")
OTHER_SETUPS = ("var", "vqvae", "pyramid_flow", "yolo_nas_pose")

_RUN_VALIDATE = """
import json, sys
from curricurun.cli import run
sys.argv = ["curricurun", "validate", sys.argv[1]]
code = run()
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def _validate_in_fresh_process(recipe: str, cache_home: Path) -> tuple[int, set[str]]:
    env = {"XDG_CACHE_HOME": str(cache_home), "PATH": "/usr/bin:/bin", "HOME": str(cache_home)}
    done = subprocess.run(
        [sys.executable, "-c", _RUN_VALIDATE, recipe], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["code"], set(result["modules"])


def _warm_timm_cache(cache_home: Path, names: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_home))
    timm_names._write_names(timm_names._cache_file(), names)


def test_validate_demo_imports_only_the_classification_setup_and_no_torch(tmp_path, monkeypatch):
    _warm_timm_cache(tmp_path, ["test_resnet"], monkeypatch)
    code, modules = _validate_in_fresh_process("recipes/demo.yaml", tmp_path)
    assert code == 0
    assert "curricurun.setups.classification" in modules
    for family in OTHER_SETUPS:
        assert not any(
            m == f"curricurun.setups.{family}" or m.startswith(f"curricurun.setups.{family}.") for m in modules
        )
    assert not [m for m in modules if m.split(".")[0] in HEAVY]
    assert not [m for m in modules if m.startswith("curricurun.engine")]


def test_validate_var_recipe_imports_var_but_not_the_other_families(tmp_path):
    code, modules = _validate_in_fresh_process("recipes/var_tiny.yaml", tmp_path)
    assert code == 0
    assert "curricurun.setups.var" in modules
    for family in ("pyramid_flow", "yolo_nas_pose"):
        assert f"curricurun.setups.{family}" not in modules
    assert "curricurun.setups.classification" not in modules


def test_timm_name_cache_accepts_what_it_lists_and_asks_timm_about_the_rest(tmp_path, monkeypatch):
    _warm_timm_cache(tmp_path, ["resnet18"], monkeypatch)
    assert timm_names.unknown_model_message("resnet18.a1_in1k") is None  # pretrained tag: the arch is listed
    # Not in the (deliberately short) cache: timm decides, so a valid name is never rejected by a stale cache.
    assert timm_names.unknown_model_message("test_resnet") is None
    assert timm_names.unknown_model_message("resnet_nope").startswith("unknown timm model 'resnet_nope' (did you mean")
    # Asking timm rewrote the cache with timm's whole list.
    assert "test_resnet" in timm_names._cached_names(timm_names._cache_file())


def test_timm_name_check_works_without_a_writable_cache(tmp_path, monkeypatch):
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    assert timm_names.unknown_model_message("test_resnet") is None
