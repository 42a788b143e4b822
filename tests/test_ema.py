"""EMA decay schedules (super-gradients ema_decay_schedules.py) and the ModelEma wrapper."""

import math

import pytest
import torch
from torch import nn

from curricurun.ema import ModelEma, ema_decay_at


def test_threshold_schedule_is_min_of_decay_and_one_plus_step_over_ten_plus_step():
    # (1 + 0)/(10 + 0) = 0.1; (1 + 1)/(10 + 1) = 2/11; (1 + 90)/(10 + 90) = 0.91.
    assert ema_decay_at(0, 0.997, "threshold") == pytest.approx(0.1)
    assert ema_decay_at(1, 0.997, "threshold") == pytest.approx(2 / 11)
    assert ema_decay_at(90, 0.997, "threshold") == pytest.approx(0.91)
    # (1 + s)/(10 + s) ≥ 0.997 ⇔ s ≥ 2990 (1 + s ≥ 29.9 + 0.997 s ⇔ 0.003 s ≥ 8.97).
    assert ema_decay_at(2989, 0.997, "threshold") < 0.997
    assert ema_decay_at(2990, 0.997, "threshold") == 0.997


def test_exp_schedule_ramps_to_decay_with_beta_over_the_planned_steps():
    # YOLO-NAS-Pose M/L: decay 0.997, beta 50. At 10% of the run: 0.997 (1 − e^−5) = 0.997 × 0.993262 ≈ 0.990282.
    assert ema_decay_at(0, 0.997, "exp", beta=50, total_steps=1000) == 0.0
    assert ema_decay_at(100, 0.997, "exp", beta=50, total_steps=1000) == pytest.approx(0.9902823, abs=1e-7)
    # Base default: decay 0.9999, beta 15, half-way: 0.9999 (1 − e^−7.5) ≈ 0.9993470.
    assert ema_decay_at(500, 0.9999, "exp", beta=15, total_steps=1000) == pytest.approx(0.9993470, abs=1e-7)


def test_constant_schedule_is_the_decay():
    assert ema_decay_at(7, 0.999, "constant") == 0.999


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"schedule": "cosine"}, "valid: constant, threshold, exp"),
        ({"schedule": "exp"}, "needs beta and total_steps"),
        ({"schedule": "threshold", "decay": 1.5}, r"\[0, 1\]"),
    ],
)
def test_bad_ema_settings_are_rejected(kwargs, message):
    args = {"step": 1, "decay": 0.99} | kwargs
    with pytest.raises(ValueError, match=message):
        ema_decay_at(**args)


def _model(value: float) -> nn.Module:
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(value)
    return model


def test_model_ema_tracks_the_model_with_the_scheduled_decay():
    model = _model(0.0)
    ema = ModelEma(model, decay=0.997, schedule="threshold")
    with torch.no_grad():
        model[0].weight.fill_(1.0)
    # Step 0: decay 0.1 → ema = 0.1 × 0 + 0.9 × 1 = 0.9.
    assert ema.update(model, step=0) == pytest.approx(0.1)
    assert torch.allclose(ema.module[0].weight, torch.full((2, 2), 0.9))
    # Step 1: decay 2/11 → 2/11 × 0.9 + 9/11 × 1 = 10.8/11 ≈ 0.981818.
    ema.update(model, step=1)
    assert torch.allclose(ema.module[0].weight, torch.full((2, 2), 10.8 / 11))
    assert torch.equal(ema.module[0].bias, torch.zeros(2))  # the model's bias stayed 0


def test_model_ema_copies_integer_buffers_and_averages_float_ones():
    model = _model(0.0)
    ema = ModelEma(model, decay=0.5)
    model.train()
    model(torch.ones(4, 2))  # BatchNorm: num_batches_tracked 0 → 1, running_var moves from 1
    ema.update(model, step=10)
    assert ema.module[1].num_batches_tracked.item() == 1
    # running_var: momentum 0.1, the batch variance is 0 (constant inputs) → 0.9; ema: 0.5 × 1 + 0.5 × 0.9.
    assert torch.allclose(ema.module[1].running_var, torch.full((2,), 0.95))


def test_model_ema_does_not_train_and_leaves_the_model_alone():
    model = _model(1.0)
    ema = ModelEma(model, decay=0.9)
    assert not ema.module.training
    assert not any(p.requires_grad for p in ema.module.parameters())
    assert all(p.requires_grad for p in model.parameters())


def test_model_ema_state_dict_round_trips_with_the_model_keys():
    model = _model(2.0)
    ema = ModelEma(model, decay=0.9)
    state = ema.state_dict()
    assert set(state) == set(model.state_dict())
    restored = ModelEma(_model(0.0), decay=0.9)
    restored.load_state_dict(state)
    assert torch.equal(restored.module[0].weight, torch.full((2, 2), 2.0))


def test_model_ema_exp_schedule_uses_beta_and_total_steps():
    model = _model(0.0)
    ema = ModelEma(model, decay=0.997, schedule="exp", beta=50, total_steps=1000)
    assert ema.decay_at(100) == pytest.approx(0.997 * (1 - math.exp(-5)))
