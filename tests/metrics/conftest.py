"""Tiny runs for the evaluate tests: an untrained Pyramid-Flow (pixel latents) and a classifier, built in-process
and saved as a user's run directory would be (recipe.resolved.yaml + model.safetensors)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from engine_helpers import REPO
from safetensors.torch import save_file

from curricurun.data.sample_pipeline import open_sample_pipeline
from curricurun.recipe import load_recipe


def _save_run(directory: Path, base: str, overrides: dict) -> Path:
    directory.mkdir(parents=True)
    recipe_path = directory / "recipe.resolved.yaml"
    recipe_path.write_text(yaml.safe_dump({"base": str(REPO / "recipes" / base), **overrides}, sort_keys=False))
    recipe = load_recipe(recipe_path, [])
    torch.manual_seed(0)
    model = open_sample_pipeline(recipe).build_setup().build_model()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(directory / "model.safetensors"))
    return recipe_path


@pytest.fixture(scope="session")
def tiny_flow_run(tmp_path_factory) -> Path:
    """Pyramid-Flow, 1 block of width 32, 2 Euler steps per stage, 10 classes, 200 test images as reference."""
    directory = tmp_path_factory.mktemp("flow") / "run"
    _save_run(directory, "pyramid_flow_tiny.yaml", {
        "setup": {"hidden_size": 32, "depth": 1, "num_heads": 2, "num_classes": 10, "sample_steps": 2},
        "data": {"max_eval_samples": 200},
    })  # fmt: skip
    return directory


@pytest.fixture(scope="session")
def random_classifier_run(tmp_path_factory) -> Path:
    """The demo's classifier (timm test_resnet, 1 channel, 10 classes), initialised but not trained."""
    directory = tmp_path_factory.mktemp("classifier") / "run"
    overrides = {"setup": {"in_channels": 1, "num_classes": 10}, "data": {"max_eval_samples": 200}}
    _save_run(directory, "demo.yaml", overrides)
    return directory


@pytest.fixture(scope="session")
def tiny_tokenizer_run(tmp_path_factory) -> Path:
    """The vqvae_tiny tokenizer, initialised but not trained; 64 test images."""
    directory = tmp_path_factory.mktemp("tokenizer") / "run"
    _save_run(directory, "vqvae_tiny.yaml", {"data": {"max_eval_samples": 64}})
    return directory
