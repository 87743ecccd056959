"""YAML written by people (post front matter, segment and sequence definitions), read as plain data.

``yaml.safe_load`` builds no objects, but it still expands aliases -- a dozen lines of anchors and
``*name`` references stand for billions of values (the "billion laughs"), and anything that walks
or prints the result never finishes -- and it composes nested collections recursively, so a few
thousand brackets exhaust Python's stack. Nothing written by hand needs either, so both are
refused here as ordinary YAML errors with a position, which callers already report. So are values
a tag cannot build ("!!timestamp 2024-13-45"), for which PyYAML raises ValueError or KeyError.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError

MAX_DEPTH = 50


class PlainLoader(yaml.SafeLoader):
    """SafeLoader without aliases and with a bound on nesting."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._depth = 0
        self.last_mark: Any = None  # where the value being built starts, for errors without a mark

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise ComposerError(None, None, "aliases (*name) are not supported; write the value out", mark)
        if self._depth >= MAX_DEPTH:
            raise ComposerError(None, None, f"nested more than {MAX_DEPTH} levels deep", self.peek_event().start_mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


    def construct_object(self, node: Any, deep: bool = False) -> Any:
        self.last_mark = node.start_mark
        return super().construct_object(node, deep)


def load(text: str, loader_class: type[PlainLoader] = PlainLoader) -> Any:
    """The data in ``text``; raises ``yaml.YAMLError`` (with ``problem_mark``) when it is not plain YAML.
    ``loader_class`` may refine ``PlainLoader`` (sequence definitions read YAML 1.2 scalars)."""
    loader = loader_class(text)
    try:
        return loader.get_single_data()
    except (ValueError, OverflowError, KeyError, TypeError) as exc:
        raise ConstructorError(None, None, f"cannot read this value ({exc})", loader.last_mark) from exc
    finally:
        loader.dispose()
