"""VAR progressive training: truncate the token pyramid to its first scales, then grow it.

Every formula here is VAR's (FoundationVision/VAR ``train.py`` L270-302, ``trainer.py`` L39-52 and L86-160,
``utils/arg_util.py`` L263-270), with this notation: K scales with patch
numbers p_k, e_k = Σ_{j≤k} p_j² tokens up to scale k, L = e_{K−1}, g the global micro-iteration and I the
micro-iterations per epoch. VAR keeps counters (``prog_it``, ``last_prog_si``, ``first_prog``) in its trainer;
here they are recomputed from g alone, so the curriculum stays a pure function of progress.
"""

from __future__ import annotations

from bisect import bisect_left
from itertools import pairwise
from typing import ClassVar

from pydantic import Field, model_validator

from curricurun.curriculum.base import Curriculum, CurriculumParams, Progress, StageState
from curricurun.recipe.fields import Float, Int

VAR_256 = (1, 2, 3, 4, 5, 6, 8, 10, 13, 16)  # utils/arg_util.py L244-249
MIN_NEWEST_WEIGHT = 0.01  # prog_wp is clamped to [0.01, 1] (trainer.py L92-99)


def token_counts(patch_nums: tuple[int, ...] | list[int]) -> tuple[int, ...]:
    """Cumulative token counts e_k = Σ_{j≤k} p_j² (VAR's ``begin_ends``; e.g. 1, 5, 14, 30, … for 1,2,3,4,…)."""
    counts, total = [], 0
    for p in patch_nums:
        total += p * p
        counts.append(total)
    return tuple(counts)


def var_stage(g: float, num_scales: int, pg: float, pg0: int, wp_it: float, max_it: float) -> int:
    """VAR's ``prog_si`` at micro-iteration ``g`` (``train.py`` L286-294), with K−1 meaning the full pyramid.

    Frozen at ``pg0`` while g ≤ wp_it (the LR warm-up), K−1 from g ≥ pg·max_it, and in between
    ``pg0 + round(progress·(K−1−pg0))`` with progress = (g − wp_it)/(pg·max_it − wp_it) and Python's ``round``
    (halves to even). VAR's −1 for "not progressive" is returned as K−1 here.
    """
    last = num_scales - 1
    if pg <= 0:
        return last
    if g <= wp_it:
        return pg0
    if g >= pg * max_it:
        return last
    progress = min(max((g - wp_it) / (pg * max_it - wp_it), 0.0), 1.0)
    return pg0 + round(progress * (last - pg0))


class ProgressiveScalesParams(CurriculumParams):
    patch_nums: list[Int] = Field(
        default_factory=lambda: list(VAR_256), description="Side of each token map, small to large (VAR's --pn)."
    )
    pg: Float = Field(0.0, ge=0, le=1, description="Fraction of training that is progressive; 0 turns it off.")
    pg0: Int = Field(4, ge=0, description="Index of the largest token map trained at the start (VAR default 4).")
    pgwp: Float | None = Field(
        None, gt=0, description="Epochs over which a new scale's loss weight ramps 0.01→1; default epochs/300."
    )
    wp: Float | None = Field(
        None,
        ge=0,
        description="Epochs the first stage is frozen; default: the run's LR warm-up "
        "(VAR freezes exactly through its warm-up, whose default is epochs/50 - set that on the LR schedule).",
    )

    @model_validator(mode="after")
    def _check_scales(self) -> ProgressiveScalesParams:
        if not self.patch_nums or any(p <= 0 for p in self.patch_nums):
            raise ValueError("patch_nums must list positive token-map sides")
        if any(b <= a for a, b in pairwise(self.patch_nums)):
            raise ValueError("patch_nums must increase from the first scale to the last")
        if self.pg0 >= len(self.patch_nums):
            raise ValueError(f"pg0 {self.pg0} is not a scale index: patch_nums has {len(self.patch_nums)} scales")
        return self


