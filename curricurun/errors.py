"""The one exception type that means "the user gave us something wrong".

The CLI turns a :class:`UserError` into a single line on stderr and exit code 2, with no traceback
(``--debug`` shows it). Anything else is a bug in curricurun and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input (recipe, override, dataset, checkpoint), already phrased for them.

    Args:
        message: one line (or several, one problem each) naming the file or field, what was expected
            and what was found.
    """


class RecipeError(UserError):
    """One or more problems in a recipe; ``problems`` holds one formatted line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))
