"""Loading rule files: Falco-style ``list`` / ``macro`` / ``rule`` blocks, Sigma-style metadata.

Files load in order and later definitions win: a block that names an existing list, macro or
rule replaces it, or changes it with ``override: {key: append | replace}`` (Falco's
semantics; ``append: true`` is the older spelling). A rule block with nothing but
``enabled``, ``mode`` or ``action`` besides its id changes just those. Everything is
validated before anything runs, and **every** problem is reported at once, each with its
``file:line``, in one :class:`~schemas.errors.RuleError`.

See ``detectors/rules/builtin/`` for examples of every block and rule type.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from detectors.rules.compile import Definition, RuleCompiler, Source, cond_text, join_segments
from detectors.rules.model import RuleSet
from detectors.yamlsrc import Node, display_path, load_text, syntax_error
from schemas.errors import RuleError

BUILTIN_DIR = Path(__file__).parent / "builtin"
RULE_KEYS = frozenset(
    {
        "rule",
        "title",
        "desc",
        "status",
        "priority",
        "score",
        "action",
        "mode",
        "enabled",
        "tags",
        "falsepositives",
        "references",
        "author",
        "date",
        "modified",
        "output",
        "by",
        "condition",
        "sequence",
        "combination",
        "absence",
        "count",
        "exceptions",
        "early",
        "tests",
        "override",
        "append",
    }
)
SHORTCUT_KEYS = frozenset({"enabled", "mode", "action"})
APPENDABLE = frozenset({"condition", "exceptions", "tags", "falsepositives", "items"})


def rule_files(path: Path) -> list[Path]:
    """The rule files a path names: the file itself, or a directory's ``*.yaml``/``*.yml``."""
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    return [path]


def builtin_files() -> list[Path]:
    return rule_files(BUILTIN_DIR)


def read_sources(paths: Iterable[Path], errors: list[str]) -> list[Source]:
    out = []
    for p in paths:
        for f in rule_files(p):
            try:
                out.append(Source(display_path(f), f.read_text(encoding="utf-8"), f))
            except OSError as exc:
                errors.append(f"Cannot read rule file {display_path(f)}: {exc.strerror}")
    return out


def load_rules(paths: Sequence[Path] = (), *, builtin: bool = True) -> RuleSet:
    """The built-in pack (unless ``builtin=False``), then ``paths`` in order."""
    errors: list[str] = []
    files = (builtin_files() if builtin else []) + list(paths)
    sources = read_sources(files, errors)
    return load_sources(sources, errors)


def load_text_rules(text: str, name: str = "<rules>", *, builtin: bool = False) -> RuleSet:
    """Rules from one YAML text (tests, the ``rules test`` command), optionally after the pack."""
    errors: list[str] = []
    sources = read_sources(builtin_files(), errors) if builtin else []
    return load_sources([*sources, Source(name, text)], errors)


def load_sources(sources: Sequence[Source], errors: list[str] | None = None) -> RuleSet:
    """Merge and compile rule sources; raise RuleError with every problem found."""
    errors = list(errors or [])
    merger = _Merger(errors)
    for src in sources:
        merger.add(src)
    compiler = RuleCompiler(merger.lists, merger.macros, merger.sources, errors)
    rules = compiler.compile_all(merger.rules)
    if errors:
        order = {s.name: i for i, s in enumerate(sources)}
        raise RuleError(sorted(errors, key=lambda e: _position(e, order)))
    digest = hashlib.sha256()
    for src in sources:
        digest.update(src.name.encode() + b"\0" + src.text.encode() + b"\0")
    return RuleSet(
        rules,
        digest.hexdigest()[:12],
        tuple(s.name for s in sources),
        tuple((s.name, s.text) for s in sources),
    )


