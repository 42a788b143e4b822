"""What every recipe section shares: constrained number types, the strict ``Section`` base, the
"exactly one of" / "at most one of" rules whose messages name every field involved, and ``ComponentSpec``.

Constraints live on the fields so that :mod:`curricurun.recipe.problems` can phrase a bad value as
"expected a positive number" from the field alone.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError


def _refuse_bool(kind: str):
    """Pydantic reads ``true`` as 1 for a number (``batch.per_device: true`` was a batch of one): refuse it.

    The error keeps pydantic's own type (``int_type`` / ``float_type``) so that the problem is phrased from the
    field's bounds like any other wrong type ("expected a positive integer, got true")."""

    def check(value: Any) -> Any:
        if isinstance(value, bool):
            raise PydanticCustomError(f"{kind}_type", f"Input should be a valid {kind}")
        return value

    return BeforeValidator(check)


NotBoolInt, NotBoolFloat = _refuse_bool("int"), _refuse_bool("float")
PositiveInt = Annotated[int, Field(gt=0), NotBoolInt]
NonNegativeInt = Annotated[int, Field(ge=0), NotBoolInt]
PositiveFloat = Annotated[float, Field(gt=0), NotBoolFloat]
NonNegativeFloat = Annotated[float, Field(ge=0), NotBoolFloat]
UnitFraction = Annotated[float, Field(ge=0, le=1), NotBoolFloat]
OpenUnitFraction = Annotated[float, Field(gt=0, lt=1), NotBoolFloat]
AdamBeta = Annotated[float, Field(ge=0, lt=1), NotBoolFloat]
MAX_SEED = 2**32 - 1
"""A seed goes to accelerate's set_seed, which seeds NumPy too: NumPy accepts 0 <= seed < 2**32 (torch more)."""


def _seed_in_range(seed: int) -> int:
    if seed > MAX_SEED:
        raise ValueError(f"expected at most {MAX_SEED} (NumPy's seed range, via set_seed), got {seed}")
    return seed


Seed = Annotated[int, Field(ge=0), NotBoolInt, AfterValidator(_seed_in_range)]
NonEmptyName = Annotated[str, Field(min_length=1)]
Int = Annotated[int, NotBoolInt]
Float = Annotated[float, NotBoolFloat]
"""Numbers of a setup's or curriculum's ``Params``: bounds go on ``Field(...)``, a YAML ``true`` is refused."""


class Params(BaseModel):
    """Base of every setup's and curriculum's ``Params``: unknown keys are errors, floats are finite (no .inf /
    .nan), and with :data:`Int` / :data:`Float` fields a bool is not a number."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


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
