"""OKS AP/AR: hand-worked cases, and agreement with pycocotools' COCOeval on a fixture with every special case."""

from __future__ import annotations

import contextlib
import io
import math

import numpy as np
import pytest

from curricurun.setups.yolo_nas_pose.keypoint_sets import COCO_PERSON
from curricurun.setups.yolo_nas_pose.oks import evaluate_image, object_keypoint_similarity, summarize

SIGMAS = np.array(COCO_PERSON.oks_sigmas)
STAT_NAMES = ["AP", "AP50", "AP75", "AP_medium", "AP_large", "AR", "AR50", "AR75", "AR_medium", "AR_large"]


def test_oks_of_one_labelled_keypoint_by_hand():
    # σ = 0.1 → (2σ)² = 0.04; area 100; distance² 3² + 4²... use (2, 0): d² = 4 → e = 4 / 0.04 / 100 / 2 = 0.5
    gt = np.array([[[10.0, 10.0, 2.0], [0.0, 0.0, 0.0]]])
    pred = np.array([[[12.0, 10.0], [50.0, 50.0]]])  # the unlabelled second keypoint does not count
    oks = object_keypoint_similarity(pred, gt, np.array([[5.0, 5.0, 10.0, 10.0]]), np.array([100.0]), [0.1, 0.1])
    assert oks.item() == pytest.approx(math.exp(-0.5))


def test_oks_without_labelled_keypoints_measures_distance_to_the_enlarged_box():
    # Box x, y, w, h = 10, 10, 4, 4 → enlarged to x ∈ [6, 18], y ∈ [6, 18]. Keypoint (20, 12): dx = 2, dy = 0;
    # keypoint (12, 3): dx = 0, dy = 3. σ = 0.5 → (2σ)² = 1; area 2 → e = 4/1/2/2 = 1 and 9/1/2/2 = 2.25.
    gt = np.zeros((1, 2, 3))
    pred = np.array([[[20.0, 12.0], [12.0, 3.0]]])
    oks = object_keypoint_similarity(pred, gt, np.array([[10.0, 10.0, 4.0, 4.0]]), np.array([2.0]), [0.5, 0.5])
    assert oks.item() == pytest.approx((math.exp(-1.0) + math.exp(-2.25)) / 2)


def test_average_precision_of_hit_miss_hit_by_hand():
    # Two large people found exactly, with a false positive ranked between them, at every OKS threshold:
    # TP, FP, TP → recall 0.5, 0.5, 1; precision 1, 0.5, 0.667 → envelope 1, 0.667, 0.667. Recall points
    # 0.00..0.50 (51 of them) read precision 1, points 0.51..1.00 (50) read 2/3: AP = (51 + 50·2/3)/101.
    person = np.stack([np.linspace(100, 200, 17), np.linspace(100, 300, 17), np.full(17, 2.0)], axis=-1)
    other = person + np.array([300.0, 0.0, 0.0])
    far_away = person + np.array([0.0, 1000.0, 0.0])
    record = evaluate_image(
        np.stack([person, far_away, other])[..., :2],
        np.array([0.9, 0.8, 0.7]),
        np.stack([person, other]),
        np.array([[100.0, 100.0, 100.0, 200.0], [400.0, 100.0, 100.0, 200.0]]),
        np.array([20000.0, 20000.0]),
        np.array([False, False]),
        SIGMAS,
    )
    stats = summarize([record])
    assert stats["AP"] == pytest.approx((51 + 50 * 2 / 3) / 101)
    assert stats["AR"] == 1.0 and stats["AR_large"] == 1.0
    assert stats["AP_medium"] == -1.0  # no ground truth in 32²..96²: undefined, as in COCO


