"""ET and ET++ as composed curricula: bandwidth + RandAugment magnitude (ET++ launchers, ICCV ET_training.py)."""

import pytest

from curricurun.curriculum import build
from curricurun.curriculum.base import Progress


def at(compute_fraction: float = 0.0, epoch: float = 0.0, total_epochs: int = 300) -> Progress:
    """Progress with the given compute fraction and epoch (100 steps per epoch)."""
    step = round(epoch * 100)
    return Progress(
        step=step,
        micro_step=step,
        epoch=epoch,
        samples_seen=step * 4096,
        step_fraction=epoch / total_epochs,
        compute_fraction=compute_fraction,
        total_steps=total_epochs * 100,
        steps_per_epoch=100,
    )


@pytest.mark.parametrize(
    ("fraction", "bandwidth", "magnitude"),
    [
        # ET++ Swin-T, 10 stages of 10% compute: B = 96 for [0, 0.2), 160 for [0.2, 0.6), 224 for [0.6, 1];
        # m = stage index = ⌊10·fraction⌋ (the launchers' --aa rand-m{ET_index}).
        (0.0, 96, 0),
        (0.19, 96, 1),
        (0.2, 160, 2),
        (0.35, 160, 3),
        (0.59, 160, 5),
        (0.6, 224, 6),
        (0.85, 224, 8),
        (0.999, 224, 9),
        (1.0, 224, 9),
    ],
)
def test_et_plus_plus_swin_t_stage_table_by_compute_fraction(fraction, bandwidth, magnitude):
    et_pp = build([{"name": "low_frequency_crop"}, {"name": "randaugment_ramp"}])
    state = et_pp.state_at(at(compute_fraction=fraction))
    assert (state.bandwidth, state.aug_magnitude) == (bandwidth, magnitude)


def test_et_plus_plus_stage_costs_are_the_pixel_ratios_of_the_launchers_cost_table():
    # epoch_scale_ratio in _ET_pp_main_swinT.py is (224/B)²: a 96-px sample costs 96²/224² = 9216/50176.
    et_pp = build([{"name": "low_frequency_crop"}, {"name": "randaugment_ramp"}])
    costs = [et_pp.sample_cost(et_pp.state_at(at(compute_fraction=f)), 224) for f in (0.1, 0.3, 0.7)]
    assert costs == pytest.approx([9216 / 50176, 25600 / 50176, 1.0])


@pytest.mark.parametrize(
    ("schedule", "fraction", "bandwidth"),
    [
        ("et++_deit", 0.55, 160),  # 96, 96, 160×4, 192, 192, 224, 224
        ("et++_deit", 0.65, 192),
        ("et++_deit", 0.8, 224),
        ("et++_convnext", 0.0, 160),  # 160×6, 224×4
        ("et++_convnext", 0.59, 160),
        ("et++_convnext", 0.6, 224),
    ],
)
def test_deit_and_convnext_variants_use_their_own_bandwidth_tables(schedule, fraction, bandwidth):
    curriculum = build([{"name": "low_frequency_crop", "schedule": schedule}])
    assert curriculum.state_at(at(compute_fraction=fraction)).bandwidth == bandwidth


@pytest.mark.parametrize(
    ("epoch", "bandwidth", "magnitude"),
    [
        # ICCV ET, 300 epochs in 5 segments of 60: B = 160, 160, 160, 192, 224 and m = 1, 3, 5, 7, 9.
        (0, 160, 1),
        (59.9, 160, 1),
        (60, 160, 3),
        (120, 160, 5),
        (180, 192, 7),
        (240, 224, 9),
        (299.9, 224, 9),
    ],
)
def test_iccv_efficienttrain_stages_are_equal_epoch_segments(epoch, bandwidth, magnitude):
    et = build([{"name": "low_frequency_crop", "schedule": "iccv"}, {"name": "randaugment_ramp", "schedule": "iccv"}])
    state = et.state_at(at(epoch=epoch))
    assert (state.bandwidth, state.aug_magnitude) == (bandwidth, magnitude)


def test_iccv_efficienttrain_costs_0653_of_the_baseline_compute():
    # (3·(160/224)² + (192/224)² + 1)/5 = (3·25600 + 36864 + 50176)/(5·50176) = 163840/250880 = 0.6531,
    # the "1.53×" of ICCV Table 6 (ET_training.py L51). Averaged over the 300 epochs' midpoints.
    et = build([{"name": "low_frequency_crop", "schedule": "iccv"}])
    costs = [et.sample_cost(et.state_at(at(epoch=e + 0.5)), 224) for e in range(300)]
    assert sum(costs) / len(costs) == pytest.approx(163840 / 250880, rel=1e-12)
    assert round(sum(costs) / len(costs), 3) == 0.653


def test_a_custom_bandwidth_table_is_scaled_to_the_base_resolution():
    # [96, 160, 224] at base 224 → base 256, increment 16: 112, 176, 256 over thirds of the compute.
    curriculum = build(
        [{"name": "low_frequency_crop", "bandwidths": [96, 160, 224], "base_resolution": 256, "size_increment": 16}]
    )
    assert [curriculum.state_at(at(compute_fraction=f)).bandwidth for f in (0.1, 0.5, 0.9)] == [112, 176, 256]
