"""Is a name one of timm's models? Answered from a per-version cache when it can be, so validation skips torch.

Importing timm imports torch and torchvision (seconds on a small machine), and ``curricurun validate`` only needs
the model name list. The first check imports timm and writes ``timm.list_models()`` to
``$XDG_CACHE_HOME/curricurun/timm-models-<key>.txt`` (default ``~/.cache``), keyed by timm's version and install
path; later checks read it. Only a *known* name is answered from the cache: a name it lacks is asked of timm
itself (``timm.is_model``, which also accepts deprecated aliases), so the cache can never reject a valid name.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import os
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


def _cache_file() -> Path | None:
    spec = importlib.util.find_spec("timm")
    if spec is None or spec.origin is None:
        return None
    try:
        key = f"{version('timm')}:{spec.origin}"
    except PackageNotFoundError:
        return None
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "curricurun" / f"timm-models-{hashlib.sha256(key.encode()).hexdigest()[:16]}.txt"


def _cached_names(path: Path | None) -> set[str]:
    if path is None:
        return set()
    try:
        return set(path.read_text(encoding="utf-8").split())
    except OSError:
        return set()


def _write_names(path: Path | None, names: list[str]) -> None:
    """Write the list atomically; a cache that cannot be written (read-only home) is simply not kept."""
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
        partial.write_text("\n".join(names) + "\n", encoding="utf-8")
        os.replace(partial, path)
    except OSError:
        pass


def unknown_model_message(name: str) -> str | None:
    """``None`` when timm has a model ``name`` (pretrained tags such as ``resnet50.a1_in1k`` allowed), else a
    one-line message with the closest known name."""
    path = _cache_file()
    if name.split(".", 1)[0] in _cached_names(path):
        return None
    import timm

    names = timm.list_models()
    _write_names(path, names)
    if timm.is_model(name):
        return None
    close = difflib.get_close_matches(name, names, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown timm model '{name}'{hint}"
