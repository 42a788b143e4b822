"""Progressive resizing: train at a small image size first, at the full size at the end.

Three published forms: Composer's
``ProgressiveResizing`` (a scale of the full size as a function of the elapsed fraction), FFCV's ImageNet
``get_resolution`` (a linear ramp in epochs rounded to 32 px) and an explicit list of (until, size) steps.
"""

from __future__ import annotations

import math
from itertools import pairwise
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from curricurun.curriculum.base import Curriculum, CurriculumParams, Progress, StageState
from curricurun.recipe.fields import Float, Int

COMPOSER_FIELDS = ("initial_scale", "delay_fraction", "finetune_fraction", "duration_unit", "size_increment")
FFCV_FIELDS = ("min_res", "max_res", "start_ramp", "end_ramp", "size_increment")
STEPS_FIELDS = ("steps", "until_unit")
DEFAULT_INCREMENT = {"composer": 4, "ffcv": 32, "steps": 1}  # Composer's size_increment; FFCV rounds to 32


def composer_size(
    fraction: float, full: int, initial_scale: float, delay_fraction: float, finetune_fraction: float, increment: int
) -> int:
    """Composer's size at elapsed fraction ``fraction`` of training.

    scale = initial while f < delay, then linear to 1 at f = 1 − finetune, then 1; the side is
    ``round(full·scale / increment)·increment`` with Python's ``round``
    (``composer/algorithms/progressive_resizing/progressive_resizing.py``, ``apply``,
    L212-244). Composer divides by ``1 − finetune − delay``; when that is 0 we jump to full size at ``delay``.
    """
    ramp = 1.0 - finetune_fraction - delay_fraction
    if fraction < delay_fraction:
        elapsed = 0.0
    elif ramp <= 0:
        elapsed = 1.0
    else:
        elapsed = min((fraction - delay_fraction) / ramp, 1.0)
    scale = initial_scale + (1.0 - initial_scale) * elapsed
    return round(full * scale / increment) * increment


def ffcv_resolution(epoch: int, min_res: int, max_res: int, start_ramp: float, end_ramp: float, step: int) -> int:
    """FFCV's ``get_resolution`` for the (integer) epoch being trained.

    ``min_res`` up to ``start_ramp``, ``max_res`` from ``end_ramp``, in between the linear interpolation rounded
    to the nearest multiple of ``step`` (32 in FFCV; NumPy rounding, halves to even) (ffcv-imagenet
    ``train_imagenet.py`` L173-185). FFCV sets the size once per epoch.
    """
    if epoch <= start_ramp:
        return min_res
    if epoch >= end_ramp:
        return max_res
    interpolated = (max_res - min_res) / (end_ramp - start_ramp) * (epoch - start_ramp) + min_res  # np.interp
    return round(interpolated / step) * step


def stepped_size(position: float, steps: list[tuple[float, int]], full: int) -> int:
    """Size of the first step whose ``until`` lies beyond ``position``; the full size after the last step."""
    for until, size in steps:
        if position < until:
            return size
    return full


class ProgressiveResolutionParams(CurriculumParams):
    mode: Literal["composer", "ffcv", "steps"] = Field(description="Which published form of the schedule.")
    full_resolution: Int = Field(gt=0, description="Side of the full-size training image in pixels.")
    size_increment: Int | None = Field(
        None, gt=0, description="Sizes are rounded to a multiple of this; default 4 (composer), 32 (ffcv)."
    )
    initial_scale: Float = Field(0.5, gt=0, le=1, description="composer: starting fraction of the full side.")
    delay_fraction: Float = Field(0.5, ge=0, le=1, description="composer: fraction trained at initial_scale.")
    finetune_fraction: Float = Field(0.2, ge=0, le=1, description="composer: final fraction at full size.")
    duration_unit: Literal["steps", "epochs"] = Field(
        "steps",
        description="composer: unit of max_duration. 'epochs' counts completed epochs only, as Composer does "
        "with max_duration in 'ep' (its ResNet-50 recipes).",
    )
    min_res: Int = Field(160, gt=0, description="ffcv: size up to start_ramp.")
    max_res: Int | None = Field(None, gt=0, description="ffcv: size from end_ramp; default full_resolution.")
    start_ramp: Float | None = Field(None, ge=0, description="ffcv: epoch where the ramp starts.")
    end_ramp: Float | None = Field(None, ge=0, description="ffcv: epoch where the ramp ends.")
    steps: list[tuple[Float, Int]] | None = Field(
        None, description="steps: [[until, size], ...]; size while progress < until, full size after the last."
    )
    until_unit: Literal["fraction", "epochs"] = Field(
        "fraction", description="steps: 'until' as a fraction of optimizer steps, or in epochs."
    )

    @model_validator(mode="after")
    def _check_mode(self) -> ProgressiveResolutionParams:
        own = {"composer": COMPOSER_FIELDS, "ffcv": FFCV_FIELDS, "steps": STEPS_FIELDS}[self.mode]
        # A field of another mode is an error only when it differs from its default: the resolved recipe
        # stored with a checkpoint lists every field, defaults included, and must load back.
        foreign = sorted(
            name
            for name in self.model_fields_set & {*COMPOSER_FIELDS, *FFCV_FIELDS, *STEPS_FIELDS}
            if name not in own and getattr(self, name) != type(self).model_fields[name].default
        )
        if foreign:
            raise ValueError(f"{', '.join(foreign)} do not apply to mode '{self.mode}'")
        if self.mode == "composer":
            if self.delay_fraction + self.finetune_fraction > 1:
                raise ValueError("delay_fraction + finetune_fraction must be at most 1")
            if round(self.full_resolution * self.initial_scale / self.increment) == 0:
                raise ValueError(
                    f"initial_scale {self.initial_scale} rounds to 0 px at size_increment {self.increment}"
                )
        if self.mode == "ffcv":
            if self.start_ramp is None or self.end_ramp is None:
                raise ValueError("mode 'ffcv' needs start_ramp and end_ramp (epochs)")
            if self.end_ramp <= self.start_ramp:
                raise ValueError("end_ramp must be after start_ramp")
            if self.min_res > (self.max_res or self.full_resolution):
                raise ValueError("min_res must be at most max_res")
        if self.mode == "steps":
            if not self.steps:
                raise ValueError("mode 'steps' needs steps: [[until, size], ...]")
            untils = [until for until, _ in self.steps]
            if any(b <= a for a, b in pairwise(untils)) or untils[0] <= 0:
                raise ValueError("step 'until' values must be positive and strictly increasing")
            if any(size <= 0 for _, size in self.steps):
                raise ValueError("step sizes must be positive")
        return self

    @property
    def increment(self) -> int:
        """``size_increment``, or the mode's own default (Composer 4, FFCV 32)."""
        return self.size_increment or DEFAULT_INCREMENT[self.mode]


