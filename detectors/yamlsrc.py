"""YAML that remembers where things came from: every mapping knows its file and line.

Rule files and tool catalogs are written by people, so every error names the file and line
it is about (``Unknown action 'kil_session' in rules/agentic.yaml:42``). PyYAML's safe loader
is used as is; only mappings are constructed as :class:`Node`, a ``dict`` that also records
the line of itself and of each of its keys (1-based, as editors count).

>>> doc = load_text("- rule: X\\n  action: alert\\n", "r.yaml")
>>> doc[0].where("action")
'r.yaml:2'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class Node(dict[str, Any]):
    """A YAML mapping with the file and line of itself and of each key."""

    __slots__ = ("file", "line", "lines")

    def __init__(self, file: str, line: int) -> None:
        super().__init__()
        self.file = file
        self.line = line
        self.lines: dict[str, int] = {}

    def line_of(self, key: str) -> int:
        return self.lines.get(key, self.line)

    def where(self, key: str | None = None) -> str:
        """``file:line`` of ``key`` (or of the mapping)."""
        return f"{self.file}:{self.line if key is None else self.line_of(key)}"


class _Loader(yaml.SafeLoader):
    filename = "<string>"


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> Node:
    loader.flatten_mapping(node)
    out = Node(loader.filename, node.start_mark.line + 1)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)  # type: ignore[no-untyped-call]
        if not isinstance(key, str):
            key = str(key)
        out[key] = loader.construct_object(value_node, deep=True)  # type: ignore[no-untyped-call]
        out.lines[key] = key_node.start_mark.line + 1
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
# A bare "=" is YAML 1.1's "value" tag; in rule files it is the comparison (Falco writes
# ``comps: [=, contains]``), so read it as the string it looks like.
_Loader.add_constructor(
    "tag:yaml.org,2002:value",
    lambda loader, node: loader.construct_scalar(node),  # type: ignore[no-untyped-call,arg-type]
)


def load_text(text: str, filename: str) -> Any:
    """Parse one YAML document; raises ``yaml.YAMLError`` (with a mark) on bad syntax."""
    loader = _Loader(text)
    loader.filename = filename
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()  # type: ignore[no-untyped-call]


def syntax_error(exc: yaml.YAMLError, filename: str) -> str:
    """A one-line message for a YAML syntax error, with file:line."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    line = f":{mark.line + 1}" if mark is not None else ""
    return f"Invalid YAML ({problem}) in {filename}{line}"


def display_path(path: Path) -> str:
    """A path as people read it in messages: relative to the working directory if inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
