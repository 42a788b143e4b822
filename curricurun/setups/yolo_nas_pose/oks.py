"""OKS average precision and recall with COCO's keypoint evaluation semantics, re-derived.

COCO (pycocotools ``cocoeval.py``, ``iouType='keypoints'``; the metric of SG's ``PoseEstimationMetrics``):

* OKS(d, g) = mean over g's labelled keypoints of exp(−dist² / (2·area_g·(2σ_k)²)); when g has no labelled
  keypoint, dist is the distance from each predicted keypoint to g's box enlarged by its size on every side,
  averaged over all keypoints.
* Per image, predictions are sorted by score (stable) and cut to ``max_detections`` = 20 before anything else.
* Ground truths are ignored when crowd, without labelled keypoints, or outside the area range (all, medium
  32²..96², large 96²..∞). Greedy matching per OKS threshold (0.50:0.05:0.95): each prediction, best score
  first, takes the unmatched, best-OKS ground truth at or above the threshold, preferring non-ignored ones;
  a prediction matched to an ignored one is ignored, and so is an unmatched one whose keypoint extent lies
  outside the area range.
* Over the data set: predictions of all images sorted by score, precision made non-increasing, read at 101
  recall points 0:0.01:1 (``searchsorted`` left, 0 beyond the last recall); AP is the mean over thresholds
  and recall points, AR the mean over thresholds of the final recall.

:func:`evaluate_image` reduces one image to a small :class:`ImageRecord`; :func:`summarize` turns the records of
a data set (in image order: it breaks score ties) into the 10 COCO keypoint numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

OKS_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)
AREA_RANGES = {"all": (0.0, 1e10), "medium": (32.0**2, 96.0**2), "large": (96.0**2, 1e10)}
MAX_DETECTIONS = 20


@dataclass(frozen=True)
class ImageRecord:
    """What one image contributes, per area range: its predictions' scores and match outcomes.

    ``matched[area]`` and ``ignored[area]`` are ``[T, D]`` bool over OKS thresholds and the image's (sorted,
    truncated) predictions; ``num_ground_truth[area]`` counts the non-ignored ground truths.
    """

    scores: np.ndarray
    matched: dict[str, np.ndarray]
    ignored: dict[str, np.ndarray]
    num_ground_truth: dict[str, int]


def object_keypoint_similarity(
    pred_keypoints: np.ndarray,
    gt_keypoints: np.ndarray,
    gt_boxes_xywh: np.ndarray,
    gt_areas: np.ndarray,
    sigmas: np.ndarray,
) -> np.ndarray:
    """OKS ``[D, G]`` of predictions ``[D, J, ≥2]`` against ground truths ``[G, J, 3]`` (COCO ``computeOks``)."""
    pred = np.asarray(pred_keypoints, dtype=np.float64)[:, None, :, :2]  # [D, 1, J, 2]
    gt = np.asarray(gt_keypoints, dtype=np.float64)[None]  # [1, G, J, 3]
    variances = (2 * np.asarray(sigmas, dtype=np.float64)) ** 2
    labelled = gt[..., 2] > 0  # [1, G, J]
    has_labels = labelled.any(axis=-1)  # [1, G]
    x, y, w, h = (np.asarray(gt_boxes_xywh, dtype=np.float64)[None, :, i, None] for i in range(4))
    outside_x = np.maximum(0, (x - w) - pred[..., 0]) + np.maximum(0, pred[..., 0] - (x + 2 * w))
    outside_y = np.maximum(0, (y - h) - pred[..., 1]) + np.maximum(0, pred[..., 1] - (y + 2 * h))
    dx = np.where(has_labels[..., None], pred[..., 0] - gt[..., 0], outside_x)
    dy = np.where(has_labels[..., None], pred[..., 1] - gt[..., 1], outside_y)
    areas = np.asarray(gt_areas, dtype=np.float64)[None, :, None]
    similarity = np.exp(-(dx**2 + dy**2) / variances / (areas + np.spacing(1)) / 2)  # [D, G, J]
    weights = np.where(has_labels[..., None], labelled, True)
    return (similarity * weights).sum(-1) / weights.sum(-1)


def evaluate_image(
    pred_keypoints: np.ndarray,
    pred_scores: np.ndarray,
    gt_keypoints: np.ndarray,
    gt_boxes_xywh: np.ndarray,
    gt_areas: np.ndarray,
    gt_crowd: np.ndarray,
    sigmas: np.ndarray,
) -> ImageRecord:
    """Match one image's predictions ``[D, J, ≥2]`` (+ scores ``[D]``) to its ground truths ``[G, J, 3]``."""
    order = np.argsort(-np.asarray(pred_scores, dtype=np.float64), kind="mergesort")[:MAX_DETECTIONS]
    pred = np.asarray(pred_keypoints, dtype=np.float64)[order]
    scores = np.asarray(pred_scores, dtype=np.float64)[order]
    gt = np.asarray(gt_keypoints, dtype=np.float64)
    areas = np.asarray(gt_areas, dtype=np.float64)
    crowd = np.asarray(gt_crowd, dtype=bool)
    oks = (
        object_keypoint_similarity(pred, gt, gt_boxes_xywh, areas, sigmas)
        if len(pred) and len(gt)
        else np.zeros((len(pred), len(gt)))
    )
    pred_extent = (pred[..., 0].max(-1) - pred[..., 0].min(-1)) * (pred[..., 1].max(-1) - pred[..., 1].min(-1))
    always_ignored = crowd | ~(gt[..., 2] > 0).any(-1)
    matched, ignored, counts = {}, {}, {}
    for name, (low, high) in AREA_RANGES.items():
        gt_ignored = always_ignored | (areas < low) | (areas > high)
        gt_order = np.argsort(gt_ignored, kind="mergesort")
        hit, hit_ignored = _greedy_match(oks[:, gt_order], gt_ignored[gt_order], crowd[gt_order])
        outside = (pred_extent < low) | (pred_extent > high)
        matched[name] = hit
        ignored[name] = hit_ignored | (~hit & outside[None])
        counts[name] = int((~gt_ignored).sum())
    return ImageRecord(scores, matched, ignored, counts)