class ProgressiveResolution(Curriculum):
    """Progressive resizing (Composer ``ProgressiveResizing``; FFCV ImageNet; fast.ai).

    What: the training image side grows from a small size to ``full_resolution``. Sets
    ``StageState.resolution``; the loader decodes and crops at that size (cheap on the CPU too, unlike
    Composer's on-device resize, composer#728).

    When it helps: ImageNet-style classifier training on a fixed budget: FFCV trains ResNet-50 at 160→192 px;
    Composer's recipes use initial_scale 0.5–0.6. It is itself a weak augmentation and may hurt fine-tuning
    close to the pre-training data (fastbook ch. 7, ``07_sizing_and_tta.ipynb``).

    Parameters: ``mode`` (``composer`` | ``ffcv`` | ``steps``), ``full_resolution``, ``size_increment``;
    composer: ``initial_scale``, ``delay_fraction``, ``finetune_fraction``, ``duration_unit``;
    ffcv: ``min_res``, ``max_res``, ``start_ramp``, ``end_ramp`` (epochs); steps: ``steps``, ``until_unit``.

    Source: Composer ``progressive_resizing.py`` L175-244 (defaults 0.5/0.5/0.2/4); ffcv-imagenet
    ``train_imagenet.py`` L173-185 and ``rn50_configs``.
    """

    name: ClassVar[str] = "progressive_resolution"
    summary: ClassVar[str] = "Progressive resizing (Composer, FFCV or explicit steps): small images first"
    Params: ClassVar[type[CurriculumParams]] = ProgressiveResolutionParams
    indexed_by: str = "steps"  # with the default params; each instance sets its own from its params

    def __init__(self, params: ProgressiveResolutionParams) -> None:
        self.params = params
        if params.mode == "composer":
            self.indexed_by = params.duration_unit
        elif params.mode == "ffcv":
            self.indexed_by = "epochs"
        else:
            self.indexed_by = "epochs" if params.until_unit == "epochs" else "steps"

    def size_at(self, progress: Progress) -> int:
        """The training image side at ``progress``."""
        p = self.params
        if p.mode == "composer":
            if p.duration_unit == "epochs":
                fraction = math.floor(progress.epoch) / (progress.total_steps / progress.steps_per_epoch)
            else:
                fraction = progress.step_fraction
            return composer_size(
                fraction, p.full_resolution, p.initial_scale, p.delay_fraction, p.finetune_fraction, p.increment
            )
        if p.mode == "ffcv":
            assert p.start_ramp is not None and p.end_ramp is not None  # checked by the params validator
            max_res = p.max_res or p.full_resolution
            return ffcv_resolution(
                math.floor(progress.epoch), p.min_res, max_res, p.start_ramp, p.end_ramp, p.increment
            )
        assert p.steps is not None  # checked by the params validator
        position = progress.epoch if p.until_unit == "epochs" else progress.step_fraction
        return stepped_size(position, p.steps, p.full_resolution)

    def state_at(self, progress: Progress) -> StageState:
        return StageState(resolution=self.size_at(progress))
