"""Curricula by name: the built-ins plus third-party ones from the ``curricurun.curricula`` entry-point group.

A user's own curriculum comes in as an installed distribution that declares, e.g. in its pyproject::

    [project.entry-points."curricurun.curricula"]
    my_curriculum = "my_package.module:MyCurriculum"

rather than as a dotted path in a recipe: a recipe someone sent you should not import arbitrary code
(DESIGN.md, "Layers"). The entry point's name is the registry key.
"""

from __future__ import annotations

import functools
import warnings
from importlib.metadata import entry_points
from typing import Any

from curricurun.curriculum.base import Curriculum, CurriculumParams, Progress, StageState, pixel_cost
from curricurun.curriculum.low_frequency_crop import LowFrequencyCrop
from curricurun.curriculum.progressive_resolution import ProgressiveResolution
from curricurun.curriculum.progressive_scales import ProgressiveScales
from curricurun.curriculum.randaugment_ramp import RandAugmentRamp
from curricurun.curriculum.stage_mixture import StageMixture
from curricurun.errors import UserError
from curricurun.naming import unknown_name

ENTRY_POINT_GROUP = "curricurun.curricula"
BUILT_IN = "built-in"
BUILTINS: tuple[type, ...] = (ProgressiveScales, ProgressiveResolution, LowFrequencyCrop, RandAugmentRamp, StageMixture)


def _is_curriculum_class(obj: Any) -> bool:
    """The one check of a plug-in: a :class:`Curriculum` subclass with a summary line and a Params model."""
    return (
        isinstance(obj, type)
        and issubclass(obj, Curriculum)
        and isinstance(getattr(obj, "summary", None), str)  # declared on the base, set by each curriculum
        and isinstance(getattr(obj, "Params", None), type)
        and issubclass(obj.Params, CurriculumParams)
    )


@functools.cache
def _discover() -> dict[str, tuple[type, str]]:
    """name → (class, source), built-ins first; a broken or clashing plugin is skipped with a warning."""
    found: dict[str, tuple[type, str]] = {cls.name: (cls, BUILT_IN) for cls in BUILTINS}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        source = entry.dist.name if entry.dist is not None else entry.value
        if entry.name in found:
            warnings.warn(
                f"curriculum entry point '{entry.name}' from '{source}' ignored: the name is already taken "
                f"by {found[entry.name][1]}",
                stacklevel=2,
            )
            continue
        try:
            cls = entry.load()
        except Exception as exc:  # a third-party import can fail in any way; report it and go on
            warnings.warn(f"curriculum entry point '{entry.name}' from '{source}' failed to load: {exc}", stacklevel=2)
            continue
        if not _is_curriculum_class(cls):
            warnings.warn(
                f"curriculum entry point '{entry.name}' from '{source}' ignored: {entry.value} is not a class "
                "subclassing curricurun.curriculum.Curriculum with Params (a CurriculumParams subclass) and summary",
                stacklevel=2,
            )
            continue
        found[entry.name] = (cls, source)
    return found


def clear_cache() -> None:
    """Forget discovered entry points, so distributions installed since are found on the next call."""
    _discover.cache_clear()


def available() -> dict[str, type]:
    """Every curriculum by registry name: the built-ins and the ``curricurun.curricula`` entry points."""
    return {name: cls for name, (cls, _) in _discover().items()}


def describe() -> list[tuple[str, str, str]]:
    """(name, one-line summary, source) per curriculum for the CLI listing; source is "built-in" or a distribution."""
    return [(name, cls.summary, source) for name, (cls, source) in _discover().items()]


def get(name: str) -> type:
    """The curriculum class registered as ``name``; a :class:`UserError` with the known names otherwise."""
    known = available()
    if name in known:
        return known[name]
    raise UserError(unknown_name("curriculum", name, known))


def build(specs: list[dict[str, Any]]) -> ComposedCurriculum:
    """Build and compose curricula from ``[{"name": ..., **params}, ...]``; params go through each class's Params.

    A pydantic ``ValidationError`` from bad params propagates: the recipe layer formats it with the field path.
    """
    members = []
    for spec in specs:
        params = dict(spec)
        name = params.pop("name", None)
        if not isinstance(name, str):
            raise UserError(f"a curriculum entry needs a 'name' (one of: {', '.join(sorted(available()))})")
        cls = get(name)
        members.append(cls(cls.Params(**params)))
    return ComposedCurriculum(members)


class ComposedCurriculum:
    """Several curricula evaluated together; each controls its own fields of the stage state.

    ET++ is ``low_frequency_crop`` + ``randaugment_ramp``: one sets the bandwidth, the other the magnitude.
    Two members that set the same field are an error (:meth:`StageState.merged_with`).
    """

    def __init__(self, members: list[Curriculum]) -> None:
        self.members = tuple(members)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(member.name for member in self.members)

    @property
    def preferred_lr_shape(self) -> str | None:
        """The first LR shape a member asks for (VAR's ``lin<pg>``), or None."""
        return next((m.preferred_lr_shape for m in self.members if m.preferred_lr_shape is not None), None)

    def check_batch_size(self, per_device_batch_size: int) -> None:
        """Every member's check of the per-device batch (Pyramid-Flow's stage columns)."""
        for member in self.members:
            member.check_batch_size(per_device_batch_size)

    def state_at(self, progress: Progress) -> StageState:
        if len(self.members) == 1:  # nothing to merge; a plan calls this at every step
            return self.members[0].state_at(progress)
        state = StageState()
        for member in self.members:
            try:
                state = state.merged_with(member.state_at(progress))
            except ValueError as exc:
                raise UserError(f"curriculum '{member.name}' clashes with an earlier one in the recipe: {exc}") from exc
        return state

    def sample_cost(self, state: StageState, full_resolution: int | None) -> float:
        """Cost of one sample at ``state`` relative to a full-size one: what the plan integrates.

        The pixel ratio of the resolution or bandwidth (:func:`curricurun.curriculum.base.pixel_cost`), times
        every member's own factor (:meth:`Curriculum.relative_cost`: VAR's token prefix, Pyramid-Flow's mix).
        """
        cost = pixel_cost(state, full_resolution)
        for member in self.members:
            cost *= member.relative_cost(state)
        return cost
