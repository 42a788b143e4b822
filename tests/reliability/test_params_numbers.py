"""Every setup's, curriculum's and image pipeline's Params takes numbers only as numbers: a YAML bool is not 1,
.inf / .nan are no float. Each refusal is one line naming the field, exit 2 (issue 16); the walk below covers every
numeric field of every registered Params model, nested models and list items included, so a new field cannot slip
past."""

from __future__ import annotations

import math
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from curricurun import cli
from curricurun.curriculum.registry import available as curricula
from curricurun.data.pipelines import available as pipelines
from curricurun.setups import available as setups

RECIPES = Path(__file__).resolve().parents[2] / "recipes"

CASES = [
    ("demo.yaml", "setup.num_classes=true", "setup.num_classes: expected a positive integer (or null), got true"),
    ("demo.yaml", "curriculum.0.full_resolution=true", "curriculum.0.full_resolution: expected a positive integer"),
    ("var_tiny.yaml", "setup.depth=true", "setup.depth: expected a positive integer, got true"),
    ("var_tiny.yaml", "setup.init_std=.nan", "setup.init_std: expected a number, got nan"),
    ("var_tiny.yaml", "curriculum.0.pg0=true", "curriculum.0.pg0: expected a non-negative integer, got true"),
    ("vqvae_tiny.yaml", "setup.ch=true", "setup.ch: expected a positive integer, got true"),
    ("vqvae_tiny.yaml", "setup.beta=.inf", "setup.beta: expected a non-negative number, got inf"),
    ("pyramid_flow_tiny.yaml", "setup.depth=false", "setup.depth: expected a positive integer, got false"),
    ("pyramid_flow_tiny.yaml", "setup.latent_scale=.inf", "setup.latent_scale: expected a positive number"),
    ("pyramid_flow_tiny.yaml", "curriculum.0.ratios=[1, true, 1]", "curriculum.0.ratios.1: expected an integer"),
    ("yolo_nas_pose_n.yaml", "setup.pre_nms=true", "setup.pre_nms: expected a positive integer, got true"),
    ("yolo_nas_pose_n.yaml", "setup.loss.assigner_alpha=.nan", "setup.loss.assigner_alpha: expected a number"),
    ("efficienttrain_pp_resnet50.yaml", "data.pipeline.num_ops=true", "data.pipeline.num_ops: expected a positive"),
    ("efficienttrain_pp_resnet50.yaml", "data.pipeline.crop_pct=.nan", "data.pipeline.crop_pct: expected a"),
    ("var_d16.yaml", "data.pipeline.mid_reso=.inf", "data.pipeline.mid_reso: expected a"),
]


@pytest.mark.parametrize(("recipe", "override", "expected"), CASES, ids=[f"{c[0]}:{c[1]}" for c in CASES])
def test_bool_or_nonfinite_number_is_one_line_exit_2(recipe, override, expected, capsys) -> None:
    assert cli.run(["validate", str(RECIPES / recipe), "--set", override]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: --set {override}: ") and expected in lines[0], lines[0]


def _numeric_paths(model: type[BaseModel], prefix: tuple = ()):
    """(path, kind) of every int/float a model holds: its fields, nested models' fields, list/tuple items."""

    def walk(annotation, path):
        if annotation is bool:
            return
        if annotation in (int, float):
            yield path, annotation
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _numeric_paths(annotation, path)
        else:
            args = [arg for arg in typing.get_args(annotation) if arg is not Ellipsis]
            origin = typing.get_origin(annotation)
            for index, arg in enumerate(args):
                if origin in (list, tuple):
                    yield from walk(arg, (*path, 0 if len(args) == 1 else index))
                elif origin is not typing.Literal and origin is not dict:
                    yield from walk(arg, path)

    for name, field in model.model_fields.items():
        yield from walk(field.annotation, (*prefix, name))


def _params_models():
    models = [(f"setup {name}", cls.Params) for name, cls in setups().items()]
    models += [(f"pipeline {name}", cls.Params) for name, cls in pipelines().items()]
    return models + [(f"curriculum {name}", cls.Params) for name, cls in curricula().items()]


@pytest.mark.parametrize(("label", "model"), _params_models(), ids=[label for label, _ in _params_models()])
def test_no_numeric_field_takes_a_bool_or_nonfinite(label, model) -> None:
    paths = list(_numeric_paths(model))
    assert paths or label.startswith(("curriculum", "pipeline")), f"{label}: found no numeric field to check"
    for path, kind in paths:
        values = [True, False] + ([math.inf, math.nan] if kind is float else [])
        for value in values:
            with pytest.raises(ValidationError) as caught:
                model.model_validate(_nest(path, value))
            locs = [_field_loc(error["loc"]) for error in caught.value.errors()]
            assert any(loc[: len(path)] == path for loc in locs), (label, path, value, locs)


def _field_loc(loc: tuple) -> tuple:
    """The loc without pydantic's union-member tags (``literal[...]``, ``function-after[...]``)."""
    return tuple(part for part in loc if not (isinstance(part, str) and "[" in part))


def _nest(path: tuple, value):
    """A partial input putting ``value`` at ``path`` (list items as one-item or padded lists)."""
    for part in reversed(path):
        value = [value] if part == 0 else [1] * part + [value] if isinstance(part, int) else {part: value}
    return value
