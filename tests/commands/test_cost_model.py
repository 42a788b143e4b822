"""The cost model of ``inspect-schedule --measure`` on synthetic timings: every number worked out by hand."""

from __future__ import annotations

import math

import pytest

from curricurun.commands.inspect_schedule.cost_model import (
    Repeats,
    RunForecast,
    StageForecast,
    StageMeasurement,
    duration,
    merged,
)
from curricurun.commands.inspect_schedule.forecast import timing_rounds


def measured(label: str, model: float, loader: float, pixel_cost: float = 1.0, **extras: float) -> StageMeasurement:
    """A stage timed three times at exactly ``model`` / ``loader`` seconds (no spread: errors are 0)."""
    return StageMeasurement(label, {}, Repeats((model,) * 3), Repeats((loader,) * 3), pixel_cost=pixel_cost, **extras)


def test_repeats_median_and_its_standard_error_from_the_median_absolute_deviation():
    repeats = Repeats((1.0, 2.0, 3.0, 4.0, 10.0))  # median 3; |x - 3| = 2, 1, 0, 1, 7 -> MAD 1
    assert repeats.median == 3.0
    assert repeats.error == pytest.approx(1.2533 * 1.4826 * 1.0 / math.sqrt(5))  # one slow step barely moves it
    assert Repeats((0.5,)).error == 0.0
    with pytest.raises(ValueError, match="at least one"):
        Repeats(())


def test_serial_steps_add_loader_and_model_parallel_steps_take_the_slower_and_name_it_the_bound():
    stage = measured("s", model=0.08, loader=0.03)
    assert StageForecast(stage, 10, "serial").seconds_per_step == pytest.approx(0.11)
    parallel = StageForecast(stage, 10, "parallel")
    assert parallel.seconds_per_step == pytest.approx(0.08) and parallel.bound == "model"
    loader_bound = StageForecast(measured("s", model=0.02, loader=0.05), 10, "parallel")
    assert loader_bound.seconds_per_step == pytest.approx(0.05) and loader_bound.bound == "loader"


def test_stage_error_is_both_parts_when_serial_and_the_bound_part_when_parallel():
    noisy_model = Repeats((0.07, 0.08, 0.09))  # MAD 0.01
    noisy_loader = Repeats((0.01, 0.02, 0.04))  # median 0.02, MAD 0.01
    stage = StageMeasurement("s", {}, noisy_model, noisy_loader)
    one = 1.2533 * 1.4826 * 0.01 / math.sqrt(3)
    assert StageForecast(stage, 4, "serial").error == pytest.approx(2 * one)
    assert StageForecast(stage, 4, "parallel").error == pytest.approx(one)


def test_a_run_that_saves_sums_steps_times_step_time_plus_each_shapes_first_step_and_the_loader_start_once():
    small = measured("resolution 14", 0.02, 0.01, pixel_cost=0.25, model_first_extra=0.5, loader_first_extra=1.0)
    full = measured("resolution 28", 0.08, 0.01, model_first_extra=0.2)
    run = RunForecast(
        stages=[StageForecast(small, 10, "parallel"), StageForecast(full, 5, "parallel")],
        reference=StageForecast(full, 10, "parallel"),
    )
    # with: 10·0.02 + 0.5 + 5·0.08 + 0.2 + the first stage's loader start 1.0 = 2.3; without: 10·0.08 + 0.2 = 1.0
    assert run.with_curriculum_seconds == pytest.approx(2.3)
    assert run.without_curriculum_seconds == pytest.approx(1.0)
    assert run.saving_seconds == pytest.approx(-1.3) and run.saving_percent == pytest.approx(-130.0)
    assert not run.saves_time

    cheaper = RunForecast(
        stages=[StageForecast(measured("resolution 14", 0.02, 0.01, pixel_cost=0.25), 10, "parallel"),
                StageForecast(measured("resolution 28", 0.08, 0.01), 5, "parallel")],
        reference=StageForecast(measured("resolution 28", 0.08, 0.01), 10, "parallel"),
    )  # fmt: skip
    # with 10·0.02 + 5·0.08 = 0.6 s, without 10·0.08 = 0.8 s: saves 0.2 s = 25 %
    assert cheaper.saves_time and cheaper.saving_percent == pytest.approx(25.0)
    assert cheaper.verdict() == "the curriculum saves 0.2 ± 0.0 s (25.0 %) of the training loop"


