"""What every recipe section shares: constrained number types, the strict ``Section`` base, the
"exactly one of" / "at most one of" rules whose messages name every field involved, and ``ComponentSpec``.

Constraints live on the fields so that :mod:`curricurun.recipe.problems` can phrase a bad value as
"expected a positive number" from the field alone.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
UnitFraction = Annotated[float, Field(ge=0, le=1)]
OpenUnitFraction = Annotated[float, Field(gt=0, lt=1)]
AdamBeta = Annotated[float, Field(ge=0, lt=1)]

class Section(BaseModel):
    """Base of every recipe section: unknown keys are errors, numbers are finite, numbers may stand for strings."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, coerce_numbers_to_str=True)


def set_fields(model: BaseModel, names: tuple[str, ...]) -> list[str]:
    return [name for name in names if getattr(model, name) is not None]


def aliases(model: type[BaseModel], names: list[str]) -> str:
    quoted = [f"'{model.model_fields[name].alias or name}'" for name in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def exactly_one(model: BaseModel, names: tuple[str, ...]) -> None:
    found = set_fields(model, names)
    if len(found) != 1:
        which = "none" if not found else aliases(type(model), found)
        raise ValueError(f"set exactly one of {aliases(type(model), list(names))}, found {which}")


def at_most_one(model: BaseModel, names: tuple[str, ...]) -> None:
    found = set_fields(model, names)
    if len(found) > 1:
        everything = aliases(type(model), list(names))
        raise ValueError(f"set at most one of {everything}, found {aliases(type(model), found)}")


def one_default_period(model: BaseModel) -> None:
    """``every_epochs`` defaults to 1.0; giving only ``every_steps`` switches to steps instead of clashing."""
    if model.every_steps is not None and "every_epochs" not in model.model_fields_set:
        model.every_epochs = None
    at_most_one(model, ("every_epochs", "every_steps"))


class ComponentSpec(BaseModel):
    """A registered component by name plus its parameters: ``{name: progressive_scales, pg: 0.7}``.

    The parameters are kept as given here (``params``); the loader validates them against the
    component's ``Params`` model and the recipe exposes the result (``Recipe.setup_params``).
    """

    model_config = ConfigDict(extra="allow")

    name: str

    @property
    def params(self) -> dict[str, Any]:
        """Every key but ``name``."""
        return dict(self.model_extra or {})
