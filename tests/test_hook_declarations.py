"""Setup and curriculum hooks are declared once and read through their declarations, never probed by name.

The setup hooks are the members of the Protocols in ``curricurun/setups/base.py`` (read through
``optional_hooks``); the curriculum hooks are the methods of ``curricurun/curriculum/base.py``'s ``Curriculum``
and the ``crops_on_device`` flag. A ``hasattr(x, "hook")`` / ``getattr(x, "hook", ...)`` anywhere else in the
package would be a second, silent contract: this test walks every module's AST and names each one it finds.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from curricurun.curriculum.base import Curriculum
from curricurun.setups import base as setup_base

PACKAGE = Path(__file__).resolve().parents[1] / "curricurun"
DECLARING = {PACKAGE / "setups" / "base.py", PACKAGE / "curriculum" / "base.py", PACKAGE / "curriculum" / "registry.py"}


def declared_hooks() -> set[str]:
    names = {"crops_on_device", "fuse", "num_classes", "channels"}
    for _, protocol in inspect.getmembers(setup_base, inspect.isclass):
        if getattr(protocol, "_is_protocol", False):
            names |= {name for name in vars(protocol) if not name.startswith("_")}
            names |= set(getattr(protocol, "__annotations__", {}))
    names |= {name for name, _ in inspect.getmembers(Curriculum) if not name.startswith("_")}
    return names


def hook_probes(source: str, hooks: set[str]) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("hasattr", "getattr"):
            if len(node.args) >= 2 and isinstance(node.args[1], ast.Constant) and node.args[1].value in hooks:
                found.append((node.lineno, f"{node.func.id}(..., {node.args[1].value!r})"))
    return found


def test_the_declared_hooks_include_the_ones_the_engine_calls():
    hooks = declared_hooks()
    assert {"measure_batch", "load_split", "recipe_problems", "export", "sample"} <= hooks
    assert {"relative_cost", "preferred_lr_shape", "check_batch_size", "state_at"} <= hooks


def test_the_walk_finds_a_probe():
    assert hook_probes('if hasattr(setup, "measure_batch"): pass\n', {"measure_batch"}) == [
        (1, "hasattr(..., 'measure_batch')")
    ]


def test_no_module_probes_a_hook_by_name():
    hooks = declared_hooks()
    probes = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {what}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path not in DECLARING
        for line, what in hook_probes(path.read_text(), hooks)
    ]
    assert not probes, "\n".join(probes)
