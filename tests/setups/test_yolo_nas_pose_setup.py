"""The yolo_nas_pose setup and its four recipes: validation, parameter counts, LR rule, loss and records."""

from __future__ import annotations

import json

import pytest
import torch

from curricurun.cli import RECIPES_DIR, run
from curricurun.commands.inspect_model import summarize_model
from curricurun.errors import UserError
from curricurun.recipe import load_recipe
from curricurun.setups import get as get_setup

# counted once on super-gradients 3.7.1 (models.get)
SG_TRAIN_COUNTS = {"n": 9_901_483, "s": 22_226_028, "m": 58_208_046, "l": 79_366_452}


SG_FUSED_COUNTS = {"n": 6_856_107, "s": 15_356_380, "m": 38_947_486, "l": 54_407_844}


@pytest.mark.parametrize("size", ["n", "s", "m", "l"])
def test_each_recipe_builds_a_model_with_super_gradients_parameter_count(size):
    # What `inspect-model` prints: train-time and fused (RepVGG re-parametrised) counts, both SG's exactly.
    recipe = load_recipe(RECIPES_DIR / f"yolo_nas_pose_{size}.yaml")
    assert recipe.setup_params.size == size
    summary = summarize_model(recipe)
    assert (summary["parameters"], summary["fused_parameters"]) == (SG_TRAIN_COUNTS[size], SG_FUSED_COUNTS[size])


def test_recipes_carry_the_per_variant_values_of_super_gradients():
    values = {}
    for size in "nsml":
        recipe = load_recipe(RECIPES_DIR / f"yolo_nas_pose_{size}.yaml")
        loss = recipe.setup_params.loss
        ema = recipe.training.ema
        values[size] = (recipe.batch.per_device, recipe.optim.lr, loss.dfl, loss.pose_regression, ema.schedule)
    assert values == {
        "n": (60, 2e-3, 0.01, 34.0, "threshold"),
        "s": (48, 2e-3, 0.01, 34.0, "threshold"),
        "m": (32, 1e-4, 0.5, 10.0, "exp"),
        "l": (24, 8e-5, 0.5, 10.0, "exp"),
    }


def _effective_lr(capsys, world_size: int) -> float:
    recipe = RECIPES_DIR / "yolo_nas_pose_s.yaml"
    args = ["inspect-schedule", str(recipe), "--dataset-size", "4800", "--world-size", str(world_size)]
    assert run([*args, "--json", "--every", "100000"]) == 0
    return json.loads(capsys.readouterr().out)["lr"]["effective_lr"]


def test_one_gpu_gets_an_eighth_of_the_eight_gpu_learning_rate(capsys):
    # linear rule, reference 8 GPUs × 48: 1 GPU → 2e-3 × 48/384 = 2.5e-4
    one, eight = _effective_lr(capsys, 1), _effective_lr(capsys, 8)
    assert (one, eight) == (pytest.approx(2.5e-4), pytest.approx(2e-3))
    assert one / eight == pytest.approx(1 / 8)


def test_custom_keypoint_sets_are_validated_with_the_recipe():
    bad = "setup.keypoints={num_keypoints: 2, flip_map: [1, 1], oks_sigmas: [0.1, 0.1]}"
    with pytest.raises(UserError, match="flip_map"):
        load_recipe(RECIPES_DIR / "yolo_nas_pose_n.yaml", [bad])
    good = "setup.keypoints={num_keypoints: 2, flip_map: [1, 0], oks_sigmas: [0.1, 0.1]}"
    recipe = load_recipe(RECIPES_DIR / "yolo_nas_pose_n.yaml", [good])
    assert recipe.setup_params.keypoint_set.flip_map == [1, 0]


def _batch(num_keypoints: int) -> dict[str, torch.Tensor]:
    """Two 64-px images: one person in the first, none in the second."""
    keypoints = torch.zeros(2, 1, num_keypoints, 3)
    keypoints[0, 0] = torch.tensor([[20.0, 20.0, 2.0], [30.0, 40.0, 1.0]])
    return {
        "image": torch.randn(2, 3, 64, 64),
        "pose_boxes": torch.tensor([[[10.0, 10.0, 50.0, 60.0]], [[0.0, 0.0, 0.0, 0.0]]]),
        "pose_keypoints": keypoints,
        "pose_crowd": torch.zeros(2, 1, dtype=torch.bool),
        "pose_valid": torch.tensor([[True], [False]]),
        "pose_areas": torch.tensor([[1500.0], [0.0]]),
    }


