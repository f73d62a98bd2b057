"""Compiled rules: what the loader builds and the matcher runs.

A :class:`Rule` is one of four types:

* ``event`` - one condition on one event (Falco's rules);
* ``sequence`` - ordered steps within ``maxspan``, optional ``until``, steps may be
  ``missing`` (EQL's ``![...]``): a missing last step is an absence ("A not followed by B
  within T") and needs timers;
* ``combination`` - a set of conditions met in any order within ``within`` (all, or ``min``);
* ``count`` - events matching a condition within ``within``: ``threshold`` events, distinct
  values of a field, or a sum of a field.

Each is scoped ``by`` the event's session or the root session (the whole delegation tree).
A :class:`RuleSet` indexes enabled rules by event kind so an event evaluates only the rules
it can trigger.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from detectors.base import Action, Mode
from detectors.rules.expr import Compiled, FieldSpec, Pred, any_of, specialize

#: Falco priorities and Sigma levels -> our severities
PRIORITIES: dict[str, str] = {
    "emergency": "critical",
    "alert": "critical",
    "critical": "critical",
    "error": "high",
    "high": "high",
    "warning": "medium",
    "medium": "medium",
    "notice": "low",
    "low": "low",
    "informational": "informational",
    "info": "informational",
    "debug": "informational",
}
#: a finding's default contribution to the session's fused risk, by severity; chosen so that
#: no single alert-action rule reaches the default kill threshold (0.9) on its own
DEFAULT_SCORES: dict[str, float] = {
    "critical": 0.85,
    "high": 0.6,
    "medium": 0.35,
    "low": 0.15,
    "informational": 0.05,
}
ACTIONS: tuple[str, ...] = ("observe", "alert", "kill_session")
MODES: tuple[str, ...] = ("enforce", "shadow")
STATUSES: tuple[str, ...] = ("stable", "test", "experimental", "deprecated", "unsupported")
TYPES: tuple[str, ...] = ("event", "sequence", "combination", "count")


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a sequence, or one member of a combination."""

    name: str
    cond: Compiled
    missing: bool = False


@dataclass(frozen=True, slots=True)
class Early:
    """Report a partial match once ``after`` steps/members are in (a new stage each time)."""

    after: int
    severity: str
    action: Action
    score: float


_PLACEHOLDER_RE = re.compile(r"%([A-Za-z_][\w\-]*(?:\.[\w\-]+)*)")
#: values rule outputs may use besides fields: correlation facts
SPECIAL_VALUES: dict[str, str] = {
    "rule.id": "the rule's id",
    "rule.title": "the rule's title",
    "count": "events counted (count rules)",
    "distinct": "distinct values counted (count rules)",
    "sum": "the sum (count rules with sum)",
    "span": "time between the first and last evidence event",
    "window": "the rule's window",
    "stage": "the stage reached",
    "steps": "the steps/members matched",
    "sessions": "how many sessions of the tree took part",
}
#: argument names never rendered into an alert message
SECRET_ARG_RE = re.compile(r"pass|secret|token|key|auth|cookie|credential|otp|pin", re.I)
MAX_VALUE_CHARS = 200