def _greedy_match(oks: np.ndarray, gt_ignored: np.ndarray, crowd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """COCO's matching for every threshold; ground truths arrive non-ignored first. Returns ``[T, D]`` flags."""
    num_pred, num_gt = oks.shape
    matched = np.zeros((len(OKS_THRESHOLDS), num_pred), dtype=bool)
    ignored = np.zeros_like(matched)
    for t, threshold in enumerate(OKS_THRESHOLDS):
        taken = np.zeros(num_gt, dtype=bool)
        for d in range(num_pred):
            best, best_oks = -1, min(threshold, 1 - 1e-10)
            for g in range(num_gt):
                if taken[g] and not crowd[g]:
                    continue
                if best > -1 and not gt_ignored[best] and gt_ignored[g]:
                    break  # a real match beats any ignored ground truth further down the list
                if oks[d, g] < best_oks:
                    continue
                best, best_oks = g, oks[d, g]
            if best > -1:
                matched[t, d], ignored[t, d], taken[best] = True, gt_ignored[best], True
    return matched, ignored


def summarize(records: list[ImageRecord]) -> dict[str, float]:
    """COCO's keypoint summary: AP, AP50, AP75, AP_medium, AP_large, AR, AR50, AR75, AR_medium, AR_large.

    A number is −1 when no ground truth counts in its area range (COCO's convention).
    """
    precision, recall = {}, {}
    for name in AREA_RANGES:
        precision[name], recall[name] = _precision_recall(records, name)
    result = {}
    for prefix, table in (("AP", precision), ("AR", recall)):
        result[prefix] = _mean_valid(table["all"])
        result[f"{prefix}50"] = _mean_valid(table["all"][0])
        result[f"{prefix}75"] = _mean_valid(table["all"][5])
        result[f"{prefix}_medium"] = _mean_valid(table["medium"])
        result[f"{prefix}_large"] = _mean_valid(table["large"])
    return result


def _precision_recall(records: list[ImageRecord], area: str) -> tuple[np.ndarray, np.ndarray]:
    """``precision [T, 101]`` and ``recall [T]`` over the data set for one area range (−1 when undefined)."""
    thresholds = len(OKS_THRESHOLDS)
    num_gt = sum(r.num_ground_truth[area] for r in records)
    if num_gt == 0:
        return -np.ones((thresholds, len(RECALL_POINTS))), -np.ones(thresholds)
    scores = np.concatenate([r.scores for r in records]) if records else np.zeros(0)
    order = np.argsort(-scores, kind="mergesort")
    matched = np.concatenate([r.matched[area] for r in records], axis=1)[:, order]
    ignored = np.concatenate([r.ignored[area] for r in records], axis=1)[:, order]
    true_pos = np.cumsum(matched & ~ignored, axis=1).astype(np.float64)
    false_pos = np.cumsum(~matched & ~ignored, axis=1).astype(np.float64)
    precision = np.zeros((thresholds, len(RECALL_POINTS)))
    recall = np.zeros(thresholds)
    for t in range(thresholds):
        if not len(order):
            continue
        rc = true_pos[t] / num_gt
        pr = true_pos[t] / (true_pos[t] + false_pos[t] + np.spacing(1))
        recall[t] = rc[-1]
        pr = np.maximum.accumulate(pr[::-1])[::-1]  # the precision envelope: non-increasing in recall
        positions = np.searchsorted(rc, RECALL_POINTS, side="left")
        valid = positions < len(pr)
        precision[t, valid] = pr[positions[valid]]
    return precision, recall


def _mean_valid(values: np.ndarray) -> float:
    valid = values[values > -1]
    return float(valid.mean()) if valid.size else -1.0
