"""Bad recipes and overrides: each gives exactly one line naming the file or override, the field, and the fix.

The table holds one case per row: changes to the minimal recipe (dotted keys; ``"<drop>"`` removes a key),
the ``--set`` overrides, and the one problem expected, in full.
"""

from __future__ import annotations

import pytest

from curricurun.errors import RecipeError, UserError
from curricurun.recipe import load_recipe

pytestmark = pytest.mark.usefixtures("fake_registries")

DROP = "<drop>"
ONE_SCALES_ENTRY = {"curriculum": [{"name": "progressive_scales"}]}
SHAPES = "'constant', 'cosine', 'linear', 'step', 'sg_cosine', 'lin', 'lin0', 'lin00', 'cos', 'exp', 'auto'"
DATA_KEYS = (
    "source, path, config, revision, train_split, eval_split, image_column, label_column, image_size, num_workers, "
    "max_train_samples, max_eval_samples, augment, replay, pipeline, corrupt_images"
)

# (id, changes to the minimal recipe, overrides, the expected problem)
CASES = [
    # wrong types and out-of-range values
    ("lr_not_a_number", {"optim.lr": "abc"}, [], "recipe.yaml: optim.lr: expected a positive number, got 'abc'"),
    ("lr_negative", {"optim.lr": -0.1}, [], "recipe.yaml: optim.lr: expected a positive number, got -0.1"),
    ("lr_infinite", {"optim.lr": float("inf")}, [], "recipe.yaml: optim.lr: expected a positive number, got inf"),
    ("seed_fractional", {"seed": 2.5}, [], "recipe.yaml: seed: expected a non-negative integer, got 2.5"),
    (
        "batch_fractional",
        {"batch.global": 2.5},
        [],
        "recipe.yaml: batch.global: expected a positive integer (or null), got 2.5",
    ),
    ("image_size_zero", {"data.image_size": 0}, [], "recipe.yaml: data.image_size: expected a positive integer, got 0"),
    (
        "num_workers_negative",
        {"data.num_workers": -1},
        [],
        "recipe.yaml: data.num_workers: expected a non-negative integer, got -1",
    ),
    (
        "precision_unknown",
        {"training.precision": "fp32"},
        [],
        "recipe.yaml: training.precision: expected one of 'no', 'fp16', 'bf16', 'auto', got 'fp32'",
    ),
    (
        "optimizer_typo",
        {"optim.name": "adamww"},
        [],
        "recipe.yaml: optim.name: expected one of 'adamw', 'adam', 'sgd', 'lamb', got 'adamww' (did you mean 'adamw'?)",
    ),
    (
        "data_source_unknown",
        {"data.source": "s3"},
        [],
        "recipe.yaml: data.source: expected one of 'hub', 'local', 'idx', got 's3'",
    ),
    ("log_with_not_a_list", {"training.log_with": 3}, [], "recipe.yaml: training.log_with: expected a list, got 3"),
    (
        "hflip_not_a_bool",
        {"data.augment": {"hflip": "maybe"}},
        [],
        "recipe.yaml: data.augment.hflip: expected true or false, got 'maybe'",
    ),
    ("section_not_a_mapping", {"optim": 3}, [], "recipe.yaml: optim: expected a mapping, got 3"),
    (
        "optional_section_not_a_mapping",
        {"training.ema": 3},
        [],
        "recipe.yaml: training.ema: expected a mapping (or null), got 3",
    ),
    (
        "betas_too_short",
        {"optim.betas": [0.9]},
        [],
        "recipe.yaml: optim.betas: expected a list of 2 numbers, got [0.9]",
    ),
    (
        "beta_out_of_range",
        {"optim.betas": [0.9, 1.5]},
        [],
        "recipe.yaml: optim.betas.1: expected a number >= 0 and < 1, got 1.5",
    ),
    (
        "warmup_fraction_one",
        {"schedule": {"warmup_fraction": 1.0}},
        [],
        "recipe.yaml: schedule.warmup_fraction: expected a number >= 0 and < 1 (or null), got 1.0",
    ),
    (
        "ema_decay_one",
        {"training.ema": {"decay": 1.0}},
        [],
        "recipe.yaml: training.ema.decay: expected a number > 0 and < 1, got 1.0",
    ),
    (
        "description_two_lines",
        {"description": "first\nsecond"},
        [],
        "recipe.yaml: description: expected one line (it is shown by `curricurun recipes`), got 2 lines",
    ),
    # unknown keys
    ("unknown_key_close", {"optim.lrr": 0.1}, [], "recipe.yaml: optim.lrr: unknown key 'lrr' (did you mean 'lr'?)"),
    (
        "unknown_section_close",
        {"optimiser": {"lr": 1}},
        [],
        "recipe.yaml: optimiser: unknown key 'optimiser' (did you mean 'optim'?)",
    ),
    ("unknown_key_far", {"data.zzz": 1}, [], f"recipe.yaml: data.zzz: unknown key 'zzz'; known: {DATA_KEYS}"),
    # missing required fields
    ("lr_missing", {"optim.lr": DROP}, [], "recipe.yaml: optim.lr: required field is missing"),
    ("data_missing", {"data": DROP}, [], "recipe.yaml: data: required field is missing"),
    (
        "patience_missing",
        {"training.early_stopping": {"metric": "top1"}},
        [],
        "recipe.yaml: training.early_stopping.patience: required field is missing",
    ),
    # rules tying fields together
    (
        "two_batch_sizes",
        {"batch.per_device": 32},
        [],
        "recipe.yaml: batch: set exactly one of 'per_device' and 'global', found 'per_device' and 'global'",
    ),
    (
        "no_batch_size",
        {"batch": {"accumulation": 2}},
        [],
        "recipe.yaml: batch: set exactly one of 'per_device' and 'global', found none",
    ),
    (
        "no_training_length",
        {"training.epochs": DROP, "training.precision": "bf16"},
        [],
        "recipe.yaml: training: set exactly one of 'epochs', 'steps' and 'budget_epochs', found none",
    ),
    (
        "two_training_lengths",
        {"training.steps": 1000},
        [],
        "recipe.yaml: training: set exactly one of 'epochs', 'steps' and 'budget_epochs', found 'epochs' and 'steps'",
    ),
    (
        "two_warmups",
        {"schedule": {"warmup_steps": 5, "warmup_fraction": 0.1}},
        [],
        "recipe.yaml: schedule: set at most one of 'warmup_steps', 'warmup_epochs' and 'warmup_fraction', "
        "found 'warmup_steps' and 'warmup_fraction'",
    ),
    (
        "scaling_rule_without_reference",
        {"optim.lr_scaling": {"rule": "linear"}},
        [],
        "recipe.yaml: optim.lr_scaling: set exactly one of 'reference_batch' and 'reference_world_size', found none",
    ),
    (
        "exp_ema_without_beta",
        {"training.ema": {"decay": 0.9997, "schedule": "exp"}},
        [],
        "recipe.yaml: training.ema: schedule 'exp' needs 'beta' (SuperGradients uses 15 by default)",
    ),
    (
        "ema_eval_without_ema",
        {"training.eval": {"use_ema": True}},
        [],
        "recipe.yaml: training: 'eval.use_ema' is true but 'ema' is not set",
    ),
    (
        "milestones_decreasing",
        {"schedule": {"shape": "step", "milestones": [0.5, 0.3]}},
        [],
        "recipe.yaml: schedule: 'milestones' must increase, got [0.5, 0.3]",
    ),
    (
        "schedule_shape_typo",
        {"schedule": {"shape": "cosin"}},
        [],
        f"recipe.yaml: schedule.shape: expected one of {SHAPES} or lin<T> with 0 < T < 1, got 'cosin' "
        "(did you mean 'cosine'?)",
    ),
    (
        "lin_t_out_of_range",
        {"schedule": {"shape": "lin1.5"}},
        [],
        "recipe.yaml: schedule.shape: expected lin<T> with 0 < T < 1, got 'lin1.5'",
    ),
    # components, against the fake registries of conftest.py
    (
        "unknown_setup",
        {"setup.name": "classificaton"},
        [],
        "recipe.yaml: setup.name: unknown setup 'classificaton' (did you mean 'classification'?); "
        "known: classification, var",
    ),
    (
        "unknown_curriculum",
        {"curriculum": [{"name": "progresive_scales"}]},
        [],
        "recipe.yaml: curriculum.0.name: unknown curriculum 'progresive_scales' (did you mean 'progressive_scales'?); "
        "known: progressive_resolution, progressive_scales, randaugment_ramp",
    ),
    (
        "curriculum_param_out_of_range",
        {"curriculum": [{"name": "randaugment_ramp"}, {"name": "progressive_scales", "pg": 1.5}]},
        [],
        "recipe.yaml: curriculum.1.pg: expected a number >= 0 and < 1, got 1.5",
    ),
    (
        "curriculum_param_unknown",
        {"curriculum": [{"name": "progressive_scales", "pgg": 0.5}]},
        [],
        "recipe.yaml: curriculum.0.pgg: unknown key 'pgg' (did you mean 'pg'?)",
    ),
    (
        "setup_param_not_an_integer",
        {"setup": {"name": "var", "depth": 2.5}},
        [],
        "recipe.yaml: setup.depth: expected an integer, got 2.5",
    ),
    ("setup_param_missing", {"setup.model": DROP}, [], "recipe.yaml: setup.model: required field is missing"),
    (
        "setup_param_wrong_type",
        {"setup.num_classes": "ten"},
        [],
        "recipe.yaml: setup.num_classes: expected a positive integer, got 'ten'",
    ),
    (
        "curriculum_entry_without_name",
        {"curriculum": [{"pg": 0.5}]},
        [],
        "recipe.yaml: curriculum.0.name: required field is missing",
    ),
    (
        "curriculum_not_a_list",
        {"curriculum": {"name": "x"}},
        [],
        "recipe.yaml: curriculum: expected a list, got a mapping",
    ),
    ("curriculum_entry_not_a_mapping", {"curriculum": [3]}, [], "recipe.yaml: curriculum.0: expected a mapping, got 3"),
    # --set overrides
    ("set_bad_value", {}, ["optim.lr=abc"], "--set optim.lr=abc: optim.lr: expected a positive number, got 'abc'"),
    ("set_null_value", {}, ["optim.lr="], "--set optim.lr=: optim.lr: expected a positive number, got null"),
    ("set_without_equals", {}, ["optim.lr"], "--set optim.lr: expected KEY=VALUE, e.g. --set optim.lr=0.001"),
    ("set_empty_key", {}, ["=3"], "--set =3: the key before '=' is empty"),
    ("set_empty_segment", {}, ["optim..lr=1"], "--set optim..lr=1: empty segment in the key 'optim..lr'"),
    (
        "set_unknown_path",
        {},
        ["optim.lrr=0.1"],
        "--set optim.lrr=0.1: optim.lrr: unknown key 'lrr' (did you mean 'lr'?)",
    ),
    (
        "set_index_out_of_range",
        ONE_SCALES_ENTRY,
        ["curriculum.3.pg=0.5"],
        "--set curriculum.3.pg=0.5: curriculum.3: index 3 is out of range: the list has 1 entry",
    ),
    (
        "set_index_into_absent_list",
        {},
        ["curriculum.0.pg=0.5"],
        "--set curriculum.0.pg=0.5: curriculum.0: curriculum is not set, so it has no entry 0",
    ),
    (
        "set_key_on_a_list",
        ONE_SCALES_ENTRY,
        ["curriculum.pg=0.5"],
        "--set curriculum.pg=0.5: curriculum.pg: curriculum is a list: "
        "address an entry by its index, e.g. curriculum.0",
    ),
    (
        "set_through_a_value",
        {},
        ["optim.lr.x=1"],
        "--set optim.lr.x=1: optim.lr.x: optim.lr is 0.001, not a section or a list",
    ),
    (
        "set_malformed_value",
        {},
        ["optim.betas=[0.9, 0.99"],
        "--set optim.betas=[0.9, 0.99: malformed YAML value: expected ',' or ']', but got '<stream end>'",
    ),
    (
        "set_second_batch_size",
        {},
        ["batch.per_device=32"],
        "--set batch.per_device=32: batch: set exactly one of 'per_device' and 'global', "
        "found 'per_device' and 'global'",
    ),
    (
        "set_bad_curriculum_param",
        ONE_SCALES_ENTRY,
        ["curriculum.0.pg=2"],
        "--set curriculum.0.pg=2: curriculum.0.pg: expected a number >= 0 and < 1, got 2",
    ),
]


