"""The shipped EfficientTrain(++) ImageNet recipes, read through ``inspect-schedule --json``: the reference's stage
tables, the LR by compute, ICCV's 0.653 compute and the baselines (ET++ launchers, main_buffer.py, TPAMI Table 7)."""

from __future__ import annotations

import json
import math

import pytest

from curricurun.cli import RECIPES_DIR, run
from curricurun.recipe import load_recipe

STEPS_PER_EPOCH = 20  # the stage tables do not depend on the dataset size; 20 keeps each plan small
ET_PP = {
    # recipe: (bandwidth per 10% of compute, base drop path, warm-up fraction of the compute)
    "efficienttrain_pp_resnet50": ((96, 96, 160, 160, 160, 160, 224, 224, 224, 224), 0.0, 20 / 1088),
    "efficienttrain_pp_swin_t": ((96, 96, 160, 160, 160, 160, 224, 224, 224, 224), 0.2, 20 / 1088),
    "efficienttrain_pp_deit_s": ((96, 96, 160, 160, 160, 160, 192, 192, 224, 224), 0.1, 217 / 1088),
    "efficienttrain_pp_convnext_t": ((160, 160, 160, 160, 160, 160, 224, 224, 224, 224), 0.1, 20 / 392),
}
BASELINES = ("resnet50", "swin_t", "deit_s", "convnext_t")


