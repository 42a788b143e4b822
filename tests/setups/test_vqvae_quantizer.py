"""VAR's multi-scale residual quantiser (VAR models/quant.py): residuals, φ sharing, straight-through, fp32."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from setup_helpers import small_vqvae_config

from curricurun.setups.vqvae.codebook import kmeans
from curricurun.setups.vqvae.quantizer import (
    MultiScaleResidualQuantizer,
    Phi,
    SingleScaleQuantizer,
    phi_count,
    phi_index,
)
from curricurun.setups.vqvae.vqvae import VQVAE

TINY = small_vqvae_config()


def _structured_latent(generator: torch.Generator) -> torch.Tensor:
    """A latent with content at every scale: noise maps at 1, 2, 4, 8 px, up-sampled and summed."""
    parts = [torch.randn(16, 8, s, s, generator=generator) / s for s in (1, 2, 4, 8)]
    return sum(F.interpolate(part, size=(8, 8), mode="bicubic") for part in parts)


def test_phi_of_each_of_vars_ten_scales_follows_the_nearest_tick_rule_with_four_shared_phis():
    # n = 4 ticks: linspace(1/12, 11/12, 4) = 3/36, 13/36, 23/36, 33/36; scale k sits at k/9 = 4k/36.
    # 4k = 0, 4 -> nearest 3 (φ0); 8 -> 3 and 13 tie at distance 5 (float64 linspace puts 13/36 a hair low: φ1);
    # 12, 16 -> 13 (φ1); 20, 24 -> 23 (φ2); 28 -> 23 and 33 tie (float rounding: φ3); 32, 36 -> 33 (φ3).
    assert [phi_index(k, 10, 4) for k in range(10)] == [0, 0, 1, 1, 1, 2, 2, 3, 3, 3]
    quantizer = MultiScaleResidualQuantizer(16, 4, (1, 2, 3, 4, 5, 6, 8, 10, 13, 16), share_quant_resi=4)
    assert quantizer.phi_of_scale == (0, 0, 1, 1, 1, 2, 2, 3, 3, 3)
    assert len(quantizer.quant_resi) == 4


def test_phi_sharing_zero_gives_one_phi_per_scale_one_gives_a_single_phi_and_two_split_at_the_middle():
    # share 0: 10 φ's, ticks linspace(1/20, 19/20, 10) = 0.05 + 0.1 i;
    # k/9 is nearest to tick k since |k/9 - 0.05 - 0.1k| < 0.05.
    assert [phi_index(k, 10, phi_count(0, 10)) for k in range(10)] == list(range(10))
    assert [phi_index(k, 10, phi_count(1, 10)) for k in range(10)] == [0] * 10
    # n = 2: ticks 1/4, 3/4; k/9 < 1/2 for k <= 4 (4/9 = 0.444), so scales 0-4 take φ0 and 5-9 take φ1.
    assert [phi_index(k, 10, 2) for k in range(10)] == [0] * 5 + [1] * 5


def test_phi_mixes_the_code_map_with_its_convolution_by_quant_resi():
    phi = Phi(2, 0.5)
    h = torch.randn(1, 2, 4, 4)
    expected = 0.5 * h + 0.5 * F.conv2d(h, phi.weight, phi.bias, padding=1)
    torch.testing.assert_close(phi(h), expected)


def test_a_two_scale_quantisation_worked_by_hand_gives_the_residuals_and_the_loss():
    quantizer = MultiScaleResidualQuantizer(4, 1, (1, 2), beta=0.25, quant_resi=0.0)
    with torch.no_grad():
        quantizer.embedding.weight.copy_(torch.tensor([[0.0], [1.0], [-0.5], [0.5]]))
    f = torch.tensor([[[[1.5, 0.5], [1.0, 1.0]]]])
    out = quantizer(f)
    # Scale 0: area mean 1.0 -> code 1 (1.0), up-sampled to a constant 2x2 map; residual [[0.5, -0.5], [0, 0]].
    # Scale 1 (full map): 0.5 -> code 3, -0.5 -> code 2, 0 -> code 0; f̂ = f, residual 0.
    assert [index.flatten().tolist() for index in out.indices] == [[1], [3, 2, 0, 0]]
    torch.testing.assert_close(out.residual_energy, torch.tensor([0.125, 0.0]))
    torch.testing.assert_close(out.f_hat, f)
    # Loss: scale 0 gives (β + 1)·MSE = 1.25 · 0.125, scale 1 gives 0; the mean over 2 scales is 0.078125.
    torch.testing.assert_close(out.loss, torch.tensor(0.078125))
    assert out.code_hits.tolist() == [[0, 1, 0, 0], [2, 0, 1, 1]]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_residual_shrinks_at_every_scale_with_a_codebook_fitted_to_the_latents(seed):
    generator = torch.Generator().manual_seed(seed)
    quantizer = MultiScaleResidualQuantizer(128, 8, (1, 2, 3, 4, 6, 8), quant_resi=0.5, share_quant_resi=4)
    f = _structured_latent(generator)
    with torch.no_grad():
        quantizer.embedding.weight.copy_(kmeans(quantizer.exact_residual_targets(f), 128, 10, generator))
    energy = quantizer(f).residual_energy.tolist()
    assert all(later < earlier for earlier, later in zip(energy, energy[1:], strict=False)), energy
    assert energy[0] < f.square().mean().item()
    assert energy[-1] < 0.2 * f.square().mean().item()


def test_the_straight_through_estimator_passes_the_decoder_gradient_to_the_latent_unchanged():
    quantizer = MultiScaleResidualQuantizer(32, 4, (1, 2, 4), quant_resi=0.5, share_quant_resi=2)
    f = torch.randn(3, 4, 4, 4, requires_grad=True)
    weights = torch.randn(3, 4, 4, 4)
    out = quantizer(f)
    (out.f_hat * weights).sum().backward()
    assert torch.equal(f.grad, weights)
    # ...while the value is the quantised f̂, not f: f̂ is an exact sum of the scales' contributions.
    assert not torch.allclose(out.f_hat, f)


def test_the_encoder_learns_from_the_reconstruction_loss_alone_through_the_quantiser():
    model = VQVAE(TINY)
    images = torch.rand(4, 1, 16, 16) * 2 - 1
    output = model(images)
    (output.reconstruction - images).square().mean().backward()
    for name in ("conv_in.weight", "conv_out.weight"):
        grad = dict(model.encoder.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name
    assert model.quantize.embedding.weight.grad is None or model.quantize.embedding.weight.grad.abs().sum() == 0


def test_the_codebook_and_phi_learn_from_the_vq_loss():
    model = VQVAE(TINY)
    model(torch.rand(4, 1, 16, 16) * 2 - 1).vq_loss.backward()
    assert model.quantize.embedding.weight.grad.abs().sum() > 0
    assert model.quantize.quant_resi[0].weight.grad.abs().sum() > 0


def test_the_quantiser_computes_in_fp32_inside_a_bf16_autocast():
    quantizer = MultiScaleResidualQuantizer(64, 4, (1, 2, 4), quant_resi=0.5, share_quant_resi=2)
    conv_dtypes = []

    def recording(original):
        def conv(*args):
            result = original(*args)
            conv_dtypes.append(result.dtype)
            return result

        return conv

    for phi in quantizer.quant_resi:
        phi._conv_forward = recording(phi._conv_forward)
    f = torch.randn(2, 4, 4, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = quantizer(f.to(torch.bfloat16))
        quantizer.quant_resi[0](f)  # the same φ called outside the quantiser follows the autocast
    assert conv_dtypes == [torch.float32] * 3 + [torch.bfloat16]
    assert inside.f_hat.dtype == inside.loss.dtype == torch.float32
    outside = quantizer(f.to(torch.bfloat16).float())
    assert all(torch.equal(a, b) for a, b in zip(inside.indices, outside.indices, strict=True))


def test_cosine_codes_ignore_the_length_of_the_vectors_when_z_normalised():
    quantizer = MultiScaleResidualQuantizer(2, 2, (1,), z_normalise=True, quant_resi=0.0)
    with torch.no_grad():
        quantizer.embedding.weight.copy_(torch.tensor([[10.0, 0.0], [0.1, 0.1]]))
    # Cosine: (1, 1.2) vs codes: 1/1.562 = 0.64 and 2.2/(1.562·1.414) = 0.996 -> code 1;
    # (3, 0.1): 3/3.002 = 0.999 and 3.1/(3.002·1.414) = 0.730 -> code 0.
    vectors = torch.tensor([[1.0, 1.2], [3.0, 0.1]])
    assert quantizer.nearest_codes(vectors).tolist() == [1, 0]
    quantizer.z_normalise = False
    # L2: (1, 1.2) -> code 1 (0.81 + 1.21 = 2.02 < 81 + 1.44); (3, 0.1) -> code 1 (8.41 + 0 < 49 + 0.01).
    assert quantizer.nearest_codes(vectors).tolist() == [1, 1]


def test_the_single_scale_quantiser_is_classic_vq_at_the_latent_size():
    quantizer = SingleScaleQuantizer(8, 3, latent_size=4, beta=0.25)
    f = torch.randn(2, 3, 4, 4)
    out = quantizer(f)
    codebook = quantizer.embedding.weight
    nearest = torch.cdist(f.permute(0, 2, 3, 1).reshape(-1, 3), codebook).argmin(1)
    assert quantizer.patch_nums == (4,)
    assert out.indices[0].flatten().tolist() == nearest.tolist()
    quantised = codebook[nearest].reshape(2, 4, 4, 3).permute(0, 3, 1, 2)
    torch.testing.assert_close(out.f_hat, quantised)
    torch.testing.assert_close(out.loss, 1.25 * F.mse_loss(quantised, f))


def test_a_latent_of_the_wrong_size_is_refused_with_the_expected_side():
    quantizer = MultiScaleResidualQuantizer(8, 2, (1, 2, 4))
    with pytest.raises(ValueError, match="last patch number is 4"):
        quantizer(torch.randn(1, 2, 8, 8))
