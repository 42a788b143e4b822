"""Keypoint sets, flip with the flip map, longest-side resize, centre vs bottom-right padding, post-processing."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from curricurun.data.pose.keypoints import PoseSample, flip_horizontal, pad_to, resize_longest_side
from curricurun.setups.yolo_nas_pose.head import PoseHeadOutput
from curricurun.setups.yolo_nas_pose.keypoint_sets import COCO_PERSON, KeypointSet
from curricurun.setups.yolo_nas_pose.postprocess import postprocess


def _sample(height: int, width: int, keypoints: list[list[float]], box: list[float]) -> PoseSample:
    image = torch.arange(3 * height * width, dtype=torch.float32).reshape(3, height, width)
    points = torch.tensor([keypoints], dtype=torch.float32)
    return PoseSample(image, points, torch.tensor([box]), torch.tensor([100.0]), torch.tensor([False]))


def _coco_instance(**points: tuple[float, float]) -> list[list[float]]:
    """17 COCO keypoints, unlabelled except the named ones."""
    rows = [[0.0, 0.0, 0.0] for _ in range(17)]
    for name, (x, y) in points.items():
        rows[COCO_PERSON.names.index(name)] = [x, y, 2.0]
    return rows


def test_flip_swaps_left_and_right_keypoints_and_mirrors_pixel_indices():
    sample = _sample(8, 64, _coco_instance(nose=(15, 3), left_eye=(10, 5), right_eye=(20, 5)), [10, 2, 30, 8])
    flipped = flip_horizontal(sample, COCO_PERSON.flip_map)
    names = COCO_PERSON.names
    # The new left eye is the old right eye mirrored: x = W − 1 − 20 = 43; the new right eye: 63 − 10 = 53.
    assert flipped.keypoints[0, names.index("left_eye")].tolist() == [43.0, 5.0, 2.0]
    assert flipped.keypoints[0, names.index("right_eye")].tolist() == [53.0, 5.0, 2.0]
    assert flipped.keypoints[0, names.index("nose")].tolist() == [48.0, 3.0, 2.0]  # 63 − 15, stays the nose
    # Boxes are continuous: [10, 30] → [64 − 30, 64 − 10] = [34, 54].
    assert flipped.boxes.tolist() == [[34.0, 2.0, 54.0, 8.0]]
    assert torch.equal(flipped.image[:, :, 63 - 20], sample.image[:, :, 20])


def test_flipping_twice_restores_the_sample():
    sample = _sample(8, 64, _coco_instance(left_wrist=(3, 1), right_knee=(50, 7)), [1, 1, 60, 7])
    twice = flip_horizontal(flip_horizontal(sample, COCO_PERSON.flip_map), COCO_PERSON.flip_map)
    assert torch.equal(twice.keypoints, sample.keypoints)
    assert torch.equal(twice.boxes, sample.boxes)
    assert torch.equal(twice.image, sample.image)


def test_centre_padding_splits_the_border_and_shifts_keypoints_and_boxes():
    sample = _sample(41, 60, [[5.0, 7.0, 2.0]], [1.0, 2.0, 11.0, 12.0])
    padded = pad_to(sample, 64, 64, "center")
    # extra rows 64 − 41 = 23 → 11 on top, 12 below; extra columns 4 → 2 left, 2 right.
    assert padded.image.shape == (3, 64, 64)
    assert torch.equal(padded.image[:, 11:52, 2:62], sample.image)
    assert padded.image[:, :11].eq(127).all() and padded.image[:, 52:].eq(127).all()
    assert padded.image[:, :, :2].eq(127).all() and padded.image[:, :, 62:].eq(127).all()
    assert padded.keypoints[0, 0].tolist() == [7.0, 18.0, 2.0]
    assert padded.boxes.tolist() == [[3.0, 13.0, 13.0, 23.0]]


def test_bottom_right_padding_keeps_image_and_keypoints_in_place():
    sample = _sample(41, 60, [[5.0, 7.0, 2.0]], [1.0, 2.0, 11.0, 12.0])
    padded = pad_to(sample, 64, 64, "bottom_right")
    assert torch.equal(padded.image[:, :41, :60], sample.image)
    assert padded.image[:, 41:].eq(127).all() and padded.image[:, :, 60:].eq(127).all()
    assert torch.equal(padded.keypoints, sample.keypoints)
    assert torch.equal(padded.boxes, sample.boxes)


def test_unknown_padding_mode_is_rejected():
    with pytest.raises(ValueError, match="padding mode"):
        pad_to(_sample(4, 4, [[0.0, 0.0, 0.0]], [0, 0, 1, 1]), 8, 8, "top_left")


def test_longest_side_resize_scales_coordinates_boxes_and_areas():
    sample = _sample(100, 50, [[10.0, 20.0, 2.0]], [0.0, 10.0, 25.0, 50.0])
    resized = resize_longest_side(sample, 64)
    # scale = min(64/100, 64/50) = 0.64 → 64 × 32 pixels; (10, 20) → (6.4, 12.8); area 100 → 40.96.
    assert resized.image.shape == (3, 64, 32)
    assert resized.keypoints[0, 0].tolist() == pytest.approx([6.4, 12.8, 2.0])
    assert resized.boxes[0].tolist() == pytest.approx([0.0, 6.4, 16.0, 32.0])
    assert resized.areas.item() == pytest.approx(40.96)


def test_keypoint_sets_reject_flip_maps_that_do_not_undo_themselves():
    with pytest.raises(ValidationError, match="maps to 1 but not back"):
        KeypointSet(num_keypoints=3, flip_map=[1, 2, 0], oks_sigmas=[0.1] * 3)
    with pytest.raises(ValidationError, match="expected 3 entries"):
        KeypointSet(num_keypoints=3, flip_map=[0, 2, 1], oks_sigmas=[0.1] * 2)
    with pytest.raises(ValidationError, match="outside 0..2"):
        KeypointSet(num_keypoints=3, flip_map=[0, 2, 1], oks_sigmas=[0.1] * 3, skeleton=[(0, 3)])
    assert KeypointSet(num_keypoints=3, flip_map=[0, 2, 1], oks_sigmas=[0.1] * 3).flip_map == [0, 2, 1]


def _head_output(boxes_ltrb_bins: list[list[int]], points: list[list[float]], logits: list[float]) -> PoseHeadOutput:
    """Anchors of stride 1 whose box distributions are peaked at the given ltrb bins; 1 keypoint each."""
    count = len(logits)
    box_logits = torch.full((1, count, 4, 17), -1e4)
    for anchor, bins in enumerate(boxes_ltrb_bins):
        for side, bin_ in enumerate(bins):
            box_logits[0, anchor, side, bin_] = 0.0
    return PoseHeadOutput(
        torch.tensor([logits]),
        box_logits,
        torch.zeros(1, count, 1, 2),
        torch.zeros(1, count, 1),
        torch.tensor(points),
        torch.ones(count),
    )


def test_postprocess_thresholds_then_suppresses_overlaps_and_caps_the_count():
    # Anchor boxes (stride 1): A = [0,0,10,10] at (5,5); B = [1,0,11,10] overlaps A with IoU 90/110 = 0.82;
    # C = [20,20,30,30] apart; D = [40,40,50,50] below the confidence threshold (sigmoid(−6) = 0.0025).
    output = _head_output(
        [[5, 5, 5, 5], [5, 5, 5, 5], [5, 5, 5, 5], [5, 5, 5, 5]],
        [[5.0, 5.0], [6.0, 5.0], [25.0, 25.0], [45.0, 45.0]],
        [2.0, 3.0, 1.0, -6.0],
    )
    (result,) = postprocess(output)
    assert result.boxes.tolist() == [[1.0, 0.0, 11.0, 10.0], [20.0, 20.0, 30.0, 30.0]]  # B beats A, then C
    assert result.scores.tolist() == pytest.approx([torch.sigmoid(torch.tensor(3.0)).item(), 0.7310586])
    # keypoint = offset·1 + anchor − 0.5 with offset 0; confidence sigmoid(0) = 0.5
    assert result.poses[:, 0].tolist() == [[5.5, 4.5, 0.5], [24.5, 24.5, 0.5]]
    (capped,) = postprocess(output, max_poses=1)
    assert len(capped.scores) == 1
    (pre_capped,) = postprocess(output, pre_nms=1)  # only B enters NMS
    assert pre_capped.boxes.tolist() == [[1.0, 0.0, 11.0, 10.0]]
