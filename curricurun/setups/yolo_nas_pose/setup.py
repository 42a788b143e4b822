"""The ``yolo_nas_pose`` setup: super-gradients' YOLO-NAS-Pose N/S/M/L, its loss, its data pipeline and COCO's AP.

The setup serves its own samples (setups/base.py ``SetupWithOwnData``): COCO-format keypoint files
(:mod:`curricurun.data.pose.coco`), SG's train pipeline (flip with the keypoint flip map, brightness/contrast, HSV,
random affine, mosaic, longest side, CENTRE padding; :mod:`curricurun.data.pose.augment`) and its validation pipeline
(longest side, BOTTOM-RIGHT padding). Batches carry ``image [B, 3, S, S]`` on SG's 0..1 scale
(``KeypointsImageStandardize(max_value=255)``), ``index [B]`` and the padded ground truth of :class:`PoseTargets` under
``pose_boxes [B, M, 4]`` (XYXY px), ``pose_keypoints [B, M, J, 3]``, ``pose_crowd [B, M]``, ``pose_valid [B, M]`` and
``pose_areas [B, M]`` (px², the OKS scale), all in the network's input pixels.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import torch
from pydantic import BaseModel, Field

from curricurun.curriculum.base import StageState
from curricurun.data.pose.augment import PRESETS as AUGMENTATION_PRESETS
from curricurun.data.pose.augment import PoseAugmentation, eval_sample, train_sample
from curricurun.data.pose.coco import KeypointData, load_keypoint_split
from curricurun.data.pose.keypoints import PoseSample
from curricurun.data.setup_samples import refuse_classification_options
from curricurun.recipe.fields import Float, Int, Params
from curricurun.setups.base import DataShape
from curricurun.setups.yolo_nas_pose.keypoint_sets import PRESETS, KeypointSet
from curricurun.setups.yolo_nas_pose.loss import PoseLossWeights, pose_loss
from curricurun.setups.yolo_nas_pose.model import build_yolo_nas_pose
from curricurun.setups.yolo_nas_pose.oks import ImageRecord, evaluate_image, summarize
from curricurun.setups.yolo_nas_pose.postprocess import postprocess
from curricurun.setups.yolo_nas_pose.targets import PoseTargets, stack_targets

LOSS_NAMES = ("loss_cls", "loss_iou", "loss_dfl", "loss_pose_cls", "loss_pose_reg", "loss")


class YoloNasPoseParams(Params):
    """Recipe fields of the ``yolo_nas_pose`` setup (``setup:`` section, besides ``name``)."""

    size: Literal["n", "s", "m", "l"] = Field(description="YOLO-NAS-Pose variant (SG arch_params)")
    keypoints: Literal["coco_person", "ibug_face_68"] | KeypointSet = Field(
        default="coco_person", description="a preset name or a full keypoint set (num_keypoints, flip_map, ...)"
    )
    in_channels: Int = Field(default=3, gt=0)
    augmentation: Literal["sg_mosaic", "sg_mosaic_heavy", "none"] | PoseAugmentation = Field(
        default="sg_mosaic",
        description="train pipeline: SG's N/S preset, the M/L 'heavy' preset, none, or every knob spelled out",
    )
    train_crowd: Literal["mask_as_normal", "no_action"] = Field(
        default="mask_as_normal", description="SG crowd_annotations_action of the train split (val: no_action)"
    )
    loss: PoseLossWeights = Field(default_factory=PoseLossWeights)
    confidence: Float = Field(default=0.01, ge=0, le=1, description="pose score threshold before NMS")
    nms_iou: Float = Field(default=0.7, gt=0, le=1)
    pre_nms: Int = Field(default=300, gt=0, description="best-scoring boxes kept before NMS")
    max_poses: Int = Field(default=30, gt=0, description="poses kept per image after NMS")
    weights: str | None = Field(default=None, description="local .safetensors file to start from")

    @property
    def keypoint_set(self) -> KeypointSet:
        return PRESETS[self.keypoints] if isinstance(self.keypoints, str) else self.keypoints

    @property
    def pose_augmentation(self) -> PoseAugmentation:
        return AUGMENTATION_PRESETS[self.augmentation] if isinstance(self.augmentation, str) else self.augmentation

    @property
    def num_classes(self) -> int:
        """One detection class (a person, or whatever the keypoint set describes): SG's head is single-class."""
        return 1


