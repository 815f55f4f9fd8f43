"""YAML read from files and command lines with bounds checked while it is read.

yaml.safe_load runs no code, but a few hundred bytes of nested aliases expand to 10**9 values
once anything walks them, deep nesting exhausts the stack, and a repeated key silently replaces
the first. Here each is refused as it is composed, before it can spend memory or the stack.
"""

from __future__ import annotations

from typing import Any

import yaml

from .registry import shown

# Real configs nest a few levels and hold a few hundred values.
MAX_DEPTH = 50
MAX_NODES = 100_000

MERGE_TAG = "tag:yaml.org,2002:merge"


class YamlLimitError(yaml.MarkedYAMLError):
    """Valid YAML refused by a bound, or a scalar that cannot be the type its tag names."""

    def __init__(self, problem: str, mark: Any) -> None:
        super().__init__(problem=problem, problem_mark=mark)


class BoundedLoader(yaml.SafeLoader):
    """SafeLoader that tracks nesting and each node's size with its aliases expanded."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._sizes: dict[int, int] = {}  # id(node) -> values it holds, aliases expanded

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            target = self.anchors.get(event.anchor)
            if target is not None and id(target) not in self._sizes:
                raise YamlLimitError(
                    f"the alias *{event.anchor} is recursive: it is inside the value it names",
                    event.start_mark,
                )
            return super().compose_node(parent, index)  # sized when its anchor was
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise YamlLimitError(
                f"values nest deeper than {MAX_DEPTH} levels", self.peek_event().start_mark
            )
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        size = 1
        if isinstance(node, yaml.SequenceNode):
            size += sum(self._sizes[id(item)] for item in node.value)
        elif isinstance(node, yaml.MappingNode):
            _check_unique_keys(node)
            size += sum(self._sizes[id(k)] + self._sizes[id(v)] for k, v in node.value)
        if size > MAX_NODES:
            raise YamlLimitError(
                f"the value holds more than {MAX_NODES:,} items once its aliases are expanded",
                node.start_mark,
            )
        self._sizes[id(node)] = size
        return node

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        # A scalar its tag cannot hold (a 5,000-digit int, 2001-13-45) raises ValueError and
        # others from deep inside PyYAML; name the value and where it is instead.
        try:
            return super().construct_object(node, deep)
        except (ValueError, TypeError, AttributeError, OverflowError) as exc:
            kind = node.tag.rpartition(":")[2]
            why = f" ({str(exc).partition(';')[0]})" if isinstance(exc, ValueError) else ""
            raise YamlLimitError(
                f"{shown(node.value)} is not a valid {kind}{why}", node.start_mark
            ) from None


def _check_unique_keys(node: yaml.MappingNode) -> None:
    """Refuse a key that a mapping repeats (merge keys, `<<: *base`, may be overridden)."""
    seen: dict[tuple[str, str], yaml.Node] = {}
    for key, _ in node.value:
        if isinstance(key, yaml.ScalarNode) and key.tag != MERGE_TAG:
            first = seen.setdefault((key.tag, key.value), key)
            if first is not key:
                raise YamlLimitError(
                    f"duplicate key {shown(key.value)} (first on line {first.start_mark.line + 1})",
                    key.start_mark,
                )


def safe_load(text: str) -> Any:
    """yaml.safe_load within the bounds; a refusal is a YamlLimitError (a yaml.YAMLError)."""
    loader = BoundedLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