@pytest.mark.parametrize(("changes", "overrides", "expected"), [case[1:] for case in CASES], ids=[c[0] for c in CASES])
def test_each_bad_input_gives_one_line_naming_source_and_field(write, recipe_text, changes, overrides, expected):
    write("recipe.yaml", recipe_text(changes))
    with pytest.raises(RecipeError) as caught:
        load_recipe("recipe.yaml", overrides)
    assert caught.value.problems == [expected]
    assert isinstance(caught.value, UserError)


def test_the_table_covers_at_least_thirty_distinct_cases():
    assert len({case[0] for case in CASES}) == len(CASES) >= 30


# (id, files, the file to load, the expected problem): problems found before validation, in the files themselves
FILE_CASES = [
    (
        "bad_indentation",
        {"recipe.yaml": "setup:\n  name: x\n data: 3\n"},
        "recipe.yaml",
        "recipe.yaml:3:2: malformed YAML: expected <block end>, but found '<block mapping start>'",
    ),
    (
        "unclosed_list",
        {"recipe.yaml": "a: [1, 2\nb: 3\n"},
        "recipe.yaml",
        "recipe.yaml:2:2: malformed YAML: expected ',' or ']', but got ':'",
    ),
    (
        "duplicate_key",
        {"recipe.yaml": "optim:\n  lr: 1\n  lr: 2\n"},
        "recipe.yaml",
        "recipe.yaml:3:3: malformed YAML: duplicate key 'lr'",
    ),
    (
        "top_level_list",
        {"recipe.yaml": "- optim\n"},
        "recipe.yaml",
        "recipe.yaml: expected a mapping of sections (setup:, data:, ...) at the top, got a list",
    ),
    (
        "empty_file",
        {"recipe.yaml": ""},
        "recipe.yaml",
        "recipe.yaml: expected a mapping of sections (setup:, data:, ...) at the top, got an empty file",
    ),
    ("file_not_found", {}, "missing.yaml", "missing.yaml: file not found"),
    (
        "base_not_found",
        {"recipes/recipe.yaml": "base: ../x.yaml\n"},
        "recipes/recipe.yaml",
        "recipes/recipe.yaml: base: file not found: ../x.yaml",
    ),
    ("base_not_a_path", {"recipe.yaml": "base: 3\n"}, "recipe.yaml", "recipe.yaml: base: expected a file path, got 3"),
    (
        "base_cycle",
        {"a.yaml": "base: b.yaml\n", "b.yaml": "base: a.yaml\n"},
        "a.yaml",
        "b.yaml: base: inheritance cycle: a.yaml -> b.yaml -> a.yaml",
    ),
    (
        "base_self_cycle",
        {"recipes/a.yaml": "base: ./a.yaml\n"},
        "recipes/a.yaml",
        "recipes/a.yaml: base: inheritance cycle: recipes/a.yaml -> recipes/a.yaml",
    ),
    (
        "malformed_base",
        {"recipe.yaml": "base: common/base.yaml\n", "common/base.yaml": "optim: {lr: 1\n"},
        "recipe.yaml",
        "common/base.yaml:2:1: malformed YAML: expected ',' or '}', but got '<stream end>'",
    ),
]


