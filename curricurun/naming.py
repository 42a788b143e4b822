"""Names a user types (a setup, a curriculum, a pipeline, a shape): the one "unknown name" line and its
"did you mean" hint, shared by the setup and curriculum registries and the recipe loader. Imports nothing
of the package, so any registry can use it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(word: object, candidates: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest candidate (case-insensitive), or ``""`` if none is close."""
    if not isinstance(word, str):
        return ""
    by_lower = {candidate.lower(): candidate for candidate in candidates}
    close = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return f" (did you mean '{by_lower[close[0]]}'?)" if close else ""


def unknown_name(kind: str, name: str, known: Iterable[str], shown: str | None = None) -> str:
    """``unknown setup 'x' (did you mean 'y'?); known: a, b``: ``shown`` is how to print ``name`` (default quoted)."""
    names = sorted(known)
    listing = ", ".join(names) if names else "(none registered)"
    return f"unknown {kind} {shown or repr(name)}{did_you_mean(name, names)}; known: {listing}"
