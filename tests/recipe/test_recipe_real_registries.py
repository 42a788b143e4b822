"""The recipe loader against the real component registries (skipped while they do not exist)."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from curricurun.errors import RecipeError
from curricurun.recipe import load_recipe

curricula = pytest.importorskip("curricurun.curriculum.registry")
setups = pytest.importorskip("curricurun.setups")
if not (hasattr(curricula, "available") and hasattr(setups, "available")):
    pytest.skip("the component registries have no available() yet", allow_module_level=True)

RECIPE = """\
setup: {{name: {setup}, model: resnet18}}
data: {{source: hub, path: uoft-cs/cifar10, image_size: 32}}
batch: {{global: 64}}
optim: {{lr: 0.001}}
training: {{epochs: 1}}
curriculum: {curriculum}
"""


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def test_every_registered_component_has_a_pydantic_params_model():
    for cls in [*curricula.available().values(), *setups.available().values()]:
        assert issubclass(cls.Params, BaseModel), cls


@pytest.mark.usefixtures("in_tmp")
def test_unknown_names_are_checked_against_the_real_registries(tmp_path):
    (tmp_path / "recipe.yaml").write_text(RECIPE.format(setup="nope", curriculum="[{name: progresive_scales}]"))
    with pytest.raises(RecipeError) as caught:
        load_recipe("recipe.yaml")
    assert caught.value.problems == [
        f"recipe.yaml: setup.name: unknown setup 'nope'; known: {', '.join(sorted(setups.available()))}",
        "recipe.yaml: curriculum.0.name: unknown curriculum 'progresive_scales' (did you mean 'progressive_scales'?); "
        f"known: {', '.join(sorted(curricula.available()))}",
    ]


@pytest.mark.usefixtures("in_tmp")
def test_each_real_curriculum_that_needs_no_params_loads_and_rejects_an_unknown_param(tmp_path):
    if "classification" not in setups.available():
        pytest.skip("no classification setup registered")
    loaded = 0
    for name, cls in curricula.available().items():
        try:
            cls.Params()
        except ValidationError:
            continue  # needs recipe-specific params
        (tmp_path / "recipe.yaml").write_text(RECIPE.format(setup="classification", curriculum=f"[{{name: {name}}}]"))
        recipe = load_recipe("recipe.yaml")
        assert type(recipe.curriculum_params[0]) is cls.Params
        assert type(recipe.setup_params) is setups.available()["classification"].Params
        with pytest.raises(RecipeError) as caught:
            load_recipe("recipe.yaml", ["curriculum.0.not_a_param=1"])
        assert caught.value.problems[0].startswith(
            "--set curriculum.0.not_a_param=1: curriculum.0.not_a_param: unknown key 'not_a_param'"
        )
        loaded += 1
    assert loaded > 0
