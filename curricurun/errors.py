"""The one exception type that means "the user gave us something wrong".

The CLI turns a :class:`UserError` into a single line on stderr and exit code 2, with no traceback
(``--debug`` shows it). Anything else is a bug in curricurun and keeps its traceback.

Exit codes (``curricurun.cli.run`` reads them from ``exit_code``, the one place that maps them): 0 done,
2 user error, 3 run stopped on a non-finite loss, 130 / 143 interrupted by SIGINT (Ctrl-C) / SIGTERM
(128 + the signal number, as a shell reports a process killed by that signal).
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input (recipe, override, dataset, checkpoint), already phrased for them.

    Args:
        message: one line (or several, one problem each) naming the file or field, what was expected
            and what was found.
    """

    exit_code: int = 2


class RecipeError(UserError):
    """One or more problems in a recipe; ``problems`` holds one formatted line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class Interrupted(Exception):
    """The run was stopped by a signal after saving what a resume needs; exits ``128 + signum`` (130, 143).

    Not a :class:`UserError`: nothing was wrong with the input, and a script or scheduler must not read
    it as success either.
    """

    def __init__(self, signum: int, message: str = ""):
        self.signum = int(signum)
        self.exit_code = 128 + self.signum
        super().__init__(message or f"interrupted by signal {self.signum}")



class NonFiniteStop(UserError):
    """Training stopped on a non-finite loss or gradient norm (``training.on_nonfinite: stop``): exit code 3.

    The message names the step, the curriculum stage and the last good checkpoint; nothing non-finite
    was written.
    """

    exit_code = 3
