"""Keypoint sets: how many keypoints, which swap under a horizontal flip, their OKS sigmas and the skeleton.

This is the documented format for custom keypoint data (a recipe's ``setup.keypoints`` section, or the
``coco_person`` and ``ibug_face_68`` presets). The COCO values are super-gradients'
``coco_pose_common_dataset_params.yaml``, whose sigmas come from pycocotools' ``cocoeval.py``
(SG 3.7.1 ``recipes/dataset_params/coco_pose_common_dataset_params.yaml``).
"""

from __future__ import annotations

from pydantic import Field, model_validator

from curricurun.recipe.fields import Float, Int, Params


class KeypointSet(Params):
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

    num_keypoints: Int = Field(gt=0)
    flip_map: list[Int]
    oks_sigmas: list[Float]
    skeleton: list[tuple[Int, Int]] = Field(default_factory=list)
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


def _chain(first: int, last: int, closed: bool = False) -> list[tuple[int, int]]:
    edges = [(i, i + 1) for i in range(first, last)]
    return edges + [(last, first)] if closed else edges


def _ibug_flip_map() -> list[int]:
    """The iBUG 68-point left-right pairs (0-based), from the layout drawn on the 300-W annotation page.

    Jaw 0-16 runs from the image-left ear to the image-right ear (chin 8); brows 17-21 and 22-26 both run
    left to right (outer 17 ↔ outer 26); the bridge 27-30 and the nostril centre 33 lie on the centre line;
    each eye starts at its left corner and goes over the upper lid, then back along the lower lid (36 and 45 are
    the outer corners, 39 and 42 the inner ones); the outer lips go clockwise from the left corner 48 (top 51,
    right corner 54, bottom 57) and the inner lips from 60 (top 62, right corner 64, bottom 66).
    """
    pairs = [(i, 16 - i) for i in range(8)]
    pairs += [(17 + i, 26 - i) for i in range(5)]
    pairs += [(31, 35), (32, 34)]
    pairs += [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]
    pairs += [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58)]
    pairs += [(60, 64), (61, 63), (65, 67)]
    flip_map = list(range(68))
    for a, b in pairs:
        flip_map[a], flip_map[b] = b, a
    return flip_map


_IBUG_REGIONS = (("jaw", 17), ("brow", 10), ("nose", 9), ("eye", 12), ("mouth", 20))

# σ = 0.1 everywhere: iBUG publishes no per-landmark spread, and 0.1 is what super-gradients' pose metric uses for a
# keypoint set without sigmas (SG's ``pose_estimation_metrics.py:107-115``). COCO's tight 0.025
# (its eyes) was tried first and does not train: an untrained model's landmarks sit ~1/3 of a face away, OKS is
# then about e^-22, and both the OKS-weighted task-aligned assignment (every assigned score ~0: no positives) and
# the OKS regression loss 1 - exp(-e) (no gradient) vanish. With 0.1 an error of 2σ = 20 % of the face size still
# scores exp(-1/2) ≈ 0.61, so training starts, and AP at OKS 0.95 asks for errors under 6 % of the face size.
IBUG_FACE_68 = KeypointSet(
    num_keypoints=68,
    flip_map=_ibug_flip_map(),
    oks_sigmas=[0.1] * 68,
    skeleton=_chain(0, 16)
    + _chain(17, 21)
    + _chain(22, 26)
    + _chain(27, 30)
    + [(30, 33)]
    + _chain(31, 35)
    + _chain(36, 41, closed=True)
    + _chain(42, 47, closed=True)
    + _chain(48, 59, closed=True)
    + _chain(60, 67, closed=True),
    names=[f"{region}_{i}" for region, count in _IBUG_REGIONS for i in range(count)],
)


PRESETS: dict[str, KeypointSet] = {"coco_person": COCO_PERSON, "ibug_face_68": IBUG_FACE_68}
