"""Curricula: pure functions from training progress to the stage state of the next step.

Look curricula up by name (:func:`get`, :func:`available`, :func:`describe`) and compose the ones a recipe
names with :func:`build`. The contract they follow is in :mod:`curricurun.curriculum.base`.
"""

from curricurun.curriculum.base import Curriculum, CurriculumParams, Progress, StageState, pixel_cost
from curricurun.curriculum.registry import ComposedCurriculum, available, build, clear_cache, describe, get

__all__ = [
    "ComposedCurriculum",
    "Curriculum",
    "CurriculumParams",
    "Progress",
    "StageState",
    "available",
    "build",
    "clear_cache",
    "describe",
    "get",
    "pixel_cost",
]