def render_value(value: Any) -> str:
    if value is None:
        return "<NA>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (set, frozenset, list, tuple)):
        return ", ".join(sorted(str(v) for v in value)) or "<none>"
    text = str(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def human_duration(seconds: float) -> str:
    """``75`` -> ``1m15s``; ``0.5`` -> ``0.5s``."""
    if seconds < 60:
        return f"{seconds:.3g}s" if seconds < 10 else f"{seconds:.0f}s"
    s = int(round(seconds))
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if s >= size:
            out.append(f"{s // size}{unit}")
            s %= size
    return "".join(out[:2])


@dataclass(frozen=True, slots=True)
class Template:
    """An ``output`` sentence with ``%field`` / ``%step.field`` / ``%count`` placeholders."""

    text: str
    #: (start, end, kind, name, getter) per placeholder; kind: field | step | special
    parts: tuple[tuple[int, int, str, str, Callable[[Any], Any] | None], ...]

    def render(self, subject: Any, values: Mapping[str, Any]) -> str:
        out: list[str] = []
        pos = 0
        for start, end, kind, name, get in self.parts:
            out.append(self.text[pos:start])
            if kind == "field" and get is not None:
                out.append(render_value(get(subject)))
            else:
                out.append(render_value(values.get(name)))
            pos = end
        out.append(self.text[pos:])
        return "".join(out)

    def read(self, subject: Any) -> tuple[Any, ...]:
        """The template's event fields as ``(name, value, ...)``: what :meth:`fill` needs of
        the subject (a timer keeps these, not its message, until it fires)."""
        out: list[Any] = []
        for _, _, kind, name, get in self.parts:
            if kind == "field" and get is not None and name not in out[::2]:
                out.extend((name, get(subject)))
        return tuple(out)

    def fill(self, fields: Sequence[Any], values: Mapping[str, Any]) -> str:
        """The sentence from what :meth:`read` gave and the other values; the same text
        :meth:`render` gives (a field it has no value for renders as missing)."""
        given = dict(zip(fields[::2], fields[1::2], strict=True))
        out: list[str] = []
        pos = 0
        for start, end, kind, name, get in self.parts:
            out.append(self.text[pos:start])
            if kind == "field" and get is not None:
                out.append(render_value(given.get(name)))
            else:
                out.append(render_value(values.get(name)))
            pos = end
        out.append(self.text[pos:])
        return "".join(out)

    @property
    def captures(self) -> tuple[tuple[str, str], ...]:
        """(step, field) pairs the template reads from earlier steps."""
        return tuple(
            (name.split(".", 1)[0], name.split(".", 1)[1])
            for _, _, kind, name, _ in self.parts
            if kind == "step"
        )


def parse_template(
    text: str,
    resolve: Callable[[str], FieldSpec | None],
    step_names: frozenset[str],
) -> tuple[Template, list[str]]:
    """Compile an output sentence; returns it and the problems found (unknown names...)."""
    parts: list[tuple[int, int, str, str, Callable[[Any], Any] | None]] = []
    problems: list[str] = []
    for m in _PLACEHOLDER_RE.finditer(text):
        name = m.group(1).rstrip(".")
        end = m.start() + 1 + len(name)
        head = name.split(".", 1)[0]
        if name in SPECIAL_VALUES:
            parts.append((m.start(), end, "special", name, None))
            continue
        if head in step_names and "." in name:
            sub = name.split(".", 1)[1]
            if resolve(sub) is None:
                problems.append(f"Unknown field '{sub}' in output placeholder '%{name}'")
            elif _unsafe(sub):
                problems.append(f"Output placeholder '%{name}' would copy raw tool data")
            parts.append((m.start(), end, "step", name, None))
            continue
        spec = resolve(name)
        if spec is None:
            problems.append(f"Unknown field '{name}' in output placeholder '%{name}'")
            continue
        if _unsafe(name):
            problems.append(f"Output placeholder '%{name}' would copy raw tool data into alerts")
            continue
        parts.append((m.start(), end, "field", name, spec.get))
    return Template(text, tuple(parts)), problems


def _unsafe(name: str) -> bool:
    if name in ("tool.output", "tool.args"):
        return True
    return name.startswith("tool.args.") and bool(SECRET_ARG_RE.search(name[10:]))


@dataclass(frozen=True, eq=False)
class Rule:
    """One compiled rule (compared and hashed by identity: the matcher keys on it)."""

    id: str
    title: str
    type: str
    severity: str
    score: float
    action: Action
    mode: Mode
    output: Template
    where: str
    version: str
    by: str = "root"
    enabled: bool = True
    desc: str = ""
    status: str = "experimental"
    tags: tuple[str, ...] = ()
    attacks: tuple[str, ...] = ()
    falsepositives: tuple[str, ...] = ()
    cond: Compiled | None = None
    steps: tuple[Step, ...] = ()
    window: float | None = None
    #: an absence's wait read from the first event instead (``within: scope.max_duration``)
    window_field: FieldSpec | None = None
    until: Compiled | None = None
    min: int = 0
    threshold: float = 0.0
    distinct: FieldSpec | None = None
    sum: FieldSpec | None = None
    exception: Pred | None = None
    early: Early | None = None
    tests: Path | None = None
    #: what state of this rule means: kept across reloads while it is unchanged
    shape: str = ""
    #: event kinds / capabilities an event needs to start (or complete) a match
    kinds: frozenset[str] | None = None
    caps: frozenset[str] | None = None
    captures: tuple[tuple[str, FieldSpec], ...] = ()
    source: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @cached_property
    def positive(self) -> tuple[Step, ...]:
        """A sequence's steps that must occur, in order."""
        return tuple(s for s in self.steps if not s.missing)

    @cached_property
    def guards(self) -> tuple[tuple[Compiled, ...], ...]:
        """``guards[g]``: missing steps that must not occur while waiting for positive step g."""
        out: list[list[Compiled]] = [[] for _ in self.positive]
        g = 0
        for s in self.steps:
            if not s.missing:
                g += 1
            elif g < len(self.positive):
                out[g].append(s.cond)
        return tuple(tuple(x) for x in out)

    @cached_property
    def trailing(self) -> tuple[Compiled, ...]:
        """Missing steps after the last positive one: what must not follow (absence)."""
        n = len(self.positive)
        g = 0
        out = []
        for s in self.steps:
            if not s.missing:
                g += 1
            elif g >= n:
                out.append(s.cond)
        return tuple(out)

    @cached_property
    def capture_plan(self) -> dict[str, tuple[tuple[str, Callable[[Any], Any]], ...]]:
        """step -> ``(placeholder name, getter)`` of what the output reads of that step, each
        name once (the names are made once here, not per event)."""
        plan: dict[str, dict[str, Callable[[Any], Any]]] = {}
        for step, spec in self.captures:
            plan.setdefault(step, {}).setdefault(f"{step}.{spec.name}", spec.get)
        return {step: tuple(got.items()) for step, got in plan.items()}

    @property
    def timed(self) -> bool:
        """A sequence ending in a missing step: it fires when time passes (absence)."""
        return self.type == "sequence" and bool(self.steps) and self.steps[-1].missing


#: a condition no event of a batch can meet
NEVER = Compiled(lambda x: False, frozenset(), None, const=False)


def specialized(rule: Rule, kind: str, caps: frozenset[str]) -> Rule:
    """``rule`` as events of one kind and capability set see it: the conditions (the rule's,
    its steps', ``until``) that no such event can meet (their kinds and capabilities say so)
    replaced by :data:`NEVER`, which the matcher skips. The same rule otherwise (id, shape,
    output, state); ``rule`` itself when nothing changes."""

    def sp(c: Compiled | None) -> Compiled | None:
        if c is None:
            return None
        if not c.could_match(kind, caps):
            return NEVER
        return specialize(c, kind, caps)

    cond, until = sp(rule.cond), sp(rule.until)
    steps = tuple(Step(s.name, sp(s.cond) or NEVER, s.missing) for s in rule.steps)
    if (
        cond is rule.cond
        and until is rule.until
        and all(a.cond is b.cond for a, b in zip(steps, rule.steps, strict=True))
    ):
        return rule
    return dataclasses.replace(rule, cond=cond, steps=steps, until=until)


def inert(rule: Rule) -> bool:
    """No condition of this (specialised) sequence can be true: only time can change its
    state (a partial match expiring, a timer coming due)."""
    conds = [s.cond for s in rule.steps] + ([rule.until] if rule.until is not None else [])
    return rule.type == "sequence" and all(c.const is False for c in conds)


def _can_start(rule: Rule) -> bool:
    """Whether an event can start (or count towards) a match of this specialised rule that
    has no state yet: what a rule without partial matches needs evaluated at all."""
    if rule.type == "event" or rule.type == "count":
        return rule.cond is not None and rule.cond.const is not False
    if rule.type == "sequence":
        return rule.positive[0].cond.const is not False
    return any(s.cond.const is not False for s in rule.steps)


@dataclass(frozen=True, slots=True, eq=False)
class Batch:
    """The rules an event of one kind and capability set can start or complete, in order,
    ready to run: each with its condition if it is an event rule (run inline), else None.
    Hashed by identity, so counting evaluations per batch costs no hashing of its rules.

    ``plan`` holds the rules specialised for the kind and capabilities (see
    :func:`specialized`), less those no such event can start: a sequence whose first step
    needs another capability is in ``rules`` (the event may complete it) but runs only when
    it has partial matches. ``views``: rule id -> the specialised rule, for the sequences
    with partial matches; ``idle``: the ids of those no condition of which such an event
    can meet."""

    rules: tuple[Rule, ...]
    plan: tuple[tuple[Rule, Pred | None], ...]
    views: dict[str, Rule] = field(default_factory=dict)
    idle: frozenset[str] = frozenset()
    #: the ids of ``rules``
    ids: frozenset[str] = frozenset()
    #: its events issue credentials (facts later rules read)
    issues: bool = False
    #: true when an event rule of the plan matches (None: it has none); when it is false,
    #: only ``rest`` runs
    fire: Pred | None = None
    #: the plan less its event rules
    rest: tuple[Rule, ...] = ()


@dataclass
class RuleSet:
    """The loaded rules, indexed by event kind."""

    rules: dict[str, Rule]
    version: str
    files: tuple[str, ...] = ()
    #: (name, text) of every source, so a rule set can be rebuilt (pickling, reloads)
    sources: tuple[tuple[str, str], ...] = ()
    by_kind: dict[str, tuple[Rule, ...]] = field(default_factory=dict)
    any_kind: tuple[Rule, ...] = ()
    timed: tuple[Rule, ...] = ()
    _batches: dict[tuple[str, frozenset[str]], Batch] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        enabled = [r for r in self.rules.values() if r.enabled]
        self.any_kind = tuple(r for r in enabled if r.kinds is None)
        kinds = {k for r in enabled if r.kinds for k in r.kinds}
        self.by_kind = {
            k: tuple(r for r in enabled if r.kinds is None or k in r.kinds) for k in kinds
        }
        self.timed = tuple(r for r in enabled if r.timed)

    def for_kind(self, kind: str) -> tuple[Rule, ...]:
        return self.by_kind.get(kind, self.any_kind)

    def candidates(self, kind: str, caps: frozenset[str]) -> tuple[Rule, ...]:
        """The rules an event of this kind and these capabilities can start or complete."""
        return self.batch(kind, caps).rules

    def batch(self, kind: str, caps: frozenset[str]) -> Batch:
        """:meth:`candidates` as a :class:`Batch`.

        Capability sets come from the catalog and are few, so the answer is cached: a
        typical event costs one dict lookup here, however many rules are loaded.
        """
        key = (kind, caps)
        hit = self._batches.get(key)
        if hit is None:
            rules = tuple(
                r for r in self.for_kind(kind) if r.caps is None or not r.caps.isdisjoint(caps)
            )
            views = {
                r.id: specialized(r, kind, caps)
                for r in self.rules.values()
                if r.enabled and (r in rules or r.type == "sequence")
            }
            plan = tuple(
                (v, v.cond.fn if v.type == "event" and v.cond is not None else None)
                for v in (views[r.id] for r in rules)
                if _can_start(v)
            )
            idle = frozenset(rid for rid, v in views.items() if inert(v))
            ids = frozenset(r.id for r in rules)
            fire = any_of(tuple(fn for _, fn in plan if fn is not None))
            rest = tuple(r for r, fn in plan if fn is None)
            hit = Batch(rules, plan, views, idle, ids, kind == "credential_issued", fire, rest)
            if len(self._batches) < 65536:
                self._batches[key] = hit
        return hit

    @property
    def enabled(self) -> list[Rule]:
        return [r for r in self.rules.values() if r.enabled]

    def __len__(self) -> int:
        return len(self.rules)
