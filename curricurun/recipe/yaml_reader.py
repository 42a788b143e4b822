"""Read recipe YAML safely: YAML 1.2 scalars, no duplicate keys, and bounded nesting and alias expansion.

A recipe is a few hundred values nested a few levels deep, but YAML lets a short text describe far more:
anchors and aliases repeat content, so nine lines of ``&a [*b, *b, ...]`` stand for billions of values
(the "billion laughs" document) and an alias may even point into its own anchor (a cycle). PyYAML
builds such documents as shared Python objects quickly; whatever walks them afterwards (the loader's
source tracking, ``copy.deepcopy``, pydantic) visits every expanded value, and hangs. Deep nesting
(``[[[[...]]]]`` 1,000 levels) overflows Python's stack in PyYAML's recursive composer. So the text is
composed into PyYAML's node graph with a depth guard, the graph is measured (expanded size, depth
through aliases, cycles) with memoisation, which costs one visit per distinct node however large the
expansion, and only a document within :data:`MAX_DEPTH` and :data:`MAX_VALUES` is constructed.
"""

from __future__ import annotations

import re
import sys
from typing import Any

import yaml

from curricurun.recipe.problems import show_value

MAX_DEPTH = 64
"""Deepest nesting of sections and lists accepted (the shipped recipes use at most 5 levels)."""
MAX_VALUES = 100_000
"""Most values (mappings, lists, scalars, keys) a document may expand to (the shipped recipes: < 1,000)."""


class YamlLimitError(yaml.MarkedYAMLError):
    """The document is well-formed YAML but past a limit; ``problem`` says which, ``problem_mark`` where."""


class RecipeLoader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 scalars, duplicate keys as errors and a nesting limit.

    YAML 1.1 reads ``precision: no`` as ``false`` and ``lr: 1e-3`` as a string; YAML 1.2 (and every
    user) reads a string and a number. A repeated key silently keeps the last value in PyYAML.
    """

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        """PyYAML recurses once per level here; stop before Python's stack does."""
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise YamlLimitError(problem=f"nested deeper than {MAX_DEPTH} levels", problem_mark=mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {show_value(key_node.value)}", key_node.start_mark
                    )
                seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


_BOOL_TAG, _FLOAT_TAG = "tag:yaml.org,2002:bool", "tag:yaml.org,2002:float"
RecipeLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
RecipeLoader.add_implicit_resolver(_BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
RecipeLoader.add_implicit_resolver(
    _FLOAT_TAG, re.compile(r"^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+$"), list("-+0123456789.")
)


def parse_yaml(text: str) -> Any:
    """The Python value of one YAML document (None for an empty one), within the limits above.

    Raises:
        yaml.YAMLError: malformed YAML (a ``MarkedYAMLError`` with a position where PyYAML has one), or
            :class:`YamlLimitError` for a document past a limit, a recursive alias or a number too long to read.
    """
    loader = RecipeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _measure(node)
        try:
            return loader.construct_document(node)
        except ValueError as error:  # int() of more than 4,300 digits (CVE-2020-10735), or a date like 2001-13-45
            limit = sys.get_int_max_str_digits()
            too_long = "integer string conversion" in str(error)
            problem = f"a number has more than {limit:,} digits" if too_long else f"cannot read a value: {error}"
            raise YamlLimitError(problem=problem, problem_mark=node.start_mark) from None
    finally:
        loader.dispose()


def _measure(root: yaml.Node) -> None:
    """Refuse a node graph that expands past :data:`MAX_VALUES` values or :data:`MAX_DEPTH` levels, or has a cycle.

    ``sizes`` memoises (expanded values, height) per distinct node, so a billion-value expansion is measured
    in as many visits as the text has nodes. The recursion stops at ``MAX_DEPTH`` levels, far from Python's limit.
    """
    sizes: dict[int, tuple[int, int]] = {}
    on_path: set[int] = set()

    def visit(node: yaml.Node, depth: int) -> tuple[int, int]:
        if depth > MAX_DEPTH:
            problem = f"nested deeper than {MAX_DEPTH} levels (counting what aliases repeat)"
            raise YamlLimitError(problem=problem, problem_mark=node.start_mark)
        key = id(node)
        if key in on_path:
            problem = "an alias refers to its own anchor (a recursive value)"
            raise YamlLimitError(problem=problem, problem_mark=node.start_mark)
        if key not in sizes:
            on_path.add(key)
            children = _children(node)
            measured = [visit(child, depth + 1) for child in children]
            on_path.discard(key)
            height = 1 + max((height for _, height in measured), default=0)
            sizes[key] = (1 + sum(size for size, _ in measured), height)
        size, height = sizes[key]
        if depth + height > MAX_DEPTH:
            problem = f"nested deeper than {MAX_DEPTH} levels (counting what aliases repeat)"
            raise YamlLimitError(problem=problem, problem_mark=node.start_mark)
        if size > MAX_VALUES:
            problem = f"expands to more than {MAX_VALUES:,} values (aliases repeat their anchor's content)"
            raise YamlLimitError(problem=problem, problem_mark=node.start_mark)
        return size, height

    visit(root, 0)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []
