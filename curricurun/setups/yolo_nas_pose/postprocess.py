"""From raw head outputs to poses: confidence threshold, pre-NMS top-k, class-agnostic box NMS, keep the best.

Order and defaults of super-gradients' ``YoloNASPosePostPredictionCallback`` as the pose recipes configure it
for validation (``..._pose_train_params.yaml:48-58``): confidence ≥ 0.01, at most 300 boxes into NMS, NMS IoU 0.7,
at most 30 poses per image.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision.ops import nms

from curricurun.setups.yolo_nas_pose.head import PoseHeadOutput, decode_boxes, decode_keypoints


@dataclass(frozen=True)
class PosePredictions:
    """One image's poses, best first: ``poses [N, J, 3]`` (x, y, keypoint confidence), ``scores``, ``boxes``."""

    poses: torch.Tensor
    scores: torch.Tensor
    boxes: torch.Tensor


@torch.no_grad()
def postprocess(
    output: PoseHeadOutput,
    confidence: float = 0.01,
    nms_iou: float = 0.7,
    pre_nms: int = 300,
    max_poses: int = 30,
) -> list[PosePredictions]:
    """Decode and filter every image of the batch; coordinates stay in the network's input pixels."""
    boxes_all = decode_boxes(output)
    keypoints_all = decode_keypoints(output)
    scores_all = output.cls_logits.float().sigmoid()
    keypoint_conf_all = output.pose_logits.float().sigmoid()
    results = []
    for boxes, scores, keypoints, keypoint_conf in zip(
        boxes_all, scores_all, keypoints_all, keypoint_conf_all, strict=True
    ):
        keep = scores >= confidence
        boxes, scores, keypoints, keypoint_conf = boxes[keep], scores[keep], keypoints[keep], keypoint_conf[keep]
        if len(scores) > pre_nms:
            top = scores.topk(pre_nms).indices
            boxes, scores, keypoints, keypoint_conf = boxes[top], scores[top], keypoints[top], keypoint_conf[top]
        kept = nms(boxes, scores, nms_iou)[:max_poses]
        poses = torch.cat([keypoints[kept], keypoint_conf[kept, :, None]], dim=-1)
        results.append(PosePredictions(poses=poses, scores=scores[kept], boxes=boxes[kept]))
    return results
