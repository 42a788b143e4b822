"""The curriculum registry: built-ins, entry points, composition, and the messages users see."""

import textwrap

import pytest
from pydantic import ValidationError

from curricurun.curriculum import available, build, clear_cache, describe, get
from curricurun.curriculum.base import CurriculumParams, Progress
from curricurun.errors import UserError

BUILT_INS = ["low_frequency_crop", "progressive_resolution", "progressive_scales", "randaugment_ramp", "stage_mixture"]


def at(fraction: float) -> Progress:
    step = round(fraction * 1000)
    return Progress(
        step=step,
        micro_step=step,
        epoch=step / 10,
        samples_seen=step * 64,
        step_fraction=fraction,
        compute_fraction=fraction,
        total_steps=1000,
        steps_per_epoch=10,
    )


@pytest.fixture
def fresh_registry():
    clear_cache()
    yield
    clear_cache()


def write_distribution(root, dist: str, module: str, entries: dict[str, str], source: str) -> None:
    """An installed distribution as importlib.metadata sees it: a module plus a ``*.dist-info`` directory."""
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    lines = "\n".join(f"{name} = {target}" for name, target in entries.items())
    (info / "entry_points.txt").write_text(f"[curricurun.curricula]\n{lines}\n")


FIXED_SIZE = """
    from typing import ClassVar

    from curricurun.curriculum.base import Curriculum, CurriculumParams, StageState


    class FixedSizeParams(CurriculumParams):
        size: int = 64


    class FixedSize(Curriculum):
        name: ClassVar[str] = "fixed_size"
        summary: ClassVar[str] = "Train at one fixed size"
        Params = FixedSizeParams

        def __init__(self, params):
            self.params = params

        def state_at(self, progress):
            return StageState(resolution=self.params.size)


    NOT_A_CURRICULUM = 42
"""


def test_every_built_in_is_available_with_a_method_card_a_summary_and_params():
    curricula = available()
    assert set(BUILT_INS) <= set(curricula)
    for name in BUILT_INS:
        cls = curricula[name]
        assert cls.name == name
        assert issubclass(cls.Params, CurriculumParams)
        assert cls.summary and "\n" not in cls.summary
        for section in ("What:", "When it helps:", "Parameters:", "Source:"):
            assert section in cls.__doc__, f"{name} method card lacks {section}"
        if name != "progressive_resolution":  # that one needs a mode and the full resolution
            cls.Params()  # the defaults validate


def test_an_unknown_name_lists_the_known_ones_and_suggests_the_closest():
    with pytest.raises(UserError) as error:
        get("progresive_scales")
    assert str(error.value) == (
        "unknown curriculum 'progresive_scales' (did you mean 'progressive_scales'?); known: " + ", ".join(BUILT_INS)
    )
    with pytest.raises(UserError, match="^unknown curriculum 'zzz'; known: .*stage_mixture$"):
        get("zzz")


def test_build_validates_params_through_each_class_and_needs_a_name():
    with pytest.raises(ValidationError):
        build([{"name": "progressive_scales", "pg": 2.0}])
    with pytest.raises(ValidationError):
        build([{"name": "stage_mixture", "ratio": [1, 2, 1]}])  # unknown key
    with pytest.raises(UserError, match="needs a 'name'"):
        build([{"pg": 0.5}])


def test_composed_curricula_merge_their_fields_and_refuse_to_share_one():
    composed = build([{"name": "low_frequency_crop"}, {"name": "randaugment_ramp"}, {"name": "stage_mixture"}])
    assert composed.names == ("low_frequency_crop", "randaugment_ramp", "stage_mixture")
    state = composed.state_at(at(0.25))  # stage 2 of 10: B 160, m 2
    assert (state.bandwidth, state.aug_magnitude, state.stage_ratios) == (160, 2, (1, 2, 1))
    clash = build([{"name": "low_frequency_crop"}, {"name": "low_frequency_crop", "schedule": "iccv"}])
    with pytest.raises(UserError, match="'low_frequency_crop' clashes .* 'bandwidth'"):
        clash.state_at(at(0.0))


def test_the_composed_lr_shape_and_cost_come_from_the_members():
    var = build([{"name": "stage_mixture"}, {"name": "progressive_scales", "pg": 0.7}])
    assert var.preferred_lr_shape == "lin0.7"
    assert build([{"name": "low_frequency_crop"}]).preferred_lr_shape is None
    # VAR 256 at its first stage (pg0 = 4): e_4 = 1+4+9+16+25 = 55 of 680 tokens; no pixels change; the
    # stage mix multiplies in its mean token fraction (1/16 + 2/4 + 1) / 4 = 0.390625
    assert var.sample_cost(var.state_at(at(0.0)), 256) == pytest.approx(55 / 680 * 0.390625)
    # 96-px bandwidth on a 224 base: 96²/224²
    et = build([{"name": "low_frequency_crop"}])
    assert et.sample_cost(et.state_at(at(0.0)), 224) == pytest.approx(9216 / 50176)


def test_a_curriculum_from_an_entry_point_is_listed_built_and_attributed(tmp_path, monkeypatch, fresh_registry):
    write_distribution(
        tmp_path, "toy-curricula", "toy_curricula", {"fixed_size": "toy_curricula:FixedSize"}, FIXED_SIZE
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    clear_cache()
    assert "fixed_size" in available()
    assert ("fixed_size", "Train at one fixed size", "toy-curricula") in describe()
    assert ("stage_mixture", available()["stage_mixture"].summary, "built-in") in describe()
    composed = build([{"name": "fixed_size", "size": 96}, {"name": "randaugment_ramp"}])
    state = composed.state_at(at(0.5))
    assert (state.resolution, state.aug_magnitude) == (96, 5)


def test_broken_or_clashing_entry_points_are_skipped_with_a_warning(tmp_path, monkeypatch, fresh_registry):
    entries = {
        "not_a_class": "toy_broken:NOT_A_CURRICULUM",
        "missing": "toy_broken:Nope",
        "stage_mixture": "toy_broken:FixedSize",
    }
    write_distribution(tmp_path, "toy-broken", "toy_broken", entries, FIXED_SIZE)
    monkeypatch.syspath_prepend(str(tmp_path))
    clear_cache()
    with pytest.warns(UserWarning) as caught:
        curricula = available()
    messages = " | ".join(str(w.message) for w in caught)
    assert "'not_a_class' from 'toy-broken' ignored" in messages
    assert "'missing' from 'toy-broken' failed to load" in messages
    assert "'stage_mixture' from 'toy-broken' ignored: the name is already taken by built-in" in messages
    assert "not_a_class" not in curricula and "missing" not in curricula
    assert curricula["stage_mixture"].__module__ == "curricurun.curriculum.stage_mixture"
