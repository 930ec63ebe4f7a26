"""YAML with line numbers: where each value of a document sits, so a validation error can say the line.

PyYAML drops positions when it builds Python objects; the composed node tree keeps them. The
document is loaded normally and, beside it, a map from each value's path (``("rules", 2, "for")``)
to its 1-based line is built from the nodes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from monitor.errors import UserError

NodePath = tuple[Any, ...]


class YamlDocument:
    """A parsed YAML document and the line of every mapping value and sequence item in it."""

    def __init__(self, text: str) -> None:
        self.data: Any = yaml.safe_load(text)
        self.lines: dict[NodePath, int] = {}
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is not None:
            self._walk(node, ())

    def _walk(self, node: yaml.Node, path: NodePath) -> None:
        self.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                self._walk(value_node, (*path, key_node.value))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._walk(item, (*path, i))

    def line_of(self, loc: Sequence[Any]) -> int | None:
        """The line of the deepest part of ``loc`` present in the document.

        ``loc`` may hold steps that are not in the document (a pydantic union tag, a missing
        field); they are skipped, so a missing field points at the mapping that lacks it.
        """
        path: NodePath = ()
        for step in loc:
            if (*path, step) in self.lines:
                path = (*path, step)
        return self.lines.get(path)


def yaml_error_line(exc: yaml.YAMLError) -> str:
    """``" line N"`` where PyYAML knows it, then the problem in its own words."""
    mark = getattr(exc, "problem_mark", None)
    where = f" line {mark.line + 1}" if mark else ""
    return f"{where}: not valid YAML ({getattr(exc, 'problem', None) or exc})"


def read_yaml(path: Path, what: str, error: type[UserError] = UserError) -> YamlDocument:
    """Parse a YAML file, or raise ``error`` saying which file (``what``), which line and why."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise error(f"{what} {path} cannot be read: {exc.strerror}") from None
    try:
        return YamlDocument(text)
    except yaml.YAMLError as exc:
        raise error(f"{what} {path}{yaml_error_line(exc)}") from None
