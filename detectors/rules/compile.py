"""Phase two of loading: merged definitions -> compiled :class:`~detectors.rules.model.Rule`.

Every problem is appended to ``errors`` with the ``file:line`` it is about (for a condition,
the line of the offending word), so one run of the loader reports them all.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from detectors.rules import fields as F
from detectors.rules.expr import (
    Compiled,
    Compiler,
    ExprError,
)
from detectors.rules.model import (
    Rule,
)
from detectors.yamlsrc import Node


class Source:
    """One rule file's text, under the name messages use for it."""

    def __init__(self, name: str, text: str, path: Path | None = None) -> None:
        self.name = name
        self.text = text
        self.path = path
        self.lines = text.splitlines()


class Definition:
    """A list, macro or rule as merged from every file that touched it."""

    def __init__(self, kind: str, name: str, node: Node) -> None:
        self.kind = kind
        self.name = name
        self.node = node
        #: key -> value, and key -> the node (file/line) that last set it
        self.values: dict[str, Any] = {}
        self.origin: dict[str, Node] = {}
        #: condition text pieces (appends), each with the node it came from
        self.segments: list[tuple[str, Node]] = []

    def set(self, key: str, value: Any, node: Node) -> None:
        self.values[key] = value
        self.origin[key] = node
        if key == "condition":
            self.segments = [(cond_text(value), node)]

    def where(self, key: str | None = None) -> str:
        node = self.origin.get(key, self.node) if key else self.node
        return node.where(key if key in node.lines else None)


def cond_text(value: Any) -> str:
    """A condition as text (YAML turns a bare ``false`` into a boolean)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def join_segments(segments: Sequence[tuple[str, Any]]) -> str:
    """A condition and its appends as one text: ``(first) second third``."""
    if len(segments) == 1:
        return segments[0][0]
    return "(" + segments[0][0] + ") " + " ".join(t for t, _ in segments[1:])


class RuleCompiler:
    """Compiles lists, macros and rules; collects every error."""

    def __init__(
        self,
        lists: dict[str, Definition],
        macros: dict[str, Definition],
        sources: dict[str, Source],
        errors: list[str],
    ) -> None:
        self.errors = errors
        self.sources = sources
        self.list_defs = lists
        self.macro_defs = macros
        items: dict[str, list[str]] = {}
        for name, d in lists.items():
            raw = d.values.get("items")
            if not isinstance(raw, list) or any(isinstance(i, (dict, list)) for i in raw):
                errors.append(
                    f"List '{name}' needs 'items' as a list of values in {d.where('items')}"
                )
                continue
            items[name] = [str(i) for i in raw]
        texts: dict[str, str] = {}
        for name, d in macros.items():
            cond = d.values.get("condition")
            if not isinstance(cond, (str, bool)):
                errors.append(f"Macro '{name}' needs a 'condition' in {d.where()}")
                continue
            texts[name] = join_segments(d.segments)
        self.compiler = Compiler(F.resolve, texts, items)
        self.bad_macros: set[str] = set()
        for name in texts:
            try:
                self.compiler.macro(name)
            except ExprError as exc:
                self._expr_error(exc, None, [])

    # -- locating problems -------------------------------------------------------------
    def _expr_error(
        self, exc: ExprError, rule: str | None, segments: list[tuple[str, Node, str]]
    ) -> None:
        if exc.macro is not None:
            if exc.macro in self.bad_macros:
                if rule is not None:
                    return
            self.bad_macros.add(exc.macro)
            d = self.macro_defs[exc.macro]
            where = self._locate([(t, n, "condition") for t, n in d.segments], exc)
            self.errors.append(f"{exc.message} (macro {exc.macro}) in {where}")
            return
        where = self._locate(segments, exc)
        self.errors.append(f"{exc.message} (rule {rule}) in {where}")

    def _locate(self, segments: list[tuple[str, Node, str]], exc: ExprError) -> str:
        """``file:line`` of the error's position in a condition made of appended pieces."""
        if not segments:
            return "<unknown>"
        offset = 0
        chosen = segments[-1]
        rel = exc.pos
        for i, seg in enumerate(segments):
            start = offset + (1 if len(segments) > 1 and i == 0 else 0)
            end = start + len(seg[0])
            if exc.pos <= end:
                chosen, rel = seg, max(0, exc.pos - start)
                break
            offset = end + (2 if len(segments) > 1 and i == 0 else 1)
        text, node, key = chosen
        line = node.line_of(key)
        src = self.sources.get(node.file)
        if src is not None and 0 < line <= len(src.lines):
            head = src.lines[line - 1]
            block = re.search(r":\s*[|>][-+]?\s*$", head) is not None
            guess = line + (1 if block else 0) + text.count("\n", 0, rel)
            lex = exc.lexeme
            if lex and not (0 < guess <= len(src.lines) and lex in src.lines[guess - 1]):
                for n in range(line, min(len(src.lines), line + 80) + 1):
                    if lex in src.lines[n - 1]:
                        guess = n
                        break
            line = min(guess, len(src.lines))
        return f"{node.file}:{line}"

    def compile_cond(
        self,
        text: Any,
        node: Node,
        key: str,
        rule: str,
        segments: list[tuple[str, Node]] | None = None,
    ) -> Compiled | None:
        if isinstance(text, bool):
            text = "true" if text else "false"
        if not isinstance(text, str) or not text.strip():
            self.errors.append(
                f"'{key}' must be a condition (text) (rule {rule}) in {node.where(key)}"
            )
            return None
        segs = [(t, n, key) for t, n in segments] if segments else [(text, node, key)]
        try:
            return self.compiler.compile(join_segments([(t, n) for t, n, _ in segs]))
        except ExprError as exc:
            self._expr_error(exc, rule, segs)
            return None

    # -- rules --------------------------------------------------------------------------
    def compile_all(self, defs: dict[str, Definition]) -> dict[str, Rule]:
        from detectors.rules.builder import RuleBuilder  # builder needs this module's types

        out: dict[str, Rule] = {}
        for rid, d in defs.items():
            before = len(self.errors)
            rule = RuleBuilder(self, d).build()
            if rule is not None and len(self.errors) == before:
                out[rid] = rule
        return out
