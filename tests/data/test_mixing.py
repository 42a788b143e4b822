"""Random erasing and Mixup/CutMix (timm's), seeded per step, and the soft-target loss of the classification setup."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from engine_helpers import FASHION_MNIST, needs_fashion_mnist, run_cli, small_recipe
from timm.data.mixup import mixup_target
from timm.loss import SoftTargetCrossEntropy

from curricurun.curriculum.base import StageState
from curricurun.data import load_split
from curricurun.data.mixing import build_mixup, build_random_erasing, erase_batch, mix_batch, seeded_host_random
from curricurun.data.transforms import StageTransform
from curricurun.engine.trainer import step_seed
from curricurun.recipe.schema import AugmentConfig
from curricurun.setups.base import DataShape
from curricurun.setups.classification import ClassificationParams, ClassificationSetup

K = 10


def batch(size: int = 8, side: int = 16) -> dict[str, torch.Tensor]:
    """Image i is filled with the value i (so a mixed pixel tells its mixing weights); label i mod K."""
    image = torch.arange(size, dtype=torch.float32)[:, None, None, None].expand(size, 1, side, side).contiguous()
    return {"image": image, "label": torch.arange(size) % K, "index": torch.arange(size)}


def test_mixup_mixes_each_image_with_its_mirror_and_lambda_comes_from_the_step_seed():
    mixer = build_mixup(0.8, 0.0, K)
    mixed = mix_batch(batch(), mixer, seed=42)
    # timm's batch mode with mixup only draws rand() < prob, then λ ~ Beta(0.8, 0.8), from NumPy's global RNG.
    np.random.seed(42)
    np.random.rand()
    lam = np.random.beta(0.8, 0.8)
    values = torch.arange(8, dtype=torch.float32)
    expected = lam * values + (1 - lam) * values.flip(0)
    assert torch.allclose(mixed["image"][:, 0, 0, 0], expected, atol=1e-5)
    # Soft targets without smoothing: λ on the own label, 1 − λ on the mirror's label; rows sum to 1.
    assert mixed["target"].shape == (8, K)
    assert mixed["target"][0, 0].item() == pytest.approx(lam, abs=1e-6)
    assert mixed["target"][0, 7].item() == pytest.approx(1 - lam, abs=1e-6)
    assert torch.allclose(mixed["target"].sum(1), torch.ones(8))
    assert torch.equal(mixed["label"], torch.arange(8) % K)  # the hard labels are kept


def test_cutmix_pastes_a_box_of_the_mirror_image_and_lambda_is_the_kept_area():
    mixer = build_mixup(0.0, 1.0, K)
    mixed = mix_batch(batch(side=16), mixer, seed=7)
    pasted = mixed["image"][0, 0] == 7  # image 0 is 0 everywhere but the box pasted from image 7
    area = int(pasted.sum())
    assert 0 < area < 256
    rows, cols = pasted.nonzero(as_tuple=True)
    assert area == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)  # one rectangle
    # timm corrects λ to the kept area: target on label 0 = 1 − area/256.
    assert mixed["target"][0, 0].item() == pytest.approx(1 - area / 256, abs=1e-6)


def test_the_same_step_seed_mixes_the_same_way_and_the_global_generators_are_left_alone():
    mixer = build_mixup(0.8, 1.0, K)
    random.seed(123)
    np.random.seed(123)
    expected_python, expected_numpy = random.random(), np.random.rand()
    random.seed(123)
    np.random.seed(123)
    first = mix_batch(batch(), mixer, seed=5)
    assert (random.random(), np.random.rand()) == (expected_python, expected_numpy)
    again = mix_batch(batch(), mixer, seed=5)
    other = [mix_batch(batch(), mixer, seed=s)["target"] for s in range(6, 12)]
    assert torch.equal(first["image"], again["image"]) and torch.equal(first["target"], again["target"])
    assert any(not torch.equal(first["target"], target) for target in other)


def test_mixed_targets_smoothed_by_the_loss_equal_timms_smoothed_mixup_targets():
    # Smoothing is affine and the mixing weights sum to 1: (λa + (1−λ)b)(1−ε) + ε/K = λ·s(a) + (1−λ)·s(b).
    setup = ClassificationSetup(
        ClassificationParams(model="test_resnet", label_smoothing=0.1),
        DataShape(channels=1, num_classes=K, image_size=16),
    )
    model = setup.build_model()
    mixed = mix_batch(batch(), build_mixup(0.8, 0.0, K), seed=3)
    loss = setup.training_loss(model, mixed, StageState())
    lam = float(mixed["target"][0, 0])
    timm_target = mixup_target(torch.arange(8) % K, K, lam=lam, smoothing=0.1)
    reference = SoftTargetCrossEntropy()(model(mixed["image"]).float(), timm_target)
    assert loss.item() == pytest.approx(reference.item(), rel=1e-6)


def test_random_erasing_fills_one_box_per_chosen_image_with_noise_and_repeats_with_the_seed():
    eraser = build_random_erasing(1.0, mode="const")
    erased = erase_batch({"image": torch.ones(6, 1, 28, 28)}, eraser, seed=9)["image"]
    for image in erased:
        zeros = image[0] == 0
        area = int(zeros.sum())
        # timm's box: area in [0.02, 1/3] of the image (rounded sides), one rectangle, const mode = 0.
        assert 0.02 * 784 * 0.7 <= area <= 784 / 3 * 1.3
        rows, cols = zeros.nonzero(as_tuple=True)
        assert area == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
    again = erase_batch({"image": torch.ones(6, 1, 28, 28)}, eraser, seed=9)["image"]
    assert torch.equal(erased, again)
    boxes = {tuple((image[0] == 0).nonzero()[0].tolist()) for image in erased}
    assert len(boxes) > 1  # each image draws its own box


def test_random_erasing_probability_quarter_erases_about_a_quarter_of_the_images():
    eraser = build_random_erasing(0.25)  # ET++'s --reprob 0.25 --remode pixel
    erased = erase_batch({"image": torch.full((400, 1, 16, 16), 5.0)}, eraser, seed=0)["image"]
    changed = (erased != 5.0).flatten(1).any(1).float().mean().item()
    assert 0.18 < changed < 0.32  # 100 of 400 expected; binomial sd 8.7 images = 0.022


def test_augmentations_are_off_unless_asked_for():
    augment = AugmentConfig()
    assert (augment.mixup, augment.cutmix, augment.random_erasing) == (0.0, 0.0, 0.0)
    assert build_mixup(augment.mixup, augment.cutmix, K) is None
    assert build_random_erasing(augment.random_erasing) is None
    assert build_mixup(0.8, 1.0, K, prob=0.0) is None
    et = AugmentConfig(mixup=0.8, cutmix=1.0, random_erasing=0.25)
    assert (et.mixup_prob, et.mixup_switch_prob, et.mixup_mode, et.random_erasing_mode) == (
        1.0,
        0.5,
        "batch",
        "pixel",
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"random_erasing": 1.5}, "less than or equal to 1"),
        ({"mixup": -0.1}, "greater than or equal to 0"),
        ({"mixup_mode": "row"}, "'batch', 'pair' or 'elem'"),
        ({"random_erasing_mode": "noise"}, "'const', 'rand' or 'pixel'"),
    ],
)
def test_bad_augmentation_values_are_rejected(fields, message):
    with pytest.raises(ValueError, match=message):
        AugmentConfig(**fields)


def test_an_odd_batch_cannot_be_mixed():
    with pytest.raises(ValueError, match="even batch size, got 7"):
        mix_batch(batch(size=7), build_mixup(0.8, 0.0, K), seed=0)


def test_seeded_host_random_restores_the_generators_even_after_an_error():
    random.seed(1)
    before = random.getstate()
    with pytest.raises(RuntimeError), seeded_host_random(99):
        raise RuntimeError
    assert random.getstate() == before


@needs_fashion_mnist
def test_training_mixes_each_step_with_the_lambda_of_its_step_seed(tmp_path):
    # Mixup only (no cutmix, erasing or RandAugment), batch 16, seed 1: the model's first image of step s is
    # λ_s·x_a + (1 − λ_s)·x_b, x_a / x_b the loader's first / last image, λ_s from NumPy seeded step_seed(1, s, 0).
    recipe = small_recipe(tmp_path, data={"augment": {"mixup": 0.8}, "max_eval_samples": 50})
    trace_dir = tmp_path / "trace"
    run_cli(
        ["train", str(recipe), "--output-dir", str(tmp_path / "run"), "--stop-after", "3"],
        env={"CURRICURUN_SAMPLE_TRACE": str(trace_dir)},
    )
    lines = [json.loads(line) for line in (trace_dir / "samples-rank0.jsonl").read_text().splitlines()][:-1]
    data = load_split("idx", str(FASHION_MNIST), "train", max_samples=640)
    assert len(lines) == 3
    for line in lines:
        np.random.seed(step_seed(1, line["step"], 0) % 2**32)
        np.random.rand()
        lam = np.random.beta(0.8, 0.8)
        first, last = (
            float(StageTransform()(data.image(i), 28, None, None, 0).double().sum())
            for i in (line["indices"][0], line["indices"][-1])
        )
        assert line["first_image_sum"] == pytest.approx(lam * first + (1 - lam) * last, abs=1e-3)


def test_a_recipe_that_mixes_an_odd_per_device_batch_is_a_user_error_before_training():
    from curricurun.data.labelled_images import batch_augmentations as _batch_augmentations
    from curricurun.errors import UserError

    with pytest.raises(UserError, match="data.augment.mixup: needs an even per-device batch .* got 7"):
        _batch_augmentations(AugmentConfig(mixup=0.8), K, per_device=7)
    eraser, mixer = _batch_augmentations(AugmentConfig(cutmix=1.0, random_erasing=0.25), K, per_device=8)
    assert (mixer.cutmix_alpha, mixer.mixup_alpha, eraser.probability, eraser.mode) == (1.0, 0.0, 0.25, "pixel")