def test_no_saving_is_one_line_naming_the_stage_and_its_bound():
    small = measured("resolution 14, batch 64", model=0.02, loader=0.04, pixel_cost=0.25)
    full = measured("resolution 28, batch 64", model=0.08, loader=0.01)
    run = RunForecast(
        stages=[StageForecast(small, 20, "parallel"), StageForecast(full, 5, "parallel")],
        reference=StageForecast(full, 10, "parallel"),
    )
    # with 20·0.04 + 5·0.08 = 1.2 s, without 0.8 s: costs 50 %; the 14-px step is 0.04 / 0.08 = 0.50 of full size
    assert run.saving_percent == pytest.approx(-50.0)
    verdict = run.verdict()
    assert "\n" not in verdict
    assert verdict == (
        "the curriculum does not save time on this machine (costs 50.0 % ± 0.0): its resolution 14, batch 64 stage"
        " is loader-bound, 0.50 × the full-size step for 0.25 × the pixels (model 20.0 ms, loader 40.0 ms per step)"
    )
    assert run.as_dict()["verdict"] == verdict and run.as_dict()["saves_time"] is False


def test_a_saving_smaller_than_its_uncertainty_is_not_claimed():
    noisy = StageMeasurement("resolution 28", {}, Repeats((0.06, 0.08, 0.10)), Repeats((0.0,) * 3))
    small = measured("resolution 26", 0.079, 0.0, pixel_cost=0.86)
    run = RunForecast(stages=[StageForecast(small, 10, "serial")], reference=StageForecast(noisy, 10, "serial"))
    # saves 10·(0.08 - 0.079) = 0.01 s; ± 10 · 1.2533·1.4826·0.02/√3 = 0.215 s
    assert run.saving_seconds == pytest.approx(0.01)
    assert run.saving_error == pytest.approx(10 * 1.2533 * 1.4826 * 0.02 / math.sqrt(3))
    assert not run.saves_time and run.verdict().startswith("the curriculum does not save time on this machine")


def test_a_recipe_without_curriculum_has_nothing_to_save():
    full = measured("resolution 28", 0.08, 0.01)
    run = RunForecast([StageForecast(full, 10, "serial")], StageForecast(full, 10, "serial"), has_curriculum=False)
    assert run.verdict() == "no curriculum: nothing to save" and not run.saves_time


def test_the_json_carries_every_field_in_seconds_and_milliseconds():
    small = measured("resolution 14", 0.02, 0.01, pixel_cost=0.25, model_first_extra=0.5)
    full = measured("resolution 28", 0.08, 0.01)
    run = RunForecast([StageForecast(small, 10, "serial")], StageForecast(full, 4, "serial"), excluded=["evaluation"])
    payload = run.as_dict()
    assert payload["overlap"] == "serial" and payload["excluded"] == ["evaluation"]
    stage = payload["stages"][0]
    assert stage["ms_per_step"] == pytest.approx(30.0) and stage["bound"] == "model"
    assert stage["measured_cost"] == pytest.approx(0.03 / 0.09) and stage["first_step_extra_ms"] == pytest.approx(500)
    assert stage["seconds"] == pytest.approx(10 * 0.03 + 0.5)
    assert payload["with_curriculum_seconds"] == pytest.approx(0.8)
    assert payload["without_curriculum_seconds"] == pytest.approx(0.36)
    assert payload["saving_minutes"] == pytest.approx(-0.44 / 60)


def test_durations_print_seconds_under_two_minutes_and_minutes_above():
    assert duration(41.04, 1.23) == "41.0 ± 1.2 s"
    assert duration(150.0, 6.0) == "2.50 ± 0.10 min"


def test_repeats_are_split_over_two_alternated_rounds_the_first_taking_the_remainder():
    assert timing_rounds(5) == [3, 2]
    assert timing_rounds(10) == [5, 5]
    assert timing_rounds(1) == [1]  # one repeat cannot be split


def test_rounds_pool_their_repeats_and_keep_the_first_rounds_warm_up():
    first = StageMeasurement("a", {"resolution": 20}, Repeats((1.0, 3.0)), Repeats((0.5,)), 0.25, 2.0, 0.5)
    second = StageMeasurement("a", {"resolution": 20}, Repeats((2.0,)), Repeats((0.7, 0.6)), 0.01, 0.1, 0.5)
    pooled = merged([first, second])
    assert pooled.model.seconds == (1.0, 3.0, 2.0) and pooled.model.median == 2.0
    assert pooled.loader.seconds == (0.5, 0.7, 0.6) and pooled.loader.median == 0.6
    # the shape was new in the first round only: its warm-up and the loader's start-up are paid once in a run
    assert (pooled.model_first_extra, pooled.loader_first_extra) == (0.25, 2.0)
    assert (pooled.label, pooled.key, pooled.pixel_cost) == ("a", {"resolution": 20}, 0.5)
    with pytest.raises(ValueError):
        merged([])