def _fixture(seed: int = 0):
    """Images covering COCO's special cases: crowd, unlabelled and partly labelled people, all three area
    ranges, more than 20 predictions on one image, score ties across images, a prediction-only image and a
    ground-truth-only image, small unmatched predictions (ignored outside an area range)."""
    rng = np.random.default_rng(seed)
    images = []
    for image_id in range(1, 9):
        num_gt = [3, 2, 0, 4, 1, 5, 2, 3][image_id - 1]
        people = []
        for _ in range(num_gt):
            size = rng.choice([20.0, 60.0, 150.0])
            corner = rng.uniform(0, 400, size=2)
            xy = corner + rng.uniform(0, size, size=(17, 2))
            visible = rng.choice([0.0, 1.0, 2.0], size=17, p=[0.3, 0.2, 0.5])
            if rng.random() < 0.15:
                visible[:] = 0.0
            keypoints = np.concatenate([xy, visible[:, None]], axis=-1)
            keypoints[visible == 0, :2] = 0.0
            people.append((keypoints, [*corner, size, size], size * size * rng.uniform(0.4, 0.9), rng.random() < 0.1))
        predictions = []
        num_pred = 25 if image_id == 4 else (0 if image_id == 7 else int(rng.integers(1, 8)))
        for p in range(num_pred):
            if people and rng.random() < 0.7:
                keypoints, box, area, _ = people[int(rng.integers(len(people)))]
                noise = rng.normal(0, rng.choice([1.0, 4.0, 12.0]), size=(17, 2))
                xy = np.where(keypoints[:, 2:] > 0, keypoints[:, :2], np.array(box[:2]) + box[2] / 2) + noise
            else:
                xy = rng.uniform(0, 500, size=2) + rng.uniform(0, rng.choice([5.0, 200.0]), size=(17, 2))
            score = 0.5 if p == 0 else round(float(rng.random()), 2)  # ties: 0.5 on every image, rounded scores
            predictions.append((np.concatenate([xy, rng.random((17, 1))], axis=-1), score))
        images.append((image_id, people, predictions))
    return images


def _pycocotools_stats(images) -> list[float]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    annotations, results = [], []
    for image_id, people, predictions in images:
        for keypoints, box, area, crowd in people:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": 1,
                    "keypoints": keypoints.reshape(-1).tolist(),
                    "num_keypoints": int((keypoints[:, 2] > 0).sum()),
                    "bbox": list(box),
                    "area": area,
                    "iscrowd": int(crowd),
                }
            )
        for keypoints, score in predictions:
            results.append(
                {"image_id": image_id, "category_id": 1, "keypoints": keypoints.reshape(-1).tolist(), "score": score}
            )
    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO()
        truth.dataset = {
            "images": [{"id": image_id} for image_id, _, _ in images],
            "annotations": annotations,
            "categories": [{"id": 1, "name": "person"}],
        }
        truth.createIndex()
        evaluation = COCOeval(truth, truth.loadRes(results), iouType="keypoints")
        evaluation.params.kpt_oks_sigmas = SIGMAS
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return [float(value) for value in evaluation.stats]


def _our_stats(images) -> list[float]:
    records = []
    for _, people, predictions in images:
        records.append(
            evaluate_image(
                np.array([k for k, _ in predictions]).reshape(len(predictions), 17, 3),
                np.array([s for _, s in predictions]),
                np.array([k for k, *_ in people]).reshape(len(people), 17, 3),
                np.array([b for _, b, *_ in people]).reshape(len(people), 4),
                np.array([a for *_, a, _ in people]),
                np.array([c for *_, c in people], dtype=bool),
                SIGMAS,
            )
        )
    stats = summarize(records)
    return [stats[name] for name in STAT_NAMES]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_all_ten_keypoint_numbers_agree_with_pycocotools_to_1e_6(seed):
    pytest.importorskip("pycocotools")
    images = _fixture(seed)
    reference = _pycocotools_stats(images)
    assert 0.05 < reference[0] < 0.95  # the fixture is neither trivial nor hopeless
    assert _our_stats(images) == pytest.approx(reference, abs=1e-6)
