"""Rule bodies: the ``condition`` / ``sequence`` / ``absence`` / ``combination`` / ``count`` block.

Each block is validated key by key and its conditions compiled; every problem goes to the
loader's error list with the file:line of the offending key.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from detectors.rules import fields as F
from detectors.rules.expr import NUM, Compiled, FieldSpec, parse_duration
from detectors.rules.model import SPECIAL_VALUES, Step
from detectors.yamlsrc import Node

if TYPE_CHECKING:
    from detectors.rules.compile import Definition, RuleCompiler

#: the most events (or distinct values) a count rule keeps per window
MAX_COUNT = 4096
_STEP_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RESERVED = {n.split(".", 1)[0] for n in F.FIELDS} | {n.split(".", 1)[0] for n in SPECIAL_VALUES}


class BodyCompiler:
    """Compiles one rule's body (its type's block) and reports problems with file:line."""

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