class _Merger:
    """Phase one: read every file's blocks and apply overrides, in order."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        self.lists: dict[str, Definition] = {}
        self.macros: dict[str, Definition] = {}
        self.rules: dict[str, Definition] = {}
        self.sources: dict[str, Source] = {}

    def add(self, src: Source) -> None:
        self.sources[src.name] = src
        try:
            doc = load_text(src.text, src.name)
        except yaml.YAMLError as exc:
            self.errors.append(syntax_error(exc, src.name))
            return
        if doc is None:
            return
        if not isinstance(doc, list):
            self.errors.append(f"A rule file must be a list of blocks in {src.name}:1")
            return
        for item in doc:
            if not isinstance(item, Node):
                self.errors.append(f"Expected a list, macro or rule block in {src.name}")
                continue
            kinds = [k for k in ("list", "macro", "rule", "required_engine_version") if k in item]
            if len(kinds) != 1:
                what = "more than one of" if kinds else "none of"
                self.errors.append(f"A block has {what} 'list', 'macro', 'rule' in {item.where()}")
                continue
            kind = kinds[0]
            if kind == "required_engine_version":
                self._engine_version(item)
            else:
                self._block(kind, item)

    def _engine_version(self, item: Node) -> None:
        from detectors.rules import ENGINE_VERSION

        want = item["required_engine_version"]
        if not isinstance(want, int) or want > ENGINE_VERSION:
            self.errors.append(
                f"Rules need engine version {want}, this is {ENGINE_VERSION}, "
                f"in {item.where('required_engine_version')}"
            )

    def _block(self, kind: str, item: Node) -> None:
        name = item[kind]
        if not isinstance(name, str) or not name.strip() or name != name.strip():
            self.errors.append(
                f"A {kind} needs a name without surrounding spaces in {item.where(kind)}"
            )
            return
        if not re.fullmatch(r"[^\s,()'\"=!<>]+", name) and kind != "rule":
            self.errors.append(f"Invalid {kind} name '{name}' in {item.where(kind)}")
            return
        table = {"list": self.lists, "macro": self.macros, "rule": self.rules}[kind]
        allowed = (
            RULE_KEYS
            if kind == "rule"
            else {kind, "override", "append"} | ({"items"} if kind == "list" else {"condition"})
        )
        for key in item:
            if key not in allowed:
                self.errors.append(f"Unknown key '{key}' in {kind} '{name}' in {item.where(key)}")
        existing = table.get(name)
        override = self._override_spec(kind, name, item)
        if override is None:
            return
        shortcut = kind == "rule" and existing is not None and set(item) - {"rule"} <= SHORTCUT_KEYS
        if override or shortcut:
            if existing is None:
                self.errors.append(
                    f"{kind.capitalize()} '{name}' overrides nothing (define it first) in "
                    f"{item.where(kind)}"
                )
                return
            spec = override or {k: "replace" for k in item if k != "rule"}
            for key, how in spec.items():
                if key not in item:
                    self.errors.append(
                        f"Override of '{key}' without a '{key}' value in {item.where('override')}"
                    )
                elif how == "append":
                    self._append(existing, key, item)
                else:
                    existing.set(key, item[key], item)
            return
        d = Definition(kind, name, item)
        for key, value in item.items():
            if key not in ("override", "append"):
                d.set(key, value, item)
        table[name] = d

    def _override_spec(self, kind: str, name: str, item: Node) -> dict[str, str] | None:
        """``{key: append|replace}`` of the block ({} if none); None if it is invalid."""
        if item.get("append") is True:
            keys = [k for k in ("condition", "exceptions", "items") if k in item]
            if not keys:
                self.errors.append(
                    f"'append: true' with nothing to append in {item.where('append')}"
                )
                return None
            return {k: "append" for k in keys}
        raw = item.get("override")
        if raw is None:
            return {}
        if not isinstance(raw, Node):
            self.errors.append(
                f"'override' must map keys to append/replace in {item.where('override')}"
            )
            return None
        out: dict[str, str] = {}
        for key, how in raw.items():
            if how not in ("append", "replace"):
                self.errors.append(
                    f"Unknown override '{how}' for '{key}' (append or replace) in {raw.where(key)}"
                )
                return None
            if how == "append" and key not in APPENDABLE:
                self.errors.append(
                    f"'{key}' cannot be appended to, only replaced, in {raw.where(key)}"
                )
                return None
            out[key] = how
        return out

    def _append(self, d: Definition, key: str, item: Node) -> None:
        new = item[key]
        if key == "condition":
            d.segments.append((cond_text(new), item))
            d.values["condition"] = join_segments(d.segments)
            return
        old = d.values.get(key)
        if key == "exceptions" and isinstance(old, list) and isinstance(new, list):
            merged = list(old)
            for exc in new:
                name = exc.get("name") if isinstance(exc, dict) else None
                same = next(
                    (e for e in merged if isinstance(e, dict) and e.get("name") == name), None
                )
                if same is not None and isinstance(exc, dict) and "values" in exc:
                    combined = dict(same)
                    combined["values"] = list(same.get("values") or []) + list(exc["values"] or [])
                    merged[merged.index(same)] = _renode(combined, same)
                else:
                    merged.append(exc)
            d.values[key] = merged
        elif isinstance(old, list) and isinstance(new, list):
            d.values[key] = old + new
        elif old is None:
            d.values[key] = new
        else:
            self.errors.append(
                f"Cannot append to '{key}' of {d.kind} '{d.name}' in {item.where(key)}"
            )
            return
        d.origin.setdefault(key, item)


def _renode(values: dict[str, Any], like: Any) -> Any:
    if isinstance(like, Node):
        out = Node(like.file, like.line)
        out.lines = dict(like.lines)
        out.update(values)
        return out
    return values


_WHERE_RE = re.compile(r"^(.+):(\d+)$")


def _position(error: str, order: dict[str, int]) -> tuple[int, int]:
    """Sort key of an error: its file's load order, then its line."""
    m = _WHERE_RE.match(error.rsplit(" in ", 1)[-1])
    if m is None:
        return (-1, 0)
    return (order.get(m.group(1), len(order)), int(m.group(2)))


def fingerprint(*parts: Any) -> str:
    """A short stable hash of rule definitions (the rule's version)."""
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]