class YoloNasPoseSetup:
    """Multi-person pose estimation with YOLO-NAS-Pose, trained with ``YoloNASPoseLoss`` semantics."""

    name: ClassVar[str] = "yolo_nas_pose"
    summary: ClassVar[str] = "YOLO-NAS-Pose N/S/M/L (super-gradients), task-aligned OKS loss, COCO OKS AP"
    Params: ClassVar[type[BaseModel]] = YoloNasPoseParams

    def __init__(self, params: YoloNasPoseParams, data: DataShape | None):
        self.params = params
        self.keypoints = params.keypoint_set
        self.channels = params.in_channels
        self._sigmas = torch.tensor(self.keypoints.oks_sigmas)
        self._augmentation = params.pose_augmentation

    @staticmethod
    def recipe_problems(recipe) -> list[tuple[tuple[str, ...], str]]:
        """Classification-only data fields (RandAugment, mixup, replay, IDX) would be ignored here: refuse them."""
        return refuse_classification_options(recipe, "yolo_nas_pose")

    # --- data (setups/base.py SetupWithOwnData) -------------------------------------------------------------

    def load_split(self, data, split: str, max_samples: int | None) -> KeypointData:
        """COCO-format keypoints; SG masks crowd instances as normal ones in training only (SG's crowd action)."""
        crowd = self.params.train_crowd if split == data.train_split else "no_action"
        return load_keypoint_split(
            data.source,
            data.path,
            split,
            self.keypoints.num_keypoints,
            crowd=crowd,
            revision=data.revision,
            max_samples=max_samples,
        )

    def training_sample(self, source: KeypointData, key, full_resolution: int) -> dict:
        """SG's train pipeline on sample ``key.index``, a pure function of the key's seed (any worker, any rank)."""
        generator = torch.Generator().manual_seed(key.seed)
        size = key.resolution or full_resolution
        sample = train_sample(
            source.sample, key.index, len(source), generator, self._augmentation, self.keypoints.flip_map, size
        )
        return {"pose": sample, "index": key.index}

    def evaluation_sample(self, source: KeypointData, index: int, resolution: int) -> dict:
        """SG's validation pipeline: longest side ``resolution``, bottom-right padding (coordinates unchanged)."""
        return {"pose": eval_sample(source.sample(index), resolution), "index": index}

    def collate(self, samples: list[dict]) -> dict[str, torch.Tensor]:
        """Images on SG's 0..1 scale and the instances padded to the batch's largest count."""
        poses: list[PoseSample] = [sample["pose"] for sample in samples]
        targets = stack_targets(poses, self.keypoints.num_keypoints)
        areas = torch.zeros(targets.valid.shape)
        for i, pose in enumerate(poses):
            areas[i, : len(pose.areas)] = pose.areas
        return {
            "image": torch.stack([pose.image for pose in poses]).float() / 255.0,
            "index": torch.tensor([sample["index"] for sample in samples], dtype=torch.long),
            "pose_boxes": targets.boxes,
            "pose_keypoints": targets.keypoints,
            "pose_crowd": targets.crowd,
            "pose_valid": targets.valid,
            "pose_areas": areas,
        }

    # --- model, loss, metrics -------------------------------------------------------------------------------

    def build_model(self) -> torch.nn.Module:
        """The variant with J keypoints; local safetensors weights when the recipe names them."""
        from curricurun.weights import load_safetensors_weights

        model = build_yolo_nas_pose(self.params.size, self.keypoints.num_keypoints, self.params.in_channels)
        if self.params.weights:
            load_safetensors_weights(model, Path(self.params.weights))
        return model

    def _losses(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        output = model(batch["image"])
        sigmas = self._sigmas.to(batch["image"].device)
        return pose_loss(output, targets_from_batch(batch), sigmas, self.params.loss)

    def training_loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor], stage: StageState) -> torch.Tensor:
        """The weighted sum of the five components (the curriculum stage changes nothing here)."""
        return self._losses(model, batch)["loss"]

    @torch.no_grad()
    def evaluation_sums(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Each loss component summed over batches, and the batch count (the losses are batch means)."""
        return _loss_sums(self._losses(model, batch), batch["image"].device)

    @torch.no_grad()
    def evaluation_step(
        self, model: torch.nn.Module, batch: dict[str, torch.Tensor]
    ) -> tuple[dict[str, torch.Tensor], list[ImageRecord]]:
        """One forward pass for both the validation losses (sums) and COCO's per-image match records."""
        output = model(batch["image"])
        sigmas = self._sigmas.to(batch["image"].device)
        losses = pose_loss(output, targets_from_batch(batch), sigmas, self.params.loss)
        return _loss_sums(losses, batch["image"].device), self._records(output, batch)

    @staticmethod
    def metrics_from_sums(sums: dict[str, torch.Tensor | float]) -> dict[str, float]:
        batches = max(float(sums["batches"]), 1.0)
        return {name: float(sums[name]) / batches for name in LOSS_NAMES}

    def _records(self, output, batch: dict[str, torch.Tensor]) -> list[ImageRecord]:
        p = self.params
        predictions = postprocess(output, p.confidence, p.nms_iou, p.pre_nms, p.max_poses)
        records = []
        for i, prediction in enumerate(predictions):
            valid = batch["pose_valid"][i].bool()
            boxes = batch["pose_boxes"][i][valid].double().cpu().numpy()
            records.append(
                evaluate_image(
                    prediction.poses.double().cpu().numpy(),
                    prediction.scores.double().cpu().numpy(),
                    batch["pose_keypoints"][i][valid].double().cpu().numpy(),
                    np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1),
                    batch["pose_areas"][i][valid].double().cpu().numpy(),
                    batch["pose_crowd"][i][valid].bool().cpu().numpy(),
                    self._sigmas.double().numpy(),
                )
            )
        return records

    @staticmethod
    def metrics_from_records(records: list[ImageRecord]) -> dict[str, float]:
        """AP, AP50, AP75, AP_medium, AP_large and the same for AR (COCO keypoint summary, max 20 poses)."""
        return summarize(records)


def _loss_sums(losses: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """The batch-mean loss components as sums, with the batch count that turns them back into means."""
    sums = {name: losses[name].detach().double() for name in LOSS_NAMES}
    sums["batches"] = torch.ones((), dtype=torch.float64, device=device)
    return sums


def targets_from_batch(batch: dict[str, torch.Tensor]) -> PoseTargets:
    """The padded ground truth of a batch (see the module docstring for the keys)."""
    return PoseTargets(
        batch["pose_boxes"].float(),
        batch["pose_keypoints"].float(),
        batch["pose_crowd"].bool(),
        batch["pose_valid"].bool(),
    )
