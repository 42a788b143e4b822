"""The one rule for a setup's data-dependent sizes: the recipe's value, else the loaded data's.

Image channels, class count and image side are known from the data when it is loaded, so the same setup
fits MNIST (1 channel, 10 classes) and ImageNet (3, 1000) without editing the recipe; a command that does not
load the data (``validate``, ``inspect-model`` with a checkpoint) needs them in the recipe.
"""

from __future__ import annotations

from pydantic import BaseModel

from curricurun.errors import UserError
from curricurun.setups.base import DataShape

_DATA_FIELD = {"in_channels": "channels", "num_classes": "num_classes", "image_size": "image_size"}


def from_recipe_or_data(params: BaseModel, data: DataShape | None, *names: str) -> tuple[int, ...]:
    """The setup parameters ``names`` (``in_channels``, ``num_classes``, ``image_size``), each as the recipe
    gives it, else the data's (:class:`~curricurun.setups.base.DataShape`).

    Raises:
        UserError: naming every one that is neither in the recipe nor known from loaded data.
    """
    values = tuple(getattr(params, name) or (getattr(data, _DATA_FIELD[name]) if data else None) for name in names)
    missing = [name for name, value in zip(names, values, strict=True) if value is None]
    if len(missing) == 1:
        raise UserError(f"setup.{missing[0]}: needed when the data is not loaded")
    if missing:
        listed = ", ".join(missing[:-1]) + " and " + missing[-1]
        raise UserError(f"setup: {listed} are needed when the data is not loaded")
    return values
