"""SG's YOLO-NAS-Pose augmentations: each transform against hand-worked values, and the seeded pipelines."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from curricurun.data.pose.augment import (
    NO_AUGMENTATION,
    PRESETS,
    SG_MOSAIC,
    SG_MOSAIC_HEAVY,
    PoseAugmentation,
    adjust_brightness_contrast,
    affine_matrix,
    affine_transform,
    augment_hsv,
    draw_hsv_shift,
    eval_sample,
    mosaic,
    remove_small_objects,
    reverse_channels,
    rotate90,
    sanitize,
    shift_hsv,
    train_sample,
)
from curricurun.data.pose.keypoints import PoseSample
from curricurun.setups.yolo_nas_pose.keypoint_sets import COCO_PERSON


def _sample(image: torch.Tensor, points: list[list[list[float]]], boxes: list[list[float]], areas=None) -> PoseSample:
    count = len(points)
    return PoseSample(
        image=image.float(),
        keypoints=torch.tensor(points, dtype=torch.float32).reshape(count, -1, 3),
        boxes=torch.tensor(boxes, dtype=torch.float32).reshape(count, 4),
        areas=torch.tensor(areas if areas is not None else [100.0] * count, dtype=torch.float32),
        crowd=torch.zeros(count, dtype=torch.bool),
    )


def _constant(height: int, width: int, value: float) -> torch.Tensor:
    return torch.full((3, height, width), float(value))


def _ramp(height: int, width: int) -> torch.Tensor:
    return torch.arange(3 * height * width, dtype=torch.float32).reshape(3, height, width) % 251


# --- photometric ---------------------------------------------------------------------------------------------


def test_brightness_multiplies_the_mean_of_a_constant_image_whatever_the_contrast():
    sample = _sample(_constant(4, 5, 100), [[[1, 1, 2]]], [[0, 0, 3, 3]])
    out = adjust_brightness_contrast(sample, brightness=1.2, contrast=0.5)
    # (100 − 100)·0.5 + 100·1.2 = 120 everywhere; instances untouched.
    assert torch.allclose(out.image, torch.full_like(out.image, 120.0))
    assert torch.equal(out.keypoints, sample.keypoints)


def test_contrast_stretches_each_channel_around_its_own_mean_and_clamps_to_0_255():
    image = torch.tensor([[[50.0, 150.0]], [[0.0, 20.0]], [[100.0, 100.0]]])
    out = adjust_brightness_contrast(_sample(image, [[[0, 0, 0]]], [[0, 0, 1, 1]]), brightness=1.2, contrast=1.5)
    # red: mean 100 → (−50·1.5 + 120, 50·1.5 + 120) = (45, 195);
    # green: mean 10 → (−15 + 12, 15 + 12) = (−3 → 0, 27); blue: constant 100 → 120.
    assert torch.allclose(out.image, torch.tensor([[[45.0, 195.0]], [[0.0, 27.0]], [[120.0, 120.0]]]))
    bright = adjust_brightness_contrast(_sample(image, [[[0, 0, 0]]], [[0, 0, 1, 1]]), brightness=1.0, contrast=3.0)
    assert bright.image[0].flatten().tolist() == [0.0, 250.0]  # −50·3 + 100 = −50 → 0; 50·3 + 100 = 250


def test_reverse_channels_swaps_red_and_blue():
    image = torch.stack([torch.full((2, 2), 10.0), torch.full((2, 2), 20.0), torch.full((2, 2), 30.0)])
    out = reverse_channels(_sample(image, [[[0, 0, 0]]], [[0, 0, 1, 1]]))
    assert out.image[:, 0, 0].tolist() == [30.0, 20.0, 10.0]


def test_hsv_shift_of_one_pixel_matches_a_hand_conversion():
    pixel = torch.tensor([200.0, 100.0, 50.0]).reshape(3, 1, 1)
    sample = _sample(pixel, [[[0, 0, 0]]], [[0, 0, 1, 1]])
    # RGB (200, 100, 50): V = 200, S = 255·150/200 = 191.25, H = 60°·(100 − 50)/150 = 20° = 10 cv2 units.
    # +30 units → H = 80°; S + 100 → 291.25 clamps to 255 (chroma = V); V − 20 → 180.
    # 80° lies between yellow and green: G = V = 180, B = V − chroma = 0, R = 180·(1 − (80/60 − 1)) = 120.
    assert torch.allclose(shift_hsv(sample, 30, 100, -20).image.flatten(), torch.tensor([120.0, 180.0, 0.0]))
    # −20 units wraps: 10 − 20 → 170 units = 340°; chroma 150, so R = 200, G = 50, B = 200 − 150·(2/3) = 100.
    assert torch.allclose(shift_hsv(sample, -20, 0, 0).image.flatten(), torch.tensor([200.0, 50.0, 100.0]))


def test_hsv_with_zero_gains_or_gains_below_one_is_the_identity():
    image = torch.randint(0, 256, (3, 6, 7), generator=torch.Generator().manual_seed(0)).float()
    sample = _sample(image, [[[1, 1, 2]]], [[0, 0, 3, 3]])
    out = augment_hsv(sample, (0.0, 0.0, 0.0), torch.Generator().manual_seed(1))
    assert torch.allclose(out.image, image, atol=1e-3)
    # SG truncates the drawn shifts to integers (astype int16): |uniform(−1, 1)·0.99| < 1 always becomes 0.
    for seed in range(20):
        assert draw_hsv_shift((0.99, 0.99, 0.99), torch.Generator().manual_seed(seed)) == (0, 0, 0)


def test_hsv_draws_integer_shifts_within_the_gains_and_drops_each_channel_about_half_the_time():
    shifts = [draw_hsv_shift((20.0, 20.0, 20.0), torch.Generator().manual_seed(seed)) for seed in range(200)]
    values = [value for shift in shifts for value in shift]
    assert all(isinstance(value, int) and -20 <= value <= 20 for value in values)
    zeros = sum(value == 0 for value in values)
    # Kept with p = ½, and a kept one truncates to 0 with p = 1/20: P(0) ≈ 0.5 + 0.5·0.05 = 0.525 of 600.
    assert 250 < zeros < 380
    generator_a, generator_b = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    image = torch.randint(0, 256, (3, 4, 4), generator=torch.Generator().manual_seed(2)).float()
    sample = _sample(image, [[[1, 1, 2]]], [[0, 0, 3, 3]])
    expected = shift_hsv(sample, *draw_hsv_shift((20.0, 20.0, 20.0), generator_b))
    assert torch.equal(augment_hsv(sample, (20.0, 20.0, 20.0), generator_a).image, expected.image)


# --- geometry ------------------------------------------------------------------------------------------------


def test_affine_without_rotation_or_zoom_is_the_identity_even_with_a_translation():
    # SG's "translate" moves the pivot of the rotation/zoom, so with angle 0 and scale 1 it does nothing.
    sample = _sample(_ramp(8, 10), [[[3, 4, 2], [9, 7, 1]]], [[1, 2, 6, 7]])
    out = affine_transform(sample, angle=0.0, scale=1.0, translate=(0.1, -0.1))
    assert torch.allclose(out.image, sample.image, atol=1e-3)
    assert torch.allclose(out.keypoints, sample.keypoints)
    assert torch.allclose(out.boxes, sample.boxes)
    assert torch.allclose(out.areas, sample.areas)


def test_affine_quarter_turn_moves_keypoints_by_the_cv2_matrix_and_hides_the_one_that_leaves():
    # 4×4, pivot (2, 2), +90°: M = [[0, 1, 0], [−1, 0, 4]], i.e. (x, y) → (y, 4 − x).
    assert torch.allclose(affine_matrix(4, 4, 90.0, 1.0, (0.0, 0.0)), torch.tensor([[0.0, 1, 0], [-1, 0, 4]]).double())
    sample = _sample(_ramp(4, 4), [[[1, 1, 2], [0, 0, 2]]], [[1, 0, 3, 2]])
    out = affine_transform(sample, angle=90.0, scale=1.0, interpolation="nearest")
    # (1, 1) → (1, 3) stays visible. SG pivots about (W/2, H/2), half a pixel off the centre of pixel indices, so
    # (0, 0) → (0, 4) falls off the bottom (y ≥ H): visibility 0, coordinates kept.
    assert torch.allclose(out.keypoints[0], torch.tensor([[1.0, 3.0, 2.0], [0.0, 4.0, 0.0]]), atol=1e-5)
    # The output pixel (x=0, y=3) samples the input pixel (1, 0).
    assert torch.equal(out.image[:, 3, 0], sample.image[:, 0, 1])
    # Box corners (1,0) (3,0) (3,2) (1,2) → (0,3) (0,1) (2,1) (2,3): box [0, 1, 2, 3], area × |det| = × 1.
    assert torch.allclose(out.boxes, torch.tensor([[0.0, 1.0, 2.0, 3.0]]), atol=1e-5)


def test_affine_zoom_scales_about_the_shifted_pivot_clamps_boxes_and_rescales_areas():
    sample = _sample(_ramp(10, 10), [[[4, 6, 2], [1, 1, 2]]], [[2, 2, 6, 6]], areas=[100.0])
    out = affine_transform(sample, angle=0.0, scale=2.0)
    # Pivot (5, 5): (x, y) → (2x − 5, 2y − 5). (4, 6) → (3, 7); (1, 1) → (−3, −3), hidden.
    assert torch.allclose(out.keypoints[0], torch.tensor([[3.0, 7.0, 2.0], [-3.0, -3.0, 0.0]]))
    assert torch.allclose(out.image[:, 7, 3], sample.image[:, 6, 4], atol=1e-3)
    # Box → [−1, −1, 7, 7] (8×8), clamped to [0, 0, 7, 7] (7×7); area 100·2² = 400, then ·49/64 = 306.25.
    assert torch.allclose(out.boxes, torch.tensor([[0.0, 0.0, 7.0, 7.0]]))
    assert torch.allclose(out.areas, torch.tensor([306.25]))
    # translate (0.1, 0) moves the pivot to (6, 5): (4, 6) → (2·4 − 6, 2·6 − 5) = (2, 7).
    shifted = affine_transform(sample, angle=0.0, scale=2.0, translate=(0.1, 0.0))
    assert torch.allclose(shifted.keypoints[0, 0], torch.tensor([2.0, 7.0, 2.0]))


def test_affine_zoom_out_pads_with_127_and_keeps_the_pivot_pixel():
    sample = _sample(_ramp(10, 10), [[[5, 5, 2]]], [[0, 0, 9, 9]])
    out = affine_transform(sample, angle=0.0, scale=0.5, interpolation="bicubic")
    # (x, y) → (0.5x + 2.5, 0.5y + 2.5): output (0, 0) samples input (−5, −5), far outside → 127.
    assert torch.allclose(out.image[:, 0, 0], torch.full((3,), 127.0))
    assert torch.allclose(out.image[:, 5, 5], sample.image[:, 5, 5], atol=1e-3)
    assert out.image.min() >= 0 and out.image.max() <= 255  # bicubic overshoot clamped like uint8


def test_sanitize_hides_keypoints_off_the_pixel_grid_clamps_boxes_to_the_borders_and_shrinks_areas():
    sample = _sample(_constant(20, 30, 0), [[[30, 5, 2], [29, 19, 1]]], [[10, -5, 35, 20]], areas=[400.0])
    out = sanitize(sample)
    # x = 30 = W is off the pixel grid; (29, 19) is the last pixel, inside. The box [10, −5, 35, 20] (25 × 25)
    # clamps to [10, 0, 30, 20] (20 × 20): area 400·400/625 = 256.
    assert out.keypoints[0, :, 2].tolist() == [0.0, 1.0]
    assert out.boxes.tolist() == [[10.0, 0.0, 30.0, 20.0]]
    assert torch.allclose(out.areas, torch.tensor([256.0]))


def test_rotate90_maps_pixels_keypoints_and_boxes_like_np_rot90_without_a_flip_map():
    image = _ramp(2, 3)  # H = 2 rows, W = 3 columns
    sample = _sample(image, [[[2, 0, 2], [0, 1, 1]]], [[1, 0, 3, 2]])
    once = rotate90(sample, 1)
    # k = 1: (x, y) → (y, W − 1 − x): (2, 0) → (0, 0); (0, 1) → (1, 2). The image becomes 3 × 2.
    assert once.image.shape == (3, 3, 2)
    assert once.keypoints[0].tolist() == [[0.0, 0.0, 2.0], [1.0, 2.0, 1.0]]
    assert torch.equal(once.image[:, 0, 0], image[:, 0, 2]) and torch.equal(once.image[:, 2, 1], image[:, 1, 0])
    assert once.boxes.tolist() == [[0.0, 0.0, 2.0, 2.0]]  # (y1, W − x2, y2, W − x1)
    thrice = rotate90(sample, 3)
    # k = 3: (x, y) → (H − 1 − y, x): (2, 0) → (1, 2); box (H − y2, x1, H − y1, x2) = (0, 1, 2, 3).
    assert thrice.keypoints[0, 0].tolist() == [1.0, 2.0, 2.0]
    assert thrice.boxes.tolist() == [[0.0, 1.0, 2.0, 3.0]]
    back = rotate90(rotate90(once, 2), 1)
    assert torch.equal(back.image, image) and torch.equal(back.keypoints, sample.keypoints)
    with pytest.raises(ValueError, match="0, 1, 2 or 3"):
        rotate90(sample, 4)


def test_mosaic_tiles_four_equal_images_into_quadrants_and_shifts_their_instances():
    samples = [
        _sample(_constant(4, 6, 10 * (i + 1)), [[[1, 2, 2]]], [[0, 1, 2, 3]], areas=[float(i + 1)]) for i in range(4)
    ]
    out = mosaic(samples)
    assert out.image.shape == (3, 8, 12)
    for value, (rows, cols) in zip(
        (10, 20, 30, 40),
        (
            (slice(0, 4), slice(0, 6)),
            (slice(0, 4), slice(6, 12)),
            (slice(4, 8), slice(0, 6)),
            (slice(4, 8), slice(6, 12)),
        ),
        strict=True,
    ):
        assert out.image[:, rows, cols].eq(value).all()
    # Offsets (0, 0), (6, 0), (0, 4), (6, 4).
    assert out.keypoints[:, 0, :2].tolist() == [[1.0, 2.0], [7.0, 2.0], [1.0, 6.0], [7.0, 6.0]]
    assert out.boxes.tolist() == [[0, 1, 2, 3], [6, 1, 8, 3], [0, 5, 2, 7], [6, 5, 8, 7]]
    assert out.areas.tolist() == [1.0, 2.0, 3.0, 4.0]
    assert out.crowd.tolist() == [False] * 4


def test_mosaic_of_unequal_images_aligns_rows_on_the_centre_line_and_centres_the_narrower_row():
    sizes = ((4, 6), (2, 4), (3, 5), (5, 3))  # (H, W) of top-left, top-right, bottom-left, bottom-right
    samples = [_sample(_constant(h, w, 10 * (i + 1)), [[[0, 0, 2]]], [[0, 0, 1, 1]]) for i, (h, w) in enumerate(sizes)]
    out = mosaic(samples)
    # Top row: height 4, width 6 + 4 = 10; top-right padded 2 rows ABOVE. Bottom row: height 5, width 5 + 3 = 8,
    # bottom-left padded 2 rows BELOW, then the row padded (10 − 8) // 2 = 1 column left, 1 right. Canvas 9 × 10.
    assert out.image.shape == (3, 9, 10)
    assert out.keypoints[:, 0, :2].tolist() == [[0.0, 0.0], [6.0, 2.0], [1.0, 4.0], [6.0, 4.0]]
    assert out.image[:, 0:2, 6:10].eq(127).all() and out.image[:, 2:4, 6:10].eq(20).all()
    assert out.image[:, 4:7, 1:6].eq(30).all() and out.image[:, 7:9, 1:6].eq(127).all()
    assert out.image[:, 4:9, 0].eq(127).all() and out.image[:, 4:9, 9].eq(127).all()


def test_remove_small_objects_drops_by_area_and_by_labelled_keypoint_count():
    points = [[[1, 1, 2], [2, 2, 1], [3, 3, 2]], [[1, 1, 0], [2, 2, 0], [3, 3, 0]], [[1, 1, 2], [2, 2, 0], [3, 3, 1]]]
    sample = _sample(_constant(8, 8, 0), points, [[0, 0, 4, 4]] * 3, areas=[0.5, 10.0, 10.0])
    kept = remove_small_objects(sample, min_area=1.0, min_visible=1)
    # Instance 0: area 0.5 < 1; instance 1: no labelled keypoint; instance 2: area 10, 2 labelled → kept.
    assert kept.areas.tolist() == [10.0] and torch.equal(kept.keypoints[0], sample.keypoints[2])
    assert len(remove_small_objects(sample, min_area=0.0, min_visible=0).areas) == 3
    assert remove_small_objects(sample, min_area=0.0, min_visible=3).areas.tolist() == [0.5]


# --- pipelines -----------------------------------------------------------------------------------------------


def _coco_loader(calls: list[int]):
    """Samples of 20 × 30 px (H × W) coloured 5·index; one person, nose at (3, 4), box sticking out on the left."""

    def load(index: int) -> PoseSample:
        calls.append(index)
        points = [[[3.0, 4.0, 2.0]] + [[0.0, 0.0, 0.0]] * 16]
        return _sample(_constant(20, 30, 5 * index), points, [[-10, 0, 30, 20]], areas=[600.0])

    return load


def test_train_sample_is_a_function_of_the_seed_only():
    flip_map = COCO_PERSON.flip_map

    def run(seed: int) -> PoseSample:
        return train_sample(_coco_loader([]), 3, 10, torch.Generator().manual_seed(seed), SG_MOSAIC_HEAVY, flip_map, 64)

    first, again, other = run(7), run(7), run(8)
    assert torch.equal(first.image, again.image) and torch.equal(first.keypoints, again.keypoints)
    assert not torch.equal(first.image, other.image)
    assert first.image.shape == (3, 64, 64) and 0 <= first.image.min() and first.image.max() <= 255


def test_train_mosaic_loads_three_drawn_indices_and_tiles_them_around_the_requested_one():
    calls: list[int] = []
    augmentation = NO_AUGMENTATION.model_copy(update={"mosaic_prob": 1.0})
    out = train_sample(_coco_loader(calls), 3, 10, torch.Generator().manual_seed(0), augmentation, [0] * 17, 60)
    assert calls[0] == 3 and len(calls) == 4 and all(0 <= index < 10 for index in calls)
    # Canvas 40 × 60, longest side already 60 (no resize), centre padding puts (60 − 40) // 2 = 10 rows on top.
    assert out.image.shape == (3, 60, 60)
    for position, index in enumerate(calls):
        rows = slice(10 + 20 * (position // 2), 30 + 20 * (position // 2))
        cols = slice(30 * (position % 2), 30 * (position % 2) + 30)
        assert out.image[:, rows, cols].eq(5 * index).all()
    assert out.keypoints[:, 0, :2].tolist() == [[3.0, 14.0], [33.0, 14.0], [3.0, 34.0], [33.0, 34.0]]
    # Only the requested sample is sanitized on load (SG keypoints_compose.py): its box [−10, 0, 30, 20] clamps to
    # [0, 0, 30, 20] and its area 600 becomes 600·600/800 = 450; the extra samples keep theirs (shifted by 30).
    assert out.boxes[0].tolist() == [0.0, 10.0, 30.0, 30.0] and out.boxes[1].tolist() == [20.0, 10.0, 60.0, 30.0]
    assert torch.allclose(out.areas, torch.tensor([450.0, 600.0, 600.0, 600.0]))


def test_train_mosaic_sends_the_extra_samples_through_the_transforms_before_it():
    def load(index: int) -> PoseSample:
        image = _constant(20, 30, 200)
        image[:, :, 0] = 0  # a dark first column: after a flip it is the last one
        return _sample(image, [[[3.0, 4.0, 2.0]]], [[0, 0, 30, 20]])

    augmentation = NO_AUGMENTATION.model_copy(update={"mosaic_prob": 1.0, "flip_prob": 1.0})
    out = train_sample(load, 0, 5, torch.Generator().manual_seed(0), augmentation, [0], 60)
    assert out.image[:, 10:50, [29, 59]].eq(0).all()  # every quadrant is flipped
    assert out.image[:, 10:50, [0, 30]].eq(200).all()


def test_train_sample_without_augmentation_resizes_and_pads_at_the_centre():
    out = train_sample(_coco_loader([]), 2, 4, torch.Generator().manual_seed(0), PRESETS["none"], [0] * 17, 60)
    # 20 × 30 → scale 2 → 40 × 60; 20 extra rows: 10 above. Nose (3, 4) → (6, 8) → (6, 18).
    assert out.image.shape == (3, 60, 60)
    assert out.image[:, :10].eq(127).all() and out.image[:, 10:50].eq(10).all() and out.image[:, 50:].eq(127).all()
    assert out.keypoints[0, 0].tolist() == [6.0, 18.0, 2.0]


def test_eval_sample_pads_bottom_right_so_resized_coordinates_stay():
    sample = _sample(_ramp(50, 100), [[[10, 20, 2]]], [[0, 10, 25, 40]], areas=[100.0])
    out = eval_sample(sample, 64)
    # scale min(64/50, 64/100) = 0.64 → 32 × 64, then 32 rows of 127 below. (10, 20) → (6.4, 12.8).
    assert out.image.shape == (3, 64, 64) and out.image[:, 32:].eq(127).all()
    assert torch.allclose(out.keypoints[0, 0], torch.tensor([6.4, 12.8, 2.0]))
    assert torch.allclose(out.boxes, torch.tensor([[0.0, 6.4, 16.0, 25.6]]))
    assert torch.allclose(out.areas, torch.tensor([40.96]))


def test_presets_match_sg_recipes_and_knobs_are_validated():
    assert PRESETS["sg_mosaic"] is SG_MOSAIC and SG_MOSAIC == PoseAugmentation()
    assert (SG_MOSAIC.affine_max_rotation, SG_MOSAIC.affine_scale, SG_MOSAIC.mosaic_prob) == (5.0, (0.75, 1.5), 0.5)
    heavy = SG_MOSAIC_HEAVY
    assert (heavy.reverse_channels_prob, heavy.rotate90_prob, heavy.hsv_gains) == (0.5, 0.5, (25.0, 25.0, 25.0))
    assert (heavy.affine_max_rotation, heavy.affine_scale, heavy.brightness_contrast_prob) == (7.0, (0.6, 1.75), 0.75)
    with pytest.raises(ValidationError, match="brightness"):
        PoseAugmentation(brightness=(1.2, 0.8))
    with pytest.raises(ValidationError, match="extra"):
        PoseAugmentation(mixup_prob=0.5)
    with pytest.raises(ValidationError):
        PoseAugmentation(flip_prob=1.5)
