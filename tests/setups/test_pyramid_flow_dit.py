"""The Pyramid-Flow DiT: packed and unpacked stage segments compute the same function (Pyramid-Flow L283-302).

Tolerance: outputs and gradients agree to 1e-5 absolute in float32 (measured differences are ~3e-7: the only
difference is the order of floating-point sums inside attention and the per-token modulation).
"""

from __future__ import annotations

import dataclasses
import warnings

import pytest
import torch

from curricurun.errors import UserError
from curricurun.setups.pyramid_flow.dit import DiTConfig, PyramidDiT

TOLERANCE = 1e-5


def _model(**overrides) -> PyramidDiT:
    torch.manual_seed(0)
    config = DiTConfig(channels=2, num_classes=10, hidden_size=64, depth=2, num_heads=4, patch_size=2, **overrides)
    model = PyramidDiT(config)
    with torch.no_grad():  # the zero-initialised adaLN would hide every difference between the layouts
        for parameter in model.parameters():
            parameter.normal_(std=0.05)
    return model


def _stage_batch(rows: int = 2):
    """A [1, 2, 1] batch of ``rows`` rows: latents at 8, 16 and 32 px, one timestep and label per sample."""
    generator = torch.Generator().manual_seed(1)
    latents = [torch.randn(rows * n, 2, side, side, generator=generator) for n, side in ((1, 8), (2, 16), (1, 32))]
    count = 4 * rows
    timesteps = torch.rand(count, generator=generator) * 999 + 1
    labels = torch.randint(0, 11, (count,), generator=generator)
    return latents, timesteps, labels


def _with(model: PyramidDiT, **changes) -> PyramidDiT:
    model.config = dataclasses.replace(model.config, **changes)
    return model


@pytest.mark.parametrize("positions", ["sincos", "rope"])
def test_packed_and_unpacked_forward_passes_give_the_same_velocities(positions):
    model = _model(positions=positions)
    latents, timesteps, labels = _stage_batch()
    packed = model(*latents, timesteps=timesteps, conditions=labels)
    unpacked = _with(model, packing="unpacked")(*latents, timesteps=timesteps, conditions=labels)
    for a, b, x in zip(packed, unpacked, latents, strict=True):
        assert a.shape == x.shape
        assert torch.allclose(a, b, atol=TOLERANCE, rtol=0)
        assert a.abs().max() > 0.1  # a real signal, not two zero outputs


def test_packed_and_unpacked_give_the_same_gradients():
    latents, timesteps, labels = _stage_batch()
    grads = []
    for packing in ("packed", "unpacked"):
        model = _model(positions="rope", packing=packing)
        outputs = model(*latents, timesteps=timesteps, conditions=labels)
        sum(o.pow(2).mean() for o in outputs).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    for name, grad in grads[0].items():
        assert torch.allclose(grad, grads[1][name], atol=TOLERANCE, rtol=1e-4), name


@pytest.mark.parametrize("positions", ["sincos", "rope"])
def test_flex_attention_block_masks_match_the_boolean_mask(positions):
    model = _model(positions=positions)
    latents, timesteps, labels = _stage_batch()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # FlexAttention warns that it runs unfused outside torch.compile
        masked = model(*latents, timesteps=timesteps, conditions=labels)
        flex = _with(model, packed_attention="flex")(*latents, timesteps=timesteps, conditions=labels)
    for a, b in zip(masked, flex, strict=True):
        assert torch.allclose(a, b, atol=TOLERANCE, rtol=0)


def test_flex_attention_refuses_to_train_on_cpu_with_an_actionable_message():
    model = _model(packed_attention="flex")
    latents, timesteps, labels = _stage_batch()
    with pytest.raises(UserError, match="'flex' trains only on CUDA.*use 'mask'"):
        model(*latents, timesteps=timesteps, conditions=labels)


def test_each_packed_sample_sees_only_its_own_segment_and_its_own_timestep():
    # Sample 3 (the second stage-1 sample of row 0) alone must give the same output as inside the packed batch,
    # and changing another sample's timestep or latent must leave it untouched.
    model = _model(positions="rope")
    latents, timesteps, labels = _stage_batch()
    packed = model(*latents, timesteps=timesteps, conditions=labels)
    order = 2 + 1  # flat order: stage-0 samples (2), then stage-1 samples; row 0's second stage-1 sample is 1
    alone = _with(model, packing="unpacked")(
        latents[1][1:2], timesteps=timesteps[order : order + 1], conditions=labels[order : order + 1]
    )
    assert torch.allclose(packed[1][1:2], alone[0], atol=TOLERANCE, rtol=0)
    _with(model, packing="packed")
    changed_times = timesteps.clone()
    changed_times[2] += 300  # row 0's first stage-1 sample
    changed = [x.clone() for x in latents]
    changed[0][0] += 1.0  # row 0's stage-0 sample
    again = model(*changed, timesteps=changed_times, conditions=labels)
    assert torch.allclose(again[1][1], packed[1][1], atol=TOLERANCE, rtol=0)
    assert not torch.allclose(again[1][0], packed[1][0], atol=1e-3)
    assert not torch.allclose(again[0][0], packed[0][0], atol=1e-3)


def test_a_fresh_model_predicts_zero_velocity_because_adaln_zero_starts_at_identity():
    model = PyramidDiT(DiTConfig(channels=1, num_classes=3, hidden_size=32, depth=1, num_heads=2))
    (out,) = model(torch.randn(2, 1, 8, 8), timesteps=torch.tensor([10.0, 900.0]), conditions=torch.tensor([0, 3]))
    assert out.shape == (2, 1, 8, 8) and torch.equal(out, torch.zeros_like(out))


def test_text_conditioning_projects_embeddings_instead_of_looking_up_classes():
    model = PyramidDiT(DiTConfig(channels=1, num_classes=3, hidden_size=32, depth=1, num_heads=2, condition_dim=7))
    assert isinstance(model.condition_embed, torch.nn.Linear) and model.condition_embed.in_features == 7
    (out,) = model(torch.randn(2, 1, 8, 8), timesteps=torch.tensor([10.0, 900.0]), conditions=torch.randn(2, 7))
    assert out.shape == (2, 1, 8, 8)


def test_a_width_that_does_not_split_into_rotary_heads_is_rejected():
    with pytest.raises(ValueError, match="hidden_size 36 must split into 4 heads"):
        PyramidDiT(DiTConfig(channels=1, num_classes=3, hidden_size=36, num_heads=4))
