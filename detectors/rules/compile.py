"""Phase two of loading: merged definitions -> compiled :class:`~detectors.rules.model.Rule`.

Every problem is appended to ``errors`` with the ``file:line`` it is about (for a condition,
the line of the offending word), so one run of the loader reports them all.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from detectors.base import Action, Mode
from detectors.rules import fields as F
from detectors.rules.expr import (
    LIST_OPS,
    NUM,
    SET,
    Compiled,
    Compiler,
    ExprError,
    FieldSpec,
    Pred,
    make_predicate,
    parse_duration,
)
from detectors.rules.model import (
    ACTIONS,
    DEFAULT_SCORES,
    MODES,
    PRIORITIES,
    SPECIAL_VALUES,
    STATUSES,
    Early,
    Rule,
    Step,
    parse_template,
)
from detectors.yamlsrc import Node
from schemas.taxonomy import normalize_tag, tag_kind


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


#: the most events (or distinct values) a count rule keeps per window
MAX_COUNT = 4096
_STEP_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RESERVED = {n.split(".", 1)[0] for n in F.FIELDS} | {n.split(".", 1)[0] for n in SPECIAL_VALUES}
_TYPE_KEYS = ("condition", "sequence", "combination", "absence", "count")


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
        out: dict[str, Rule] = {}
        for rid, d in defs.items():
            before = len(self.errors)
            rule = _RuleBuilder(self, d).build()
            if rule is not None and len(self.errors) == before:
                out[rid] = rule
        return out


class _RuleBuilder:
    """Validates and compiles one rule definition."""

    def __init__(self, rc: RuleCompiler, d: Definition) -> None:
        self.rc = rc
        self.d = d
        self.v = d.values
        self.id = d.name
        self.refs: set[str] = set()

    def err(self, message: str, key: str | None = None, node: Node | None = None) -> None:
        where = node.where(key) if node is not None else self.d.where(key)
        self.rc.errors.append(f"{message} (rule {self.id}) in {where}")

    def cond(self, text: Any, node: Node, key: str, whole: bool = False) -> Compiled | None:
        c = self.rc.compile_cond(text, node, key, self.id, self.d.segments if whole else None)
        if c is not None:
            self.refs |= c.refs
        return c

    def build(self) -> Rule | None:
        v, d = self.v, self.d
        title = v.get("title")
        if not isinstance(title, str) or not title.strip():
            self.err("Missing 'title'", "rule")
        priority = v.get("priority")
        severity = PRIORITIES.get(str(priority).lower()) if priority is not None else None
        if priority is None:
            self.err("Missing 'priority'", "rule")
        elif severity is None:
            self.rc.errors.append(
                f"Unknown priority '{priority}' (one of {', '.join(PRIORITIES)}) "
                f"in {d.where('priority')}"
            )
        action = v.get("action", "alert")
        if action not in ACTIONS:
            self.rc.errors.append(f"Unknown action '{action}' in {d.where('action')}")
        mode = v.get("mode", "enforce")
        if mode not in MODES:
            self.rc.errors.append(f"Unknown mode '{mode}' in {d.where('mode')}")
        status = v.get("status", "experimental")
        if status not in STATUSES:
            self.rc.errors.append(f"Unknown status '{status}' in {d.where('status')}")
        enabled = v.get("enabled", True)
        if not isinstance(enabled, bool):
            self.err("'enabled' must be true or false", "enabled")
        by = v.get("by", "root")
        if by not in ("root", "session"):
            self.rc.errors.append(f"Unknown scope 'by: {by}' (root or session) in {d.where('by')}")
        score = v.get("score", DEFAULT_SCORES.get(severity or "medium", 0.35))
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not 0 <= score <= 1:
            self.err("'score' must be a number from 0 to 1", "score")
            score = 0.0
        tags, attacks = self.tags()
        falsepositives = self.strings("falsepositives")
        types = [k for k in _TYPE_KEYS if k in v]
        if len(types) != 1:
            self.err(
                "A rule needs exactly one of "
                + ", ".join(_TYPE_KEYS)
                + (f" (found {', '.join(types)})" if types else ""),
                "rule",
            )
            return None
        body = self.body(types[0])
        parts: dict[str, Any] = body if body is not None else {"type": "event"}
        exception = self.exceptions()
        step_names = frozenset(s.name for s in parts.get("steps", ())) or self.raw_step_names()
        output = v.get("output")
        if not isinstance(output, str) or not output.strip():
            self.err("Missing 'output' (one sentence with %field values)", "rule")
            output = ""
        template, problems = parse_template(output.strip(), F.resolve, step_names)
        for p in problems:
            self.err(p, "output")
        captures = []
        for step, fname in template.captures:
            spec = F.resolve(fname)
            if spec is not None:
                captures.append((step, spec))
        early = self.early(len(parts.get("steps", ())), parts["type"])
        tests = v.get("tests")
        tests_path = None
        if tests is not None:
            if not isinstance(tests, str):
                self.err("'tests' must be a path", "tests")
            else:
                src = self.rc.sources.get(d.origin.get("tests", d.node).file)
                base = src.path.parent if src is not None and src.path is not None else Path(".")
                tests_path = base / tests
        steps: tuple[Step, ...] = parts.get("steps", ())
        shape = "|".join(
            [
                parts["type"],
                str(by),
                ",".join(s.name + ("!" if s.missing else "") for s in steps),
                parts["distinct"].name if parts.get("distinct") else "",
                parts["sum"].name if parts.get("sum") else "",
            ]
        )
        from detectors.rules.loader import fingerprint

        version = fingerprint(
            self.id,
            dict(v),
            {
                n: self.rc.compiler.macros.get(n) or self.rc.compiler.lists.get(n)
                for n in sorted(self.refs)
            },
        )
        if body is None:
            return None
        act: Action = action if action in ACTIONS else "alert"
        md: Mode = mode if mode in MODES else "enforce"
        return Rule(
            id=self.id,
            title=str(title or self.id).strip(),
            type=parts["type"],
            severity=severity or "medium",
            score=float(score),
            action=act,
            mode=md,
            output=template,
            where=d.where(),
            version=version,
            by=str(by),
            enabled=bool(enabled),
            desc=str(v.get("desc") or "").strip(),
            status=str(status),
            tags=tags,
            attacks=attacks,
            falsepositives=falsepositives,
            cond=parts.get("cond"),
            steps=steps,
            window=parts.get("window"),
            window_field=parts.get("window_field"),
            until=parts.get("until"),
            min=parts.get("min", 0),
            threshold=parts.get("threshold", 0.0),
            distinct=parts.get("distinct"),
            sum=parts.get("sum"),
            exception=exception,
            early=early,
            tests=tests_path,
            shape=shape,
            kinds=parts.get("kinds"),
            caps=parts.get("caps"),
            captures=tuple(captures),
            source=dict(v),
        )

    def raw_step_names(self) -> frozenset[str]:
        """Step names as written (to check outputs even when a step failed to compile)."""
        names: set[str] = set()
        for key, list_key in (("sequence", "steps"), ("combination", "of")):
            body = self.v.get(key)
            if isinstance(body, dict) and isinstance(body.get(list_key), list):
                names.update(
                    str(s["name"]) for s in body[list_key] if isinstance(s, dict) and "name" in s
                )
        if isinstance(self.v.get("absence"), dict):
            names.update(("after", "expect"))
        return frozenset(names)

    # -- metadata -----------------------------------------------------------------------
    def strings(self, key: str) -> tuple[str, ...]:
        raw = self.v.get(key)
        if raw is None:
            return ()
        if isinstance(raw, str):
            return (raw,)
        if not isinstance(raw, list) or not all(isinstance(x, (str, int, float)) for x in raw):
            self.err(f"'{key}' must be a list of strings", key)
            return ()
        return tuple(str(x) for x in raw)

    def tags(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        tags: list[str] = []
        attacks: list[str] = []
        for t in self.strings("tags"):
            kind = tag_kind(t)
            if kind is None and re.match(r"^(ASI|NHI|AML\.)", t, re.I):
                self.rc.errors.append(
                    f"Unknown taxonomy tag '{t}' (ASI01-ASI10, NHI1-NHI10, AML.Tnnnn) "
                    f"in {self.d.where('tags')}"
                )
            elif kind == "atlas":
                attacks.append(t)
            else:
                tags.append(normalize_tag(t))
        return tuple(tags), tuple(attacks)

    def early(self, n_steps: int, rtype: str) -> Early | None:
        raw = self.v.get("early")
        if raw is None:
            return None
        if rtype not in ("sequence", "combination") or not isinstance(raw, Node):
            self.err("'early' is a mapping, for sequence and combination rules", "early")
            return None
        after = raw.get("after")
        if not isinstance(after, int) or isinstance(after, bool) or not 1 <= after < n_steps:
            self.err(f"'early.after' must be a whole number from 1 to {n_steps - 1}", "after", raw)
            return None
        prio = raw.get("priority", "low")
        sev = PRIORITIES.get(str(prio).lower())
        if sev is None:
            self.rc.errors.append(f"Unknown priority '{prio}' in {raw.where('priority')}")
            sev = "low"
        action = raw.get("action", "observe")
        if action not in ACTIONS:
            self.rc.errors.append(f"Unknown action '{action}' in {raw.where('action')}")
            action = "observe"
        score = raw.get("score", DEFAULT_SCORES[sev])
        if not isinstance(score, (int, float)) or not 0 <= score <= 1:
            self.err("'early.score' must be a number from 0 to 1", "score", raw)
            score = 0.0
        return Early(after, sev, action, float(score))

    # -- bodies -------------------------------------------------------------------------
    def duration(self, node: Node, key: str, required: bool) -> float | None:
        raw = node.get(key)
        if raw is None:
            if required:
                self.err(f"Missing '{key}' (a duration such as 10m)", None, node)
            return None
        d = parse_duration(raw)
        if d is None or d <= 0:
            self.err(f"'{key}' must be a positive duration such as 90s, 10m, 1h", key, node)
            return None
        return d

    def body(self, rtype: str) -> dict[str, Any] | None:
        v, d = self.v, self.d
        raw = v[rtype]
        if rtype == "condition":
            c = self.cond(raw, d.origin.get("condition", d.node), "condition", whole=True)
            return (
                None
                if c is None
                else {"type": "event", "cond": c, "kinds": c.kinds, "caps": c.caps}
            )
        if not isinstance(raw, Node):
            self.err(f"'{rtype}' must be a mapping", rtype)
            return None
        known = {
            "sequence": {"steps", "maxspan", "until"},
            "absence": {"after", "expect", "within", "until"},
            "combination": {"of", "within", "min"},
            "count": {"condition", "within", "threshold", "distinct", "sum"},
        }[rtype]
        for key in raw:
            if key not in known:
                self.err(
                    f"Unknown key '{key}' in {rtype} (one of {', '.join(sorted(known))})", key, raw
                )
        if rtype == "count":
            return self.count(raw)
        if rtype == "combination":
            return self.combination(raw)
        return self.sequence(raw, rtype)

    def step_list(
        self, items: Any, where: Node, key: str, allow_missing: bool
    ) -> list[Step] | None:
        if not isinstance(items, list) or not items:
            self.err(f"'{key}' must be a list of steps (name + condition)", key, where)
            return None
        out: list[Step] = []
        seen: set[str] = set()
        before = len(self.rc.errors)
        for i, item in enumerate(items):
            text: Any
            if isinstance(item, str):
                node = where
                name, text, missing, runs = f"step{i + 1}", item, False, 1
                ckey = key
            elif isinstance(item, Node):
                node = item
                for k in item:
                    if k not in ("name", "condition", "missing", "runs"):
                        self.err(
                            f"Unknown key '{k}' in a step (name, condition, missing, runs)", k, item
                        )
                name = str(item.get("name", f"step{i + 1}"))
                text = item.get("condition")
                missing = item.get("missing", False)
                runs = item.get("runs", 1)
                ckey = "condition"
                if text is None:
                    self.err("A step needs a 'condition'", None, item)
                    continue
            else:
                self.err("A step is a condition or a mapping (name, condition)", key, where)
                continue
            if not isinstance(name, str) or not _STEP_NAME_RE.match(name) or name in _RESERVED:
                self.err(
                    f"Invalid step name '{name}' (a word that is not a field name)", "name", node
                )
                continue
            if name in seen:
                self.err(f"Duplicate step name '{name}'", "name", node)
                continue
            seen.add(name)
            if missing is not False and (missing is not True or not allow_missing):
                self.err("'missing' must be true or false (sequences only)", "missing", node)
                continue
            if not isinstance(runs, int) or isinstance(runs, bool) or not 1 <= runs <= 100:
                self.err("'runs' must be a whole number from 1 to 100", "runs", node)
                continue
            c = self.cond(text, node, ckey)
            if c is None:
                continue
            if runs == 1:
                out.append(Step(name, c, bool(missing)))
            else:
                out.extend(Step(f"{name}_{r + 1}", c, bool(missing)) for r in range(runs))
                out[-1] = Step(name, c, bool(missing))
        return out if len(self.rc.errors) == before else None

    def sequence(self, raw: Node, rtype: str) -> dict[str, Any] | None:
        window_field: FieldSpec | None = None
        if rtype == "absence":
            for key in ("after", "expect"):
                if key not in raw:
                    self.err(f"An absence needs '{key}'", None, raw)
            if "after" not in raw or "expect" not in raw:
                return None
            a = self.cond(raw["after"], raw, "after")
            e = self.cond(raw["expect"], raw, "expect")
            window_field = F.resolve(str(raw.get("within")))
            if window_field is not None and window_field.type == NUM:
                window = None
            else:
                window_field = None
                window = self.duration(raw, "within", True)
                if window is None:
                    return None
            if a is None or e is None:
                return None
            steps = [Step("after", a), Step("expect", e, missing=True)]
        else:
            parsed = self.step_list(raw.get("steps"), raw, "steps", allow_missing=True)
            window = self.duration(raw, "maxspan", False)
            if not parsed:
                return None
            steps = parsed
            if steps[0].missing:
                self.err("A sequence cannot start with a missing step", "steps", raw)
                return None
            if steps[-1].missing and window is None:
                self.err(
                    "A sequence ending in a missing step needs 'maxspan' (how long to wait)",
                    "steps",
                    raw,
                )
                return None
        until = self.cond(raw["until"], raw, "until") if "until" in raw else None
        first = steps[0].cond
        return {
            "type": "sequence",
            "steps": tuple(steps),
            "window": window,
            "window_field": window_field if rtype == "absence" else None,
            "until": until,
            "kinds": first.kinds,
            "caps": first.caps,
        }

    def combination(self, raw: Node) -> dict[str, Any] | None:
        members = self.step_list(raw.get("of"), raw, "of", allow_missing=False)
        window = self.duration(raw, "within", False)
        if not members:
            return None
        n = raw.get("min", len(members))
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= len(members):
            self.err(f"'min' must be a whole number from 1 to {len(members)}", "min", raw)
            return None
        kinds: frozenset[str] | None = frozenset()
        caps: frozenset[str] | None = frozenset()
        for m in members:
            kinds = None if kinds is None or m.cond.kinds is None else kinds | m.cond.kinds
            caps = None if caps is None or m.cond.caps is None else caps | m.cond.caps
        return {
            "type": "combination",
            "steps": tuple(members),
            "window": window,
            "min": n,
            "kinds": kinds,
            "caps": caps,
        }

    def count(self, raw: Node) -> dict[str, Any] | None:
        c = self.cond(raw.get("condition"), raw, "condition") if "condition" in raw else None
        if "condition" not in raw:
            self.err("A count needs a 'condition'", None, raw)
        window = self.duration(raw, "within", True)
        threshold = raw.get("threshold")
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or threshold <= 0:
            self.err("'threshold' must be a positive number", "threshold", raw)
            return None
        if "sum" not in raw and threshold > MAX_COUNT:
            self.err(f"'threshold' of a count is at most {MAX_COUNT}", "threshold", raw)
            return None
        out: dict[str, Any] = {
            "type": "count",
            "cond": c,
            "window": window,
            "threshold": float(threshold),
        }
        for key in ("distinct", "sum"):
            if key in raw:
                spec = F.resolve(str(raw[key]))
                if spec is None:
                    self.err(f"Unknown field '{raw[key]}' for '{key}'", key, raw)
                    return None
                out[key] = spec
        if "distinct" in out and "sum" in out:
            self.err("A count has 'distinct' or 'sum', not both", "sum", raw)
            return None
        if c is None or window is None:
            return None
        out["kinds"], out["caps"] = c.kinds, c.caps
        return out

    # -- exceptions ---------------------------------------------------------------------
    def exceptions(self) -> Pred | None:
        raw = self.v.get("exceptions")
        if raw is None:
            return None
        if not isinstance(raw, list):
            self.err("'exceptions' must be a list", "exceptions")
            return None
        tests: list[Pred] = []
        for item in raw:
            if not isinstance(item, Node):
                self.err("An exception is a mapping (name, fields, comps, values)", "exceptions")
                continue
            t = self.exception(item)
            if t is not None:
                tests.append(t)
        if not tests:
            return None
        all_tests = tuple(tests)
        return lambda x: any(t(x) for t in all_tests)

    def exception(self, item: Node) -> Pred | None:
        name = item.get("name")
        for k in item:
            if k not in ("name", "fields", "comps", "values"):
                self.err(
                    f"Unknown key '{k}' in exception '{name}' (name, fields, comps, values)",
                    k,
                    item,
                )
        if not isinstance(name, str):
            self.err("An exception needs a 'name'", None, item)
            return None
        fields = item.get("fields")
        single = isinstance(fields, str)
        names = [fields] if single else fields
        if not isinstance(names, list) or not names or not all(isinstance(f, str) for f in names):
            self.err(f"Exception '{name}' needs 'fields' (a field or a list)", "fields", item)
            return None
        specs: list[FieldSpec] = []
        for f in names:
            spec = F.resolve(f)
            if spec is None:
                self.err(f"Unknown field '{f}' in exception '{name}'", "fields", item)
                return None
            specs.append(spec)
        comps = item.get("comps", "in" if single else ["="] * len(specs))
        comps = [comps] * len(specs) if isinstance(comps, str) else comps
        if not isinstance(comps, list) or len(comps) != len(specs):
            self.err(f"Exception '{name}' needs one comparison per field", "comps", item)
            return None
        values = item.get("values") or []
        if not isinstance(values, list):
            self.err(f"Exception '{name}' needs 'values' as a list", "values", item)
            return None
        rows: list[list[Any]]
        if single:
            rows = [[values]] if comps[0] in LIST_OPS else [[v] for v in values]
        else:
            rows = []
            for row in values:
                if not isinstance(row, list) or len(row) != len(specs):
                    self.err(
                        f"Each value of exception '{name}' must list {len(specs)} values "
                        f"({', '.join(names)})",
                        "values",
                        item,
                    )
                    return None
                rows.append(row)
        tests: list[Pred] = []
        for row in rows:
            preds: list[Pred] = []
            for spec, comp, value in zip(specs, comps, row, strict=True):
                op = "=" if comp == "==" else str(comp)
                val: Any
                if op in LIST_OPS or isinstance(value, list):
                    vals = value if isinstance(value, list) else [value]
                    val = tuple(self.rc.compiler.expand_list(str(x) for x in vals))
                    if op not in LIST_OPS and op not in ("contains", "icontains"):
                        self.err(
                            f"Comparison '{op}' takes one value in exception '{name}'",
                            "values",
                            item,
                        )
                        return None
                elif spec.type == SET and op == "=":
                    op, val = "contains", str(value)
                else:
                    val = value if isinstance(value, str) else _lit(value)
                try:
                    preds.append(make_predicate(spec, op, val))
                except ExprError as exc:
                    self.err(f"{exc.message} in exception '{name}'", "values", item)
                    return None
            ps = tuple(preds)
            tests.append(lambda x, ps=ps: all(p(x) for p in ps))  # type: ignore[misc]
        return (lambda x: any(t(x) for t in tests)) if tests else None


def _lit(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