class ProgressiveScales(Curriculum):
    """VAR progressive training over token scales (Tian et al., "Visual Autoregressive Modeling", 2024).

    What: the next-scale prediction transformer first trains on the token maps up to ``pg0`` (a prefix of the
    sequence), frozen there through the LR warm-up; the largest scale trained then advances linearly until all
    K scales are trained from ``pg``·(run length) on. A newly added scale's loss weight ramps 0.01→1 over
    ``pgwp`` epochs (not for the first stage, nor the final one). Per-token weights stay 1/L of the *full*
    sequence and are never renormalised, so early stages report a smaller loss. Images are not resized: only the
    token pyramid is truncated. Sets ``scale_index``, ``newest_scale_weight`` and ``scale_loss_weights``
    (multipliers on top of 1/L; see :func:`scale_token_weights`).

    When it helps: VAR training at 512 px, where most compute goes into the last scales; the maintainer calls it
    an efficiency measure ("full-scale training would yield better results but is much slower", VAR#37).

    Parameters: ``patch_nums``, ``pg``, ``pg0``, ``pgwp`` (epochs, default epochs/300), ``wp`` (epochs,
    default the run's LR warm-up). All counting is in micro-iterations (``progress.micro_step``), as VAR's g_it;
    to match VAR inside an accumulation window, evaluate once per micro-batch with that micro-step.
    ``pg > 0`` makes VAR force the LR shape ``lin<pg>``: see :attr:`preferred_lr_shape`.

    Source: VAR ``utils/arg_util.py`` L79-81, L263-270; ``train.py`` L282-301; ``trainer.py`` L37-52, L91-120
    (FoundationVision/VAR at 78b9539).
    """

    name: ClassVar[str] = "progressive_scales"
    summary: ClassVar[str] = "VAR progressive training: grow the token pyramid scale by scale (pg, pg0, pgwp)"
    Params: ClassVar[type[CurriculumParams]] = ProgressiveScalesParams

    def __init__(self, params: ProgressiveScalesParams) -> None:
        self.params = params
        self.patch_nums = tuple(params.patch_nums)
        self.tokens = token_counts(self.patch_nums)
        self._stage_starts: dict[tuple[int, float, float], int] = {}

    @property
    def preferred_lr_shape(self) -> str | None:
        """VAR replaces ``--sche`` by ``f"lin{pg:g}"`` when pg > 0 (``utils/arg_util.py`` L269-270)."""
        return f"lin{self.params.pg:g}" if self.params.pg > 0 else None

    def _counters(self, progress: Progress) -> tuple[float, float, float]:
        """(wp_it, max_it, pgwp_it) in micro-iterations for this run."""
        per_epoch = progress.micro_steps_per_epoch
        max_it = float(progress.total_micro_steps)
        wp = self.params.wp
        wp_it = wp * per_epoch if wp is not None else float(progress.warmup_steps * progress.accumulation)
        pgwp = self.params.pgwp
        pgwp_it = pgwp * per_epoch if pgwp is not None else max_it / 300  # (ep/300)·I = max_it/300
        return wp_it, max_it, pgwp_it

    def state_at(self, progress: Progress) -> StageState:
        p = self.params
        last = len(self.patch_nums) - 1
        wp_it, max_it, pgwp_it = self._counters(progress)
        g = progress.micro_step

        def stage(it: int) -> int:
            return var_stage(it, len(self.patch_nums), p.pg, p.pg0, wp_it, max_it)

        current = stage(g)
        newest = 1.0
        # VAR ramps only stages after the first (first_prog) and before the last (prog_si K−1 is mapped to −1
        # before the weights are applied): trainer.py L92-99.
        if p.pg > 0 and p.pg0 < current < last:
            # prog_it counts the micro-iterations since the stage began, this one included. The stage is
            # non-decreasing in g, so its first micro-iteration is found by bisection on the stage formula.
            # The start depends only on (stage, wp_it, max_it): memoised, since a plan asks at every step.
            key = (current, wp_it, max_it)
            if key not in self._stage_starts:
                self._stage_starts[key] = bisect_left(range(g + 1), current, key=stage)
            start = self._stage_starts[key]
            newest = min(max((g - start + 1) / pgwp_it, MIN_NEWEST_WEIGHT), 1.0)
        weights = (1.0,) * current + (newest,)
        return StageState(scale_index=current, newest_scale_weight=newest, scale_loss_weights=weights)

    def relative_cost(self, state: StageState) -> float:
        """Tokens trained over the full sequence, e_p / L: the transformer's sequence is cut to e_p tokens."""
        index = len(self.patch_nums) - 1 if state.scale_index is None else state.scale_index
        return self.tokens[index] / self.tokens[-1]


def scale_token_weights(patch_nums: tuple[int, ...] | list[int], state: StageState) -> tuple[float, ...]:
    """Loss weight of each token of each trained scale: ``multiplier_k / L`` with L the full token count.

    VAR's loss is mean over the batch of Σ_t w_t·ℓ_t with w_t = 1/L for the full L, never renormalised to the
    e_p tokens trained, and the newest scale's tokens multiplied by ``prog_wp`` (``trainer.py`` L41, L112-120;
    ``trainer.py`` L92-99 for the ramp). Repeat entry k ``patch_nums[k]²`` times to get the per-token weights.
    """
    full = token_counts(patch_nums)[-1]
    multipliers = state.scale_loss_weights or (1.0,) * len(patch_nums)
    return tuple(m / full for m in multipliers)