def test_setup_trains_and_evaluates_a_custom_two_keypoint_set():
    setup_cls = get_setup("yolo_nas_pose")
    keypoints = {"num_keypoints": 2, "flip_map": [1, 0], "oks_sigmas": [0.1, 0.1], "skeleton": [(0, 1)]}
    setup = setup_cls(setup_cls.Params(size="n", keypoints=keypoints), None)
    torch.manual_seed(0)
    model = setup.build_model()
    batch = _batch(2)
    loss = setup.training_loss(model, batch, stage=None)
    loss.backward()
    assert loss.item() > 0 and model.heads.levels[0].pose_pred.weight.grad is not None
    model.eval()
    metrics = setup.metrics_from_sums(setup.evaluation_sums(model, batch) | {"batches": torch.tensor(1.0)})
    assert set(metrics) == {"loss_cls", "loss_iou", "loss_dfl", "loss_pose_cls", "loss_pose_reg", "loss"}
    records = setup.evaluation_step(model, batch)[1]
    assert [r.num_ground_truth["all"] for r in records] == [1, 0]
    summary = setup.metrics_from_records(records)
    # 1500 px² lies in COCO's medium range (32² = 1024 to 96² = 9216): no large person, so AP_large is undefined
    assert 0.0 <= summary["AP"] <= 1.0 and summary["AP_large"] == -1.0


def _learning_rate(world_size: int, dataset_size: int = 4800):
    from curricurun.engine.assembly import batch_sizes, build_learning_rate, build_plan

    recipe = load_recipe(RECIPES_DIR / "yolo_nas_pose_s.yaml")
    plan = build_plan(recipe, dataset_size, world_size, None)
    return plan, build_learning_rate(recipe, plan, batch_sizes(recipe, world_size), None)


@pytest.mark.parametrize(("world_size", "steps_per_epoch"), [(1, 100), (8, 12)])
def test_the_peak_learning_rate_holds_until_epoch_ten_on_any_number_of_gpus(world_size, steps_per_epoch):
    # 4800 images / (48 × world) per step: 100 steps per epoch on 1 GPU, 4800 // 384 = 12 on 8.
    # SG: warm-up min(128 steps, one epoch), then flat until epoch 10 (lr_warmup_epochs), then cosine.
    plan, lr = _learning_rate(world_size)
    assert plan.steps_per_epoch == steps_per_epoch
    warmup, hold = min(128, steps_per_epoch), 10 * steps_per_epoch
    assert (lr.schedule.warmup_steps, lr.schedule.hold_steps) == (warmup, hold)
    assert lr.schedule.total_steps == 1000 * steps_per_epoch  # max_epochs, whatever early stopping does
    assert lr.schedule.ratio_at(warmup + hold) == 1.0  # SG sets the LR after the step: t = g − 1 − W − hold ≤ 0
    assert lr.schedule.ratio_at(warmup + hold + 10) < 1.0


def test_hold_steps_and_hold_epochs_together_are_refused():
    with pytest.raises(UserError, match="hold_steps.*hold_epochs"):
        load_recipe(RECIPES_DIR / "yolo_nas_pose_s.yaml", ["schedule.hold_steps=5"])


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("data.augment.hflip=true", "data.augment.hflip"),
        ("data.augment.mixup=0.8", "data.augment.mixup"),
        ("data.replay={replay_times: [2], buffer_size: [4]}", "data.replay"),
    ],
)
def test_classification_data_options_are_refused_for_pose_recipes(override, field):
    # The pose setup builds its own samples: these fields would be silently ignored, so validation names them.
    with pytest.raises(UserError, match=rf"{field}.*builds its own samples"):
        load_recipe(RECIPES_DIR / "yolo_nas_pose_n.yaml", [override])