def inspect_json(capsys, name: str, *args) -> dict:
    code = run(["inspect-schedule", str(RECIPES_DIR / f"{name}.yaml"), *map(str, args), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


@pytest.mark.parametrize("name", sorted(ET_PP))
def test_et_plus_plus_recipes_reproduce_the_reference_stage_table_per_tenth_of_compute(name, capsys):
    bandwidths, _, _ = ET_PP[name]
    report = inspect_json(capsys, name, "--steps-per-epoch", STEPS_PER_EPOCH, "--every", 10**6)
    stages = report["stages"]
    # 10 stages of 10% of the compute each: B from the launcher's table, RandAugment m = the stage index.
    assert [stage["bandwidth"] for stage in stages] == list(bandwidths)
    assert [stage["aug_magnitude"] for stage in stages] == list(range(10))
    # Each stage spends 10% of 200 × 20 = 4000 compute-steps, up to the last step's overshoot (≤ 1 step = 0.025%).
    assert all(stage["compute_share"] == pytest.approx(0.1, abs=3e-4) for stage in stages)
    assert [stage["relative_cost"] for stage in stages] == pytest.approx([(b / 224) ** 2 for b in bandwidths])
    # The budget: 200 equivalent 224-px epochs, all spent (compute-budget mode).
    assert report["relative_compute"] == pytest.approx(1.0, abs=3e-4)


@pytest.mark.parametrize("name", sorted(ET_PP))
def test_et_plus_plus_learning_rate_is_a_cosine_of_the_compute_fraction_with_the_reference_warm_up(name, capsys):
    _, _, warmup_fraction = ET_PP[name]
    report = inspect_json(capsys, name, "--steps-per-epoch", STEPS_PER_EPOCH, "--every", 97)
    total = 200 * STEPS_PER_EPOCH  # 4000 compute-steps: the schedule's length
    warmup = round(warmup_fraction * total)  # e.g. ResNet-50: round(0.018382 × 4000) = round(73.5) = 74
    final = 2.5e-4  # min_lr 1e-6 / lr 4e-3
    for entry in report["steps"]:
        position = entry["compute_fraction"] * total
        if position < warmup:
            ratio = position / warmup
        else:
            ratio = final + (1 - final) * (0.5 + 0.5 * math.cos(math.pi * (position - warmup) / (total - warmup)))
        assert entry["lr"] == pytest.approx(4e-3 * ratio, rel=1e-9, abs=1e-12)


def test_deit_warm_up_spans_the_whole_96_px_phase_and_resnet50_warms_up_for_a_fiftieth_of_it(capsys):
    deit = inspect_json(capsys, "efficienttrain_pp_deit_s", "--steps-per-epoch", STEPS_PER_EPOCH, "--every", 1)
    resnet = inspect_json(capsys, "efficienttrain_pp_resnet50", "--steps-per-epoch", STEPS_PER_EPOCH, "--every", 1)
    # DeiT: warm-up 0.19945 of the compute (798 of 4000 compute-steps); the 96-px phase is 20% (800).
    last_96 = max(entry["step"] for entry in deit["steps"] if entry["bandwidth"] == 96)
    assert deit["steps"][last_96]["lr"] == pytest.approx(4e-3, rel=1e-3)
    middle = deit["steps"][last_96 // 2]  # still warming up: lr = 4e-3 × compute-steps spent / 798
    assert middle["lr"] == pytest.approx(4e-3 * middle["compute_fraction"] * 4000 / 798, rel=1e-9)
    assert middle["lr"] == pytest.approx(2e-3, rel=3e-3)
    # ResNet-50: the LR peaks at 74 compute-steps = 74 / (96/224)² ≈ 403 steps of the 96-px stage.
    peak = math.ceil(74 * 50176 / 9216)  # 403: the first step with 74 compute-steps spent
    assert resnet["steps"][peak]["lr"] == pytest.approx(4e-3, rel=1e-6)
    assert resnet["steps"][peak - 1]["lr"] == pytest.approx(4e-3 * 402 * 9216 / 50176 / 74, rel=1e-9)


def test_et_plus_plus_resnet50_on_imagenet_takes_the_references_steps_and_passes(capsys):
    # 1,281,167 // 4096 = 312 steps per epoch; 200 × 312 = 62,400 compute-steps. 20% at (96/224)² = 9216/50176:
    # 12,480 × 50176/9216 = 67,946.7 → 67,947 steps; 40% at 25600/50176: 24,960 × 1.96 = 48,921.6 → 48,922;
    # 40% at 1: 24,960. Total 141,829 (141.6k with the launcher's integer epochs), 454.6 passes.
    report = inspect_json(
        capsys, "efficienttrain_pp_resnet50", "--dataset-size", 1281167, "--world-size", 8, "--every", 10**6
    )
    assert report["steps_per_epoch"] == 312 and report["per_device_batch"] == 512
    assert (report["stages"][1]["end_step"], report["stages"][5]["end_step"]) == (67_947, 116_869)
    assert report["optimizer_steps"] == 141_829
    assert report["optimizer_steps"] == pytest.approx(141_600, rel=2e-3)
    # Each pass drops the last 1,281,167 − 312·4096 = 3,215 images (drop-last), so a pass is 312 steps:
    # 141,829 = 454·312 + 181, and the last pass is 181·4096 of 1,281,167 images in.
    assert report["stages"][-1]["end_epoch"] == pytest.approx(454 + 181 * 4096 / 1_281_167)


def test_iccv_recipe_costs_0653_of_its_300_full_size_epochs(capsys):
    report = inspect_json(
        capsys, "efficienttrain_iccv_resnet50", "--steps-per-epoch", STEPS_PER_EPOCH, "--every", 10**6
    )
    stages = report["stages"]
    # Five equal epoch segments of 60: B = 160, 160, 160, 192, 224 and m = 1, 3, 5, 7, 9 (ET_training.py L51, L64).
    assert [stage["bandwidth"] for stage in stages] == [160, 160, 160, 192, 224]
    assert [stage["aug_magnitude"] for stage in stages] == [1, 3, 5, 7, 9]
    assert [stage["end_epoch"] for stage in stages] == [60, 120, 180, 240, 300]
    # (3·25600 + 36864 + 50176) / (5·50176) = 163840 / 250880 = 0.6531: ICCV Table 6's "1.53×".
    assert report["relative_compute"] == pytest.approx(163840 / 250880, rel=1e-12)
    assert round(report["relative_compute"], 3) == 0.653
    assert report["total_steps"] == 300 * STEPS_PER_EPOCH


@pytest.mark.parametrize("model", BASELINES)
def test_baselines_train_300_full_size_epochs_with_fixed_randaugment_m9(model, capsys):
    report = inspect_json(
        capsys, f"efficienttrain_baseline_{model}", "--steps-per-epoch", STEPS_PER_EPOCH, "--every", 10**6
    )
    assert report["total_steps"] == 300 * STEPS_PER_EPOCH and report["relative_compute"] == 1.0
    assert len(report["stages"]) == 1 and "bandwidth" not in report["stages"][0]
    recipe = load_recipe(RECIPES_DIR / f"efficienttrain_baseline_{model}.yaml")
    pipeline = recipe.data.pipeline
    assert pipeline.name == "imagenet" and pipeline.params["magnitude"] == 9  # timm rand-m9-mstd0.5-inc1
    assert recipe.schedule.warmup_epochs == 20 and recipe.schedule.unit == "steps"


@pytest.mark.parametrize("name", sorted(ET_PP))
def test_et_plus_plus_recipes_keep_the_references_optimiser_augmentation_and_scaled_drop_path(name):
    _, base_drop_path, warmup_fraction = ET_PP[name]
    recipe = load_recipe(RECIPES_DIR / f"{name}.yaml")
    augment = recipe.data.augment
    assert (recipe.data.path, recipe.data.image_size, recipe.data.eval_split) == (
        "ILSVRC/imagenet-1k",
        224,
        "validation",
    )
    assert recipe.batch.global_batch == 4096 and recipe.optim.name == "adamw" and recipe.optim.lr == 4e-3
    assert recipe.optim.lr_scaling.reference_batch == 4096 and recipe.optim.weight_decay == 0.05
    assert (augment.mixup, augment.cutmix, augment.mixup_switch_prob) == (0.8, 1.0, 0.5)
    assert (augment.random_erasing, augment.random_erasing_mode) == (0.25, "pixel")
    assert recipe.data.pipeline.name == "imagenet" and recipe.data.pipeline.params["magnitude"] is None  # the ramp
    assert recipe.data.pipeline.params["augment_at"] == "base"  # ET++'s order: RandAugment at 224, then Lanczos to B
    assert recipe.setup_params.label_smoothing == 0.1
    # Drop path = base · E / 200 (launchers: e.g. --drop_path {0.2 * args.epoch / 200} for Swin-T).
    assert recipe.setup_params.drop_path_rate == pytest.approx(base_drop_path * recipe.training.budget_epochs / 200)
    assert recipe.training.budget_epochs == 200 and recipe.schedule.unit == "compute"
    assert recipe.schedule.warmup_fraction == pytest.approx(warmup_fraction, abs=1e-5)
    assert recipe.data.replay is None  # the replay buffer is opt-in


def test_a_replay_section_added_by_override_validates_with_the_references_stage_lists():
    recipe = load_recipe(
        RECIPES_DIR / "efficienttrain_pp_resnet50.yaml",
        ["data.replay={replay_times: [4,4,2,2,2,2,1,1,1,1], buffer_size: [1920,1920,256,256,256,256,0,0,0,0]}"],
    )
    assert recipe.data.replay.replay_times == [4, 4, 2, 2, 2, 2, 1, 1, 1, 1]
    assert recipe.data.replay.chunks == 32


def test_a_compute_indexed_lr_equals_the_step_indexed_one_when_every_step_costs_a_full_step(capsys):
    # Without a curriculum each step spends exactly one full-size step of compute, so the two units agree.
    args = ("--steps-per-epoch", STEPS_PER_EPOCH, "--every", 37)
    steps = inspect_json(capsys, "efficienttrain_baseline_resnet50", *args)
    code = run(
        [
            "inspect-schedule",
            str(RECIPES_DIR / "efficienttrain_baseline_resnet50.yaml"),
            *map(str, args),
            "--json",
            "--set",
            "schedule.unit=compute",
        ]
    )
    compute = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [entry["lr"] for entry in compute["steps"]] == pytest.approx([entry["lr"] for entry in steps["steps"]])
