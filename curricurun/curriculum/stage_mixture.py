"""Pyramid-Flow's stage mixture: every batch holds all pyramid stages in fixed proportions, by position.

``train_pyramid_flow.py`` L222 (``sample_ratios``), the pipeline's L283-302 (batch layout) and issue #119 (uniform
mix in the original implementation, 25%/50%/25% in the released one).
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, model_validator

from curricurun.curriculum.base import Curriculum, CurriculumParams, Progress, StageState
from curricurun.errors import UserError
from curricurun.recipe.fields import Float, Int

PYRAMID_FLOW_SCALES = (0.25, 0.5, 1.0)  # latent side per stage, lowest first (``pipeline`` L554-570)


def stage_columns(ratios: list[int] | tuple[int, ...], batch_size: int) -> list[int]:
    """The stage of each position of a per-device batch: stage 0 is the lowest resolution.

    Pyramid-Flow puts sample i in column ``i % sum(ratios)``, and columns map to stages in order, each stage
    taking ``ratios[k]`` consecutive columns: [1, 2, 1] gives columns {0→0, 1→1, 2→1, 3→2}, so a batch of 8
    is [0, 1, 1, 2, 0, 1, 1, 2] (``pyramid_dit_for_video_gen_pipeline.py`` L283-302, L430-451). The reference asserts
    ``batch_size % sum(ratios) == 0`` (``train_pyramid_flow.py`` L223).
    """
    group = sum(ratios)
    if batch_size <= 0 or batch_size % group:
        raise UserError(
            f"per-device batch size {batch_size} is not a multiple of sum(stage ratios {list(ratios)}) = {group}: "
            f"Pyramid-Flow assigns stages by position in groups of {group}"
        )
    columns = [stage for stage, count in enumerate(ratios) for _ in range(count)]
    return columns * (batch_size // group)


def token_balanced_ratios(
    ratios: list[int] | tuple[int, ...], scales: list[float] | tuple[float, ...]
) -> tuple[int, ...]:
    """OUR EXTENSION, not in Pyramid-Flow: samples per stage scaled so each stage gets ``ratios`` of the *tokens*.

    A stage at side fraction s has s² of the full stage's tokens, so its count is multiplied by
    round((max s / s)²): [1, 2, 1] at scales (1/4, 1/2, 1) becomes [16, 8, 1] (token shares 1 : 2 : 1).
    The released code has no per-stage batch sizes; a maintainer never confirmed any (issue #119,
    the unanswered follow-up of 2025-04-09).
    """
    top = max(scales)
    return tuple(r * round((top / s) ** 2) for r, s in zip(ratios, scales, strict=True))


class StageMixtureParams(CurriculumParams):
    ratios: list[Int] = Field(
        default_factory=lambda: [1, 2, 1],
        description="Samples per stage in every group of sum(ratios) positions, lowest stage first: "
        "[1, 2, 1] (released code) or [1, 1, 1] (original implementation).",
    )
    extension_token_balanced: bool = Field(
        False,
        description="OUR EXTENSION, not in Pyramid-Flow: scale the per-stage sample counts so each stage gets "
        "its ratio of tokens instead of samples (uses stage_scales).",
    )
    stage_scales: list[Float] = Field(
        default_factory=lambda: list(PYRAMID_FLOW_SCALES),
        description="Latent side of each stage relative to the full one (only read by extension_token_balanced).",
    )

    @model_validator(mode="after")
    def _check_ratios(self) -> StageMixtureParams:
        if not self.ratios or any(r <= 0 for r in self.ratios):
            raise ValueError("ratios must list a positive sample count per stage")
        if self.extension_token_balanced:
            if len(self.stage_scales) != len(self.ratios):
                raise ValueError("stage_scales needs one entry per stage in ratios")
            if any(not 0 < s <= 1 for s in self.stage_scales):
                raise ValueError("stage_scales must be fractions in (0, 1]")
        return self


class StageMixture(Curriculum):
    """Pyramid-Flow per-batch stage mixture (Jin et al., "Pyramidal Flow Matching", 2024).

    What: pyramidal flow matching splits the noise-to-data path into stages at growing resolution. Every
    training batch trains all stages at once: sample i belongs to stage ``stage_columns(ratios, B)[i]``, each
    with its own timestep in its stage's window. Sets ``StageState.stage_ratios`` (constant over training).

    When it helps: training a pyramidal flow/diffusion model; the maintainers report that moving from a uniform
    mix to 25%/50%/25% "shows certain improvement" (issue #119).

    Parameters: ``ratios`` ([1, 2, 1] as released; [1, 1, 1] original); the per-device batch size must be a
    multiple of their sum. ``extension_token_balanced`` with ``stage_scales`` is OUR EXTENSION (not in the
    reference): it balances the mix by tokens (:func:`token_balanced_ratios`).

    Source: Pyramid-Flow ``train/train_pyramid_flow.py`` L222-247; ``pyramid_dit_for_video_gen_pipeline.py``
    L121, L283-302; issue #119.
    """

    name: ClassVar[str] = "stage_mixture"
    summary: ClassVar[str] = "Pyramid-Flow stage mixture: every batch mixes all stages by position (1:2:1)"
    Params: ClassVar[type[CurriculumParams]] = StageMixtureParams

    def __init__(self, params: StageMixtureParams) -> None:
        self.params = params
        if params.extension_token_balanced:
            self.ratios = token_balanced_ratios(params.ratios, params.stage_scales)
        else:
            self.ratios = tuple(params.ratios)

    def state_at(self, progress: Progress) -> StageState:
        return StageState(stage_ratios=self.ratios)

    def relative_cost(self, state: StageState) -> float:
        """Mean tokens per sample over the full stage's: Σ_k r_k·s_k² / Σ_k r_k.

        The baseline is the same model trained without the pyramid, every sample at the final stage (what
        Pyramid-Flow is compared against). [1, 2, 1] at sides (1/4, 1/2, 1): (1/16 + 2/4 + 1) / 4 = 0.390625.
        Token count, not FLOPs: attention grows faster than linearly, so the FLOP saving is larger still.
        """
        ratios = state.stage_ratios or self.ratios
        scales = self.params.stage_scales
        if len(scales) != len(ratios):
            return 1.0  # scales of a different pyramid depth are unknown: no claim of a saving
        return sum(r * s * s for r, s in zip(ratios, scales, strict=True)) / sum(ratios)

    def check_batch_size(self, per_device_batch_size: int) -> None:
        """Raise :class:`UserError` unless the batch splits into whole groups of ``sum(ratios)``."""
        stage_columns(self.ratios, per_device_batch_size)
