"""Recipes: YAML files with ``base:`` inheritance and ``--set`` overrides, validated into a :class:`Recipe`.

``load_recipe`` raises :class:`curricurun.errors.RecipeError` holding every problem found, one line each,
naming the file (or ``--set`` override) and the dotted field. This package imports no torch.
"""

from curricurun.recipe.loading import dump_yaml, load_recipe, recipe_from_dict
from curricurun.recipe.schema import ComponentSpec, Recipe

__all__ = ["ComponentSpec", "Recipe", "dump_yaml", "load_recipe", "recipe_from_dict"]