@pytest.mark.parametrize(("files", "target", "expected"), [c[1:] for c in FILE_CASES], ids=[c[0] for c in FILE_CASES])
def test_each_bad_file_gives_one_line_with_its_location(write, files, target, expected):
    for name, text in files.items():
        write(name, text)
    with pytest.raises(RecipeError) as caught:
        load_recipe(target)
    assert caught.value.problems == [expected]


def test_every_problem_is_reported_at_once(write, recipe_text):
    write(
        "recipe.yaml",
        recipe_text(
            {
                "optim.lr": "abc",
                "training.precision": "fp32",
                "data.imagesize": 32,
                "curriculum": [{"name": "progresive_scales"}, {"name": "progressive_scales", "pg": 1.5}],
            }
        ),
    )
    with pytest.raises(RecipeError) as caught:
        load_recipe("recipe.yaml", ["optim.wd", "batch.global=0"])
    assert caught.value.problems == [
        "--set optim.wd: expected KEY=VALUE, e.g. --set optim.lr=0.001",
        "recipe.yaml: data.imagesize: unknown key 'imagesize' (did you mean 'image_size'?)",
        "--set batch.global=0: batch.global: expected a positive integer (or null), got 0",
        "recipe.yaml: optim.lr: expected a positive number, got 'abc'",
        "recipe.yaml: training.precision: expected one of 'no', 'fp16', 'bf16', 'auto', got 'fp32'",
        "recipe.yaml: curriculum.0.name: unknown curriculum 'progresive_scales' (did you mean 'progressive_scales'?); "
        "known: progressive_resolution, progressive_scales, randaugment_ramp",
        "recipe.yaml: curriculum.1.pg: expected a number >= 0 and < 1, got 1.5",
    ]
    assert str(caught.value) == "\n".join(caught.value.problems)
