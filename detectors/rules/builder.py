"""One rule definition -> a compiled :class:`~detectors.rules.model.Rule`: metadata and checks."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from detectors.base import Action, Mode
from detectors.rules import fields as F
from detectors.rules.bodies import BodyCompiler
from detectors.rules.exceptions import compile_exceptions
from detectors.rules.model import (
    ACTIONS,
    DEFAULT_SCORES,
    MODES,
    PRIORITIES,
    STATUSES,
    Early,
    Rule,
    Step,
    parse_template,
)
from detectors.yamlsrc import Node
from schemas.taxonomy import normalize_tag, tag_kind

_TYPE_KEYS = ("condition", "sequence", "combination", "absence", "count")


class RuleBuilder(BodyCompiler):
    """Validates and compiles one rule definition."""

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
        exception = compile_exceptions(self)
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
