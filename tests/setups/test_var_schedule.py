"""``inspect-schedule recipes/var_d36.yaml --steps-per-epoch 100 --json`` against VAR's progressive training.

At 100 micro-iterations per epoch (bs 768, ac 1): max_it = 350·100 = 35000, wp_it = 7·100 = 700 (wp = ep/50),
pg·max_it = 0.7·35000 = 24500, pgwp_it = (350/300)·100 = 116.67, K = 10 scales, pg0 = 4 (VAR train.py:286-294).
prog_si = 4 + round((g − 700)/23800 · 5) between 700 and 24500, so stage 4 + j begins where (g − 700)·5/23800
passes j − ½, i.e. at g = 700 + (2j − 1)·2380 (Python rounds exact halves to even):
  j = 1: 3080 gives exactly 0.5 → round 0, stage 5 from 3081;   j = 2: 7840 gives 1.5 → 2, stage 6 from 7840;
  j = 3: 12600 gives 2.5 → 2, stage 7 from 12601;              j = 4: 17360 gives 3.5 → 4, stage 8 from 17360;
  j = 5: 22120 gives 4.5 → 4, stage 9 (full) from 22121.
"""

from __future__ import annotations

import json
import math

import pytest

from curricurun.cli import RECIPES_DIR, run

PEAK = 8e-5 * 768 / 256  # tlr = tblr·bs/256 = 2.4e-4
MID = (1 + 0.01 + 0.99 * 0.3) / 2  # lin0.7's m = (1 + wpe + (1 − wpe)(1 − T))/2 = 0.6535


@pytest.fixture(scope="module")
def report():
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = run(["inspect-schedule", str(RECIPES_DIR / "var_d36.yaml"), "--steps-per-epoch", "100", "--json"])
    assert code == 0
    return json.loads(out.getvalue())


def test_the_run_counts_micro_iterations_at_vars_learning_rate(report):
    assert (report["step_unit"], report["total_steps"], report["steps_per_epoch"]) == ("micro_steps", 35_000, 100)
    assert report["lr"]["effective_lr"] == pytest.approx(PEAK)


def test_the_stages_begin_at_the_hand_derived_micro_iterations(report):
    rows = [(row["start_step"], row["end_step"], row["scale_index"]) for row in report["stages"]]
    assert rows == [
        (0, 3081, 4),
        (3081, 7840, 5),
        (7840, 12601, 6),
        (12601, 17360, 7),
        (17360, 22121, 8),
        (22121, 35000, 9),
    ]
    steps = report["steps"]
    assert [steps[g]["scale_index"] for g in (700, 3080, 3081, 7839, 7840, 12600, 12601, 17359, 17360)] == [
        4, 4, 5, 5, 6, 6, 7, 7, 8,
    ]  # fmt: skip
    assert [steps[g]["scale_index"] for g in (22120, 22121, 24500, 34_999)] == [8, 9, 9, 9]


@pytest.mark.parametrize(
    ("g", "weight"),
    [
        (0, 1.0),  # the first stage has no ramp (first_prog)
        (3081, 0.01),  # prog_it 1: 1/116.67 = 0.0086 → floor 0.01
        (3082, 2 * 3 / 350),  # prog_it 2: 2·300/35000 = 0.01714
        (3196, 116 * 3 / 350),  # prog_it 116: 0.99429
        (3197, 1.0),  # prog_it 117: 1.0029 → 1
        (7840, 0.01),  # stage 6 restarts the ramp
        (7840 + 49, 50 * 3 / 350),  # prog_it 50: 0.42857
        (17360 + 99, 100 * 3 / 350),  # stage 8, prog_it 100: 0.85714
        (22121, 1.0),  # the final stage has no ramp (prog_si K−1 → −1)
    ],
)
def test_the_newest_scale_weight_ramps_from_001_over_pgwp(report, g, weight):
    assert report["steps"][g]["newest_scale_weight"] == pytest.approx(weight, rel=1e-12)


@pytest.mark.parametrize(
    ("g", "ratio"),
    [
        (0, 0.005),  # warm-up from wp0: r = 0.005 + 0.995·g/700
        (350, 0.005 + 0.995 * 0.5),
        (700, 1.0),  # pasd = (g − 700)/(35000 − 1 − 700) = (g − 700)/34299
        (3081, 1 + (MID - 1) * (2381 / 34299) / 0.7),  # first slope while pasd < 0.7
        (24709, 1 + (MID - 1) * (24009 / 34299) / 0.7),  # pasd 0.699991: the last micro-step of the first slope
        (24710, 0.01 + (MID - 0.01) * (1 - 24010 / 34299) / 0.3),  # pasd 0.700020: the steeper second slope
        (34_999, 0.01),  # wpe
    ],
)
def test_the_lr_is_vars_lin07_at_the_boundaries(report, g, ratio):
    assert report["steps"][g]["lr"] == pytest.approx(PEAK * ratio, rel=1e-9)


def test_every_micro_iteration_matches_vars_stateful_trainer(report):
    """Replay VAR's loop with its own counters (train.py L286-294, trainer.py L91-99, lr_control.py L10-43)."""
    k, pg, pg0, wp_it, max_it, pgwp_it = 10, 0.7, 4, 700, 35_000, 350 / 300 * 100
    last_si, first_prog, prog_it = -1, True, 0
    for g, entry in enumerate(report["steps"]):
        if g <= wp_it:
            si = pg0
        elif g >= pg * max_it:
            si = k - 1
        else:
            si = pg0 + round(min(max((g - wp_it) / (pg * max_it - wp_it), 0.0), 1.0) * (k - 1 - pg0))
        if si != last_si:
            if last_si != -1:
                first_prog = False
            last_si, prog_it = si, 0
        prog_it += 1
        prog_wp = 1.0 if first_prog or si == k - 1 else max(min(prog_it / pgwp_it, 1.0), 0.01)
        if g < wp_it:
            ratio = 0.005 + 0.995 * g / wp_it
        else:
            pasd = (g - wp_it) / (max_it - 1 - wp_it)
            ratio = 1 + (MID - 1) * pasd / 0.7 if pasd < 0.7 else 0.01 + (MID - 0.01) * (1 - pasd) / 0.3
        assert (entry["scale_index"], entry["newest_scale_weight"]) == (si, pytest.approx(prog_wp, rel=1e-12)), g
        assert math.isclose(entry["lr"], PEAK * ratio, rel_tol=1e-9), g
