"""RandAugment magnitude ramp of EfficientTrain / EfficientTrain++: weak augmentation early, strong late.

Schedules from the ET++ launchers (``--aa rand-m{ET_index}``) and ICCV ``ET_training.py`` L64; the stages are
indexed exactly like the ``low_frequency_crop`` bandwidth stages, so the two curricula compose into ET / ET++.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from curricurun.curriculum.base import Curriculum, CurriculumParams, Progress, StageState
from curricurun.curriculum.low_frequency_crop import Axis, progress_fraction, stage_index
from curricurun.recipe.fields import Float

# Magnitude per equal stage (``_ET_pp_main_*.py`` L44-63; ICCV ``ET_training.py`` L64).
MAGNITUDE_TABLES: dict[str, tuple[float, ...]] = {
    "et++": (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),  # --aa rand-m{ET_index}, 10 stages of 10% compute
    "iccv": (1, 3, 5, 7, 9),  # --aa rand-m{2*idx+1}, ET_training.py L64, 5 epoch segments
}
SCHEDULE_AXIS: dict[str, Axis] = {"et++": "compute", "iccv": "epochs", "linear": "compute"}
MAX_MAGNITUDE = 10  # timm's magnitude scale: level m means m/10 of each op's strongest setting (_LEVEL_DENOM)


class RandAugmentRampParams(CurriculumParams):
    schedule: Literal["et++", "iccv", "linear"] = Field(
        "et++",
        description="'et++': m = 0..9, one step per 10%-compute stage; 'iccv': m = 1,3,5,7,9 per fifth of the "
        "epochs; 'linear': m = (t/T)·max_magnitude (the TPAMI text's formula).",
    )
    magnitudes: list[Float] | None = Field(
        None, description="Your own magnitude per equal stage (timm scale 0-10); replaces the schedule's table."
    )
    max_magnitude: Float = Field(9.0, ge=0, le=MAX_MAGNITUDE, description="m0 of the 'linear' schedule.")
    indexed_by: Literal["compute", "epochs", "steps"] | None = Field(
        None, description="Axis t/T of the stages or ramp; default: epochs for 'iccv', else compute."
    )

    @model_validator(mode="after")
    def _check_table(self) -> RandAugmentRampParams:
        if self.magnitudes is not None:
            if self.schedule == "linear":
                raise ValueError("magnitudes is a stage table; it cannot be combined with schedule 'linear'")
            if not self.magnitudes or any(not 0 <= m <= MAX_MAGNITUDE for m in self.magnitudes):
                raise ValueError(f"magnitudes must list at least one value, each in [0, {MAX_MAGNITUDE}]")
        return self


class RandAugmentRamp(Curriculum):
    """RandAugment magnitude ramp (EfficientTrain, ICCV'23; EfficientTrain++, TPAMI'24).

    What: the RandAugment magnitude m grows with training progress, so the model sees weak augmentation while
    it learns from low frequencies and strong augmentation once it trains at full size. Sets
    ``StageState.aug_magnitude`` (timm's 0-10 scale); the data side applies RandAugment at that magnitude
    (timm's own ``RandAugment``, built by :func:`curricurun.data.pipelines.randaugment.timm_rand_augment` in the
    ``imagenet`` and ``small_images`` pipelines; the op count is a pipeline setting, not a curriculum's).

    When it helps: together with ``low_frequency_crop`` (ET / ET++); on its own it is the "adapt regularisation
    to the training stage" idea that EfficientNetV2 also uses with progressive resizing (arXiv 2104.00298).

    Parameters: ``schedule`` (``et++`` | ``iccv`` | ``linear``), ``magnitudes`` (own table), ``max_magnitude``
    (m0 of ``linear``), ``indexed_by``.

    Source: ET++ launchers ``--aa rand-m{ET_index}-mstd0.5-inc1`` (``_ET_pp_main_*.py`` L44-63), ICCV
    ``ET_training.py`` L64, and the TPAMI formula m = (t/T)·m0 quoted in LeapLabTHU/EfficientTrain#10
    (maintainer: implemented by the launchers' ``--aa`` string).
    """

    name: ClassVar[str] = "randaugment_ramp"
    summary: ClassVar[str] = "EfficientTrain(++) RandAugment magnitude ramp: weak augmentation early, strong late"
    Params: ClassVar[type[CurriculumParams]] = RandAugmentRampParams
    indexed_by: str = "compute"  # with the default params; each instance sets its own from its params

    def __init__(self, params: RandAugmentRampParams) -> None:
        self.params = params
        self.indexed_by = params.indexed_by or SCHEDULE_AXIS[params.schedule]
        if params.magnitudes is not None:
            self.magnitudes: tuple[float, ...] | None = tuple(params.magnitudes)
        else:
            self.magnitudes = MAGNITUDE_TABLES.get(params.schedule)

    def state_at(self, progress: Progress) -> StageState:
        fraction = progress_fraction(progress, self.indexed_by)
        if self.magnitudes is None:
            magnitude = min(max(fraction, 0.0), 1.0) * self.params.max_magnitude
        else:
            magnitude = float(self.magnitudes[stage_index(fraction, len(self.magnitudes))])
        return StageState(aug_magnitude=magnitude)
