"""Loading semantics: inheritance, overrides, YAML typing, who gets blamed, and the resolved recipe."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from curricurun.errors import RecipeError
from curricurun.recipe import Recipe, dump_yaml, load_recipe, recipe_from_dict

pytestmark = pytest.mark.usefixtures("fake_registries")

BASE = """\
setup: {name: classification, model: resnet18, num_classes: 100}
data: {source: hub, path: uoft-cs/cifar100, image_size: 32, augment: {hflip: true, random_crop_padding: 4}}
batch: {per_device: 128}
optim: {name: sgd, lr: 0.1, betas: [0.9, 0.95], weight_decay: 0.0005}
curriculum: [{name: progressive_resolution, start: 16}]
training: {epochs: 200, log_with: [tensorboard, wandb]}
"""


def problems_of(path, overrides=()):
    with pytest.raises(RecipeError) as caught:
        load_recipe(path, overrides)
    return caught.value.problems


def test_a_minimal_recipe_gets_its_defaults_and_is_named_after_its_file(write, recipe_text):
    recipe = load_recipe(write("cifar10_resnet.yaml", recipe_text()))
    assert recipe.name == "cifar10_resnet"
    assert recipe.training.output_dir == "runs/cifar10_resnet"
    assert recipe.batch.global_batch == 64 and recipe.batch.per_device is None and recipe.batch.accumulation == 1
    assert recipe.optim.name == "adamw" and recipe.optim.betas == (0.9, 0.999) and recipe.optim.eps == 1e-8
    assert recipe.schedule.shape == "cosine" and recipe.schedule.unit == "steps"
    assert recipe.training.eval.every_epochs == 1.0 and recipe.training.checkpoint.keep_last == 2
    assert recipe.training.precision == "no" and recipe.curriculum == []


def test_an_explicit_name_and_output_dir_are_kept(write, recipe_text):
    recipe = load_recipe(write("recipe.yaml", recipe_text({"name": "mine", "training.output_dir": "/scratch/x"})))
    assert (recipe.name, recipe.training.output_dir) == ("mine", "/scratch/x")


def test_base_mappings_merge_key_by_key_while_lists_and_scalars_replace(write):
    write("base.yaml", BASE)
    write(
        "child.yaml",
        "base: base.yaml\n"
        "optim: {lr: 0.2}\n"
        "data: {augment: {hflip: false}}\n"
        "training: {log_with: [csv]}\n"
        "curriculum: []\n",
    )
    recipe = load_recipe("child.yaml")
    # optim merged: lr from the child, the rest from the base
    assert (recipe.optim.name, recipe.optim.lr, recipe.optim.betas, recipe.optim.weight_decay) == (
        "sgd",
        0.2,
        (0.9, 0.95),
        0.0005,
    )
    # two levels deep: hflip replaced, random_crop_padding kept
    assert (recipe.data.augment.hflip, recipe.data.augment.random_crop_padding) == (False, 4)
    # lists replace, they do not concatenate
    assert recipe.training.log_with == ["csv"]
    assert recipe.curriculum == []
    assert recipe.training.epochs == 200 and recipe.name == "child"


def test_a_base_is_found_relative_to_the_file_naming_it_and_may_have_its_own_base(write):
    write("common/base.yaml", BASE)
    write("common/cifar.yaml", "base: base.yaml\ndata: {image_size: 64}\n")
    write("recipes/deep/run.yaml", "base: ../../common/cifar.yaml\ntraining: {epochs: 5}\n")
    recipe = load_recipe("recipes/deep/run.yaml")
    assert (recipe.data.image_size, recipe.data.path, recipe.training.epochs) == (64, "uoft-cs/cifar100", 5)


def test_overrides_are_typed_as_yaml(write, recipe_text):
    write("recipe.yaml", recipe_text())
    recipe = load_recipe(
        "recipe.yaml",
        [
            "optim.lr=1e-3",  # YAML 1.2 reads this as a number
            "batch.accumulation=4",
            "data.augment.hflip=true",
            "optim.betas=[0.8, 0.99]",
            "training.log_with=[csv, tensorboard]",
            "data.eval_split=null",
            "training.precision=no",  # a string, not YAML 1.1's false
        ],
    )
    assert recipe.optim.lr == 0.001 and recipe.batch.accumulation == 4 and recipe.data.augment.hflip is True
    assert recipe.optim.betas == (0.8, 0.99) and recipe.training.log_with == ["csv", "tensorboard"]
    assert recipe.data.eval_split is None and recipe.training.precision == "no"


def test_later_overrides_win_over_earlier_ones_and_over_the_file(write, recipe_text):
    write("recipe.yaml", recipe_text({"optim.lr": 0.5}))
    assert load_recipe("recipe.yaml", ["optim.lr=0.1", "optim.lr=0.2"]).optim.lr == 0.2


def test_an_override_can_fix_a_bad_value_in_the_file(write, recipe_text):
    write("recipe.yaml", recipe_text({"optim.lr": "abc"}))
    assert load_recipe("recipe.yaml", ["optim.lr=0.3"]).optim.lr == 0.3


def test_a_list_index_in_an_override_addresses_one_entry(write, recipe_text):
    entries = [{"name": "progressive_scales", "pg": 0.2}, {"name": "randaugment_ramp"}]
    write("recipe.yaml", recipe_text({"curriculum": entries}))
    recipe = load_recipe(
        "recipe.yaml", ["curriculum.0.pg=0.5", "curriculum.1={name: progressive_resolution, start: 8}"]
    )
    assert recipe.curriculum_params[0].pg == 0.5
    assert recipe.curriculum[1].name == "progressive_resolution" and recipe.curriculum_params[1].start == 8


def test_an_override_creates_the_sections_it_needs(write, recipe_text):
    write("recipe.yaml", recipe_text())
    recipe = load_recipe(
        "recipe.yaml", ["training.ema.decay=0.9999", "training.early_stopping={metric: top1, patience: 3}"]
    )
    assert recipe.training.ema.decay == 0.9999 and recipe.training.ema.schedule == "constant"
    assert (recipe.training.early_stopping.metric, recipe.training.early_stopping.patience) == ("top1", 3)
    # early_stopping was created by the override and still lacks patience: the override is named
    write("recipe.yaml", recipe_text())
    assert problems_of("recipe.yaml", ["training.early_stopping.metric=top1"]) == [
        "--set training.early_stopping.metric=top1: training.early_stopping.patience: required field is missing"
    ]


def test_a_setting_renames_the_default_output_dir(write, recipe_text):
    recipe = load_recipe(write("recipe.yaml", recipe_text()), ["name=sweep_3"])
    assert recipe.training.output_dir == "runs/sweep_3"


def test_yaml_scalars_follow_yaml_1_2(write, recipe_text):
    text = recipe_text({"training.precision": "PLACEHOLDER"}).replace("PLACEHOLDER", "no")
    text += "description: yes\n"
    text = text.replace("lr: 0.001", "lr: 2e-4")
    recipe = load_recipe(write("recipe.yaml", text))
    assert recipe.training.precision == "no" and recipe.description == "yes" and recipe.optim.lr == 0.0002


def test_a_bad_value_written_by_a_base_names_the_base(write):
    write("common/base.yaml", BASE.replace("lr: 0.1", "lr: -1"))
    write("child.yaml", "base: common/base.yaml\ntraining: {epochs: 10}\n")
    assert problems_of("child.yaml") == ["common/base.yaml: optim.lr: expected a positive number, got -1"]


def test_a_bad_base_value_replaced_by_the_child_is_not_reported(write):
    write("base.yaml", BASE.replace("lr: 0.1", "lr: -1"))
    write("child.yaml", "base: base.yaml\noptim: {lr: 0.05}\n")
    assert load_recipe("child.yaml").optim.lr == 0.05


def test_a_rule_broken_across_files_names_the_latest_file_that_touched_the_section(write):
    write("base.yaml", BASE)  # batch: {per_device: 128}
    write("child.yaml", "base: base.yaml\nbatch: {global: 1024}\n")
    assert problems_of("child.yaml") == [
        "child.yaml: batch: set exactly one of 'per_device' and 'global', found 'per_device' and 'global'"
    ]


def test_a_missing_field_names_the_file_that_introduced_its_section(write):
    write("base.yaml", BASE.replace("lr: 0.1, ", ""))  # the base's optim section has no lr
    write("child.yaml", "base: base.yaml\noptim: {weight_decay: 0.01}\n")
    assert problems_of("child.yaml") == ["base.yaml: optim.lr: required field is missing"]
    # a missing top-level section is blamed on the recipe being loaded
    write("partial.yaml", BASE.replace("training: {epochs: 200, log_with: [tensorboard, wandb]}\n", ""))
    write("lonely.yaml", "base: partial.yaml\n")
    assert problems_of("lonely.yaml") == ["lonely.yaml: training: required field is missing"]


def test_component_params_are_validated_and_their_defaults_written_into_the_specs(write, recipe_text):
    entries = [{"name": "progressive_scales", "pg": 0.7}, {"name": "randaugment_ramp"}]
    recipe = load_recipe(write("recipe.yaml", recipe_text({"curriculum": entries})))
    setup = recipe.setup_params
    assert (type(setup).__name__, setup.model, setup.num_classes, setup.pretrained) == (
        "ClassificationParams",
        "resnet18",
        10,
        False,
    )
    scales, ramp = recipe.curriculum_params
    assert (scales.pg, scales.pgwp, ramp.max_magnitude) == (0.7, 0.0, 9.0)
    assert recipe.setup.params == {"model": "resnet18", "num_classes": 10, "pretrained": False}
    assert recipe.resolved["curriculum"] == [
        {"name": "progressive_scales", "pg": 0.7, "pgwp": 0.0},
        {"name": "randaugment_ramp", "max_magnitude": 9.0},
    ]


def test_a_recipe_validated_without_the_loader_says_how_to_get_component_params(recipe_text):
    recipe = Recipe.model_validate(yaml.safe_load(recipe_text()))
    with pytest.raises(RuntimeError, match="load_recipe"):
        _ = recipe.setup_params


def test_the_resolved_recipe_is_plain_json_data_with_the_yaml_key_names(write, recipe_text):
    resolved = load_recipe(write("recipe.yaml", recipe_text()), ["optim.betas=[0.8, 0.9]"]).resolved
    assert json.loads(json.dumps(resolved)) == resolved
    assert resolved["batch"] == {"per_device": None, "global": 64, "accumulation": 1}
    assert resolved["optim"]["betas"] == [0.8, 0.9] and "base" not in resolved


def test_dump_yaml_loads_back_to_the_same_recipe(write, recipe_text):
    changes = {
        "curriculum": [{"name": "progressive_scales", "pg": 0.5}],
        "training.precision": "no",
        "schedule": {"shape": "lin0.5", "warmup_epochs": 3},
        "training.ema": {"decay": 0.9997, "schedule": "exp", "beta": 15},
    }
    first = load_recipe(write("recipe.yaml", recipe_text(changes)), ["training.eval.every_steps=500"])
    second = load_recipe(write("dumped.yaml", dump_yaml(first)))
    assert second.resolved == first.resolved
    assert recipe_from_dict(first.resolved).resolved == first.resolved


def test_recipe_from_dict_names_its_source_in_problems(write, recipe_text):
    data = yaml.safe_load(recipe_text({"optim.lr": 0}))
    with pytest.raises(RecipeError) as caught:
        recipe_from_dict(data, source="runs/x/checkpoint-100/trainer_state.json")
    assert caught.value.problems == [
        "runs/x/checkpoint-100/trainer_state.json: optim.lr: expected a positive number, got 0"
    ]


def test_every_steps_replaces_the_default_every_epochs_but_not_an_explicit_one(write, recipe_text):
    recipe = load_recipe(write("recipe.yaml", recipe_text({"training.eval": {"every_steps": 100}})))
    assert (recipe.training.eval.every_epochs, recipe.training.eval.every_steps) == (None, 100)
    write("recipe.yaml", recipe_text({"training.checkpoint": {"every_steps": 100, "every_epochs": 2}}))
    assert problems_of("recipe.yaml") == [
        "recipe.yaml: training.checkpoint: set at most one of 'every_epochs' and 'every_steps', "
        "found 'every_epochs' and 'every_steps'"
    ]


@pytest.mark.parametrize("shape", ["auto", "lin0", "lin00", "lin0.7", "lin0.05", "sg_cosine", "exp"])
def test_every_documented_schedule_shape_is_accepted(write, recipe_text, shape):
    assert load_recipe(write("recipe.yaml", recipe_text({"schedule": {"shape": shape}}))).schedule.shape == shape


def test_the_recipe_package_imports_no_torch():
    code = "import sys, curricurun.recipe; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
