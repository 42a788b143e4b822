"""Keypoint sets: how many keypoints, which swap under a horizontal flip, their OKS sigmas and the skeleton.

This is the documented format for custom keypoint data (a recipe's ``setup.keypoints`` section, or the
``coco_person`` preset). The COCO values are super-gradients' ``coco_pose_common_dataset_params.yaml``, whose
sigmas come from pycocotools' ``cocoeval.py`` (research/yolo_nas_pose.md §1.3).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class KeypointSet(BaseModel):
    """A keypoint definition.

    Attributes:
        num_keypoints: J, the number of keypoints of one instance.
        flip_map: ``flip_map[i]`` is the keypoint that becomes keypoint ``i`` after a left-right flip (a left
            eye becomes a right eye); centre-line keypoints map to themselves. Must be a permutation that undoes
            itself (flipping twice is the identity).
        oks_sigmas: per-keypoint σ of OKS = mean over labelled keypoints of exp(−d²/(2·area·(2σ)²)); COCO
            measured them as the spread of human annotations; 0.1 is a neutral value where nothing is known.
        skeleton: pairs of keypoint indices drawn as limbs (pictures only).
        names: optional names, used in pictures and error messages.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    num_keypoints: int = Field(gt=0)
    flip_map: list[int]
    oks_sigmas: list[float]
    skeleton: list[tuple[int, int]] = Field(default_factory=list)
    names: list[str] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> KeypointSet:
        count = self.num_keypoints
        for field, values in (("flip_map", self.flip_map), ("oks_sigmas", self.oks_sigmas), ("names", self.names)):
            if values is not None and len(values) != count:
                raise ValueError(f"{field}: expected {count} entries (num_keypoints), got {len(values)}")
        if sorted(self.flip_map) != list(range(count)):
            raise ValueError(f"flip_map: expected a permutation of 0..{count - 1}, got {self.flip_map}")
        unpaired = [i for i, j in enumerate(self.flip_map) if self.flip_map[j] != i]
        if unpaired:
            raise ValueError(f"flip_map: keypoint {unpaired[0]} maps to {self.flip_map[unpaired[0]]} but not back")
        if any(sigma <= 0 for sigma in self.oks_sigmas):
            raise ValueError("oks_sigmas: every sigma must be positive")
        for a, b in self.skeleton:
            if not (0 <= a < count and 0 <= b < count):
                raise ValueError(f"skeleton: pair ({a}, {b}) is outside 0..{count - 1}")
        return self


COCO_PERSON = KeypointSet(
    num_keypoints=17,
    flip_map=[0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15],
    oks_sigmas=[
        0.026,
        0.025,
        0.025,
        0.035,
        0.035,
        0.079,
        0.079,
        0.072,
        0.072,
        0.062,
        0.062,
        0.107,
        0.107,
        0.087,
        0.087,
        0.089,
        0.089,
    ],  # fmt: skip
    skeleton=[
        (0, 1),
        (0, 2),
        (1, 2),
        (1, 3),
        (2, 4),
        (3, 5),
        (4, 6),
        (5, 6),
        (5, 7),
        (5, 11),
        (6, 8),
        (6, 12),
        (7, 9),
        (8, 10),
        (11, 12),
        (11, 13),
        (12, 14),
        (13, 15),
        (14, 16),
    ],  # fmt: skip
    names=[
        "nose",
        "left_eye",
        "right_eye",
        "left_ear",
        "right_ear",
        "left_shoulder",
        "right_shoulder",
        "left_elbow",
        "right_elbow",
        "left_wrist",
        "right_wrist",
        "left_hip",
        "right_hip",
        "left_knee",
        "right_knee",
        "left_ankle",
        "right_ankle",
    ],  # fmt: skip
)

PRESETS: dict[str, KeypointSet] = {"coco_person": COCO_PERSON}
