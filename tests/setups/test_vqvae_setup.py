"""The vqvae setup: VAR's parameter count, recipe validation, loss, evaluation sums, pictures and export."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from curricurun.cli import RECIPES_DIR
from curricurun.commands.inspect_model import summarize_model
from curricurun.curriculum.base import StageState
from curricurun.errors import UserError
from curricurun.recipe import load_recipe
from curricurun.setups import get as get_setup
from curricurun.setups.base import DataShape
from curricurun.setups.vqvae.setup import VqvaeParams, VqvaeSetup
from curricurun.setups.vqvae.tokenizer import load_tokenizer
from curricurun.setups.vqvae.vqvae import VQVAE, VQVAEConfig

# VAR's vae_ch160v4096z32 (models/vqvae.py:16-53). By module, from the layer definitions:
# encoder 44,107,872 + quant_conv (32·32·9 + 32 = 9,248) + quantize (codebook 4096·32 = 131,072 and 4 φ's of 9,248 =
# 36,992: 168,064) + post_quant_conv 9,248 + decoder 64,653,923 = 108,948,355.
VAR_VAE_PARAMETERS = 108_948_355

SMALL = {
    "ch": 8,
    "ch_mult": (1, 2),
    "num_res_blocks": 1,
    "norm_groups": 4,
    "z_channels": 4,
    "vocab_size": 16,
    "patch_nums": (1, 2, 4, 8),
}


def test_the_var_recipe_builds_vars_vae_with_its_exact_parameter_count_on_the_meta_device():
    summary = summarize_model(load_recipe(RECIPES_DIR / "vqvae_var.yaml"))
    assert abs(summary["parameters"] - VAR_VAE_PARAMETERS) <= 0.001 * VAR_VAE_PARAMETERS
    assert summary["parameters"] == VAR_VAE_PARAMETERS
    assert summary["modules"]["quantize"]["parameters"] == 131_072 + 4 * 9_248
    assert summary["modules"]["quant_conv"]["parameters"] == 9_248


def test_the_default_configuration_is_vars_and_uses_group_norm_only():
    with torch.device("meta"):
        model = VQVAE(VQVAEConfig())
    assert sum(p.numel() for p in model.parameters()) == VAR_VAE_PARAMETERS
    norms = {type(m).__name__ for m in model.modules() if "Norm" in type(m).__name__}
    assert norms == {"GroupNorm"}
    assert {m.num_groups for m in model.modules() if isinstance(m, torch.nn.GroupNorm)} == {32}


def test_both_shipped_recipes_validate_and_the_tiny_one_is_the_shared_tiny_configuration():
    var = load_recipe(RECIPES_DIR / "vqvae_var.yaml").setup_params
    assert (var.vocab_size, var.z_channels, var.ch, var.ch_mult) == (4096, 32, 160, (1, 1, 2, 2, 4))
    assert (var.beta, var.quant_resi, var.share_quant_resi) == (0.25, 0.5, 4)
    assert var.patch_nums == (1, 2, 3, 4, 5, 6, 8, 10, 13, 16)
    assert (var.codebook_update, var.codebook_init, var.dead_code_restart) == ("gradient", "uniform", False)
    tiny = load_recipe(RECIPES_DIR / "vqvae_tiny.yaml")
    assert tiny.data.image_size == 32 and tiny.setup_params.patch_nums == (1, 2, 3, 4, 6, 8)
    assert VqvaeSetup(tiny.setup_params, DataShape(1, 10, 32)).config.latent_size == 8


def test_the_setup_is_registered_under_its_name():
    assert get_setup("vqvae") is VqvaeSetup


@pytest.mark.parametrize(
    ("changes", "data", "message"),
    [
        ({}, DataShape(1, 10, 32), r"last patch number must be data.image_size / 2 .* = 16, got 8"),
        ({"norm_groups": 3}, DataShape(1, 10, 16), r"norm_groups: 3 must divide every level's width \[8, 16\]"),
        ({"share_quant_resi": 4, "patch_nums": (4, 8)}, DataShape(1, 10, 16), r"leave φ \[1, 2\] unused"),
        ({"quantizer": "single", "patch_nums": None, "in_channels": 1}, None, r"give \[latent side\] for the single"),
        ({"quantizer": "single", "patch_nums": (4, 8)}, DataShape(1, 10, 16), "single quantiser has one scale"),
        ({}, None, "in_channels: needed when the data is not loaded"),
    ],
)
def test_inconsistent_parameters_are_user_errors_naming_the_field(changes, data, message):
    with pytest.raises(UserError, match=message):
        VqvaeSetup(VqvaeParams(**{**SMALL, **changes}), data)


def test_patch_numbers_must_increase():
    with pytest.raises(ValueError, match="strictly increasing"):
        VqvaeParams(patch_nums=(1, 4, 2))


def test_the_single_quantiser_takes_the_latent_side_from_the_data():
    setup = VqvaeSetup(VqvaeParams(**{**SMALL, "quantizer": "single", "patch_nums": None}), DataShape(1, 10, 16))
    assert setup.config.patch_nums == (8,)


def test_training_loss_is_the_weighted_l1_and_l2_error_plus_the_vq_loss():
    setup = VqvaeSetup(VqvaeParams(**SMALL, l1_weight=0.3, l2_weight=2.0), DataShape(1, 10, 16))
    torch.manual_seed(0)
    model = setup.build_model()
    images = torch.rand(2, 1, 16, 16) * 2 - 1
    loss = setup.training_loss(model, {"image": images}, StageState())
    with torch.no_grad():
        output = model(images)
    error = output.reconstruction - images
    torch.testing.assert_close(loss, 0.3 * error.abs().mean() + 2.0 * error.square().mean() + output.vq_loss)


def test_evaluation_sums_add_up_to_metrics_with_a_histogram_per_scale():
    setup = VqvaeSetup(VqvaeParams(**SMALL), DataShape(1, 10, 16))
    model = setup.build_model().eval()
    sums = setup.evaluation_sums(model, {"image": torch.rand(3, 1, 16, 16) * 2 - 1})
    assert sums["code_hits"].shape == (4, 16)
    # each image has 1 + 4 + 16 + 64 = 85 tokens
    assert sums["code_hits"].sum(1).tolist() == [3.0, 12.0, 48.0, 192.0]
    metrics = setup.metrics_from_sums({k: float(v) if v.dim() == 0 else v for k, v in sums.items()})
    assert {"mse", "psnr", "usage", "perplexity", "usage_s3", "perplexity_s3"} <= metrics.keys()


def test_the_reconstruction_grid_has_the_inputs_above_their_reconstructions(tmp_path):
    setup = VqvaeSetup(VqvaeParams(**SMALL, pictures=4), DataShape(1, 10, 16))
    model = setup.build_model().eval()
    images = torch.full((6, 1, 16, 16), -1.0)  # black inputs: the first row is black
    with torch.no_grad():
        setup.after_evaluation(model, {"image": images}, 40, tmp_path)
    grid = Image.open(tmp_path / "reconstructions" / "step-00000040.png")
    # 4 columns × 2 rows of 16-px tiles upscaled ×6 (96 px), with 2-px padding
    assert grid.size == (4 * 98 + 2, 2 * 98 + 2) and grid.mode == "L"
    assert grid.getpixel((2 + 48, 2 + 48)) == 0


def test_export_writes_a_loadable_tokenizer_into_the_run_directory(tmp_path):
    setup = VqvaeSetup(VqvaeParams(**SMALL, codebook_update="ema"), DataShape(1, 10, 16))
    exported = setup.export(setup.build_model(), tmp_path)
    assert exported == tmp_path / "tokenizer"
    assert sorted(p.name for p in exported.iterdir()) == ["tokenizer.json", "tokenizer.safetensors"]
    assert load_tokenizer(exported).patch_nums == (1, 2, 4, 8)
