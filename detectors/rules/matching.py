"""The rule matcher's shared machinery: per-session rule state, findings, counts, combinations.

State layout in ``session.det["rules"]``, a :class:`RuleState` (small maps, lists and tuples
inside, so it pickles with the session): ``r`` (rule id -> ``[shape, {key: state}]``, the key
``"#"`` holding match counts), ``live`` (a tuple of the sequence rules with partial matches or
timers), ``facts`` (``dests``: a tuple of the destinations used; ``issued``: the credentials
issued) and ``deadline`` (the earliest timer). The mappings are
:class:`~detectors.smallmap.SmallMap`: a session holds a dozen of them with an entry or two
each, and a dict would cost three times as much (checkpoints of the dict layout are converted
on load).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from detectors.base import Finding
from detectors.rules.fields import Subject
from detectors.rules.model import Rule, RuleSet, human_duration
from detectors.session import SessionState
from detectors.smallmap import SmallMap

NAME = "rules"
MAX_KEYS = 256
MAX_TIMERS = 16
MAX_SUM_ENTRIES = 4096
MAX_DESTS = 512
MAX_CREDS = 256
REPORT_FIRST = 8


class RuleState:
    """A session's rule state (see the module docstring): slots, not a dict, and a list per
    rule, not a dict: a small dict costs 200 bytes before it holds anything."""

    __slots__ = ("r", "live", "facts", "deadline")

    def __init__(self) -> None:
        self.r: SmallMap = SmallMap()
        self.live: tuple[str, ...] = ()
        self.facts: SmallMap = SmallMap()
        self.deadline: float | None = None

    def add_live(self, rule_id: str) -> None:
        if rule_id not in self.live:
            self.live += (rule_id,)

    def drop_live(self, rule_id: str) -> None:
        if rule_id in self.live:
            self.live = tuple(r for r in self.live if r != rule_id)

    def __getstate__(self) -> tuple[Any, ...]:
        return (self.r, self.live, self.facts, self.deadline)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self.r, self.live, self.facts, self.deadline = state
        if isinstance(self.live, dict):  # a checkpoint of the dict layout
            self._from_dicts()

    def _from_dicts(self) -> None:
        self.live = tuple(self.live)
        facts = SmallMap(self.facts)
        if "dests" in facts:
            facts["dests"] = tuple(facts["dests"])
        if "issued" in facts:
            facts["issued"] = SmallMap(facts["issued"])
        self.facts = facts
        r = SmallMap()
        for rid, (shape, keys) in self.r.items():
            compact = SmallMap()
            sequence = shape.startswith("sequence|")
            for k, v in keys.items():
                if isinstance(v, dict):  # counts, a sequence's matches, a combination's steps
                    v = SmallMap(v)
                    if sequence and k != "#":
                        v["p"] = SmallMap(v["p"])
                        v["t"] = [tuple(t) for t in v["t"]]
                compact[k] = v
            r[rid] = [shape, compact]
        self.r = r


def _entry(keys: SmallMap | dict[str, Any], key: str, new: Callable[[], Any]) -> Any:
    """``keys[key]``, created if missing; at most ``MAX_KEYS`` keys (besides the ``#`` counts)
    are kept, the oldest dropped first: a ``by: session`` rule's keys are sub-agent sessions,
    which a delegation tree can create without end."""
    got = keys.get(key)
    if got is None:
        got = keys[key] = new()
        if len(keys) > MAX_KEYS + ("#" in keys):
            del keys[next(k for k in keys if k != "#")]
    return got


def _should_report(n: int) -> bool:
    """Report match number ``n`` (1-based): the first few, then at powers of two."""
    return n <= REPORT_FIRST or (n & (n - 1)) == 0


class RuleStats:
    """Counters the worker exports (Prometheus): per rule, per mode.

    Evaluations are counted per candidate set (one increment per event, not per rule) and
    summed per rule when read, to keep counting off the per-rule path.
    """

    def __init__(self) -> None:
        self.batches: Counter[tuple[Rule, ...]] = Counter()
        self.live: Counter[str] = Counter()
        self.matched: Counter[tuple[str, str]] = Counter()
        self.excepted: Counter[str] = Counter()
        self.reloads = 0

    @property
    def evaluated(self) -> Counter[str]:
        """rule id -> events it was evaluated on."""
        out: Counter[str] = Counter(self.live)
        for rules, n in self.batches.items():
            for r in rules:
                out[r.id] += n
        return out

    def snapshot(self) -> dict[str, Any]:
        return {
            "evaluated": dict(self.evaluated),
            "matched": {f"{r}|{m}": n for (r, m), n in self.matched.items()},
            "excepted": dict(self.excepted),
            "reloads": self.reloads,
        }


class Matcher:
    """State, findings and the window-based rule types (counts, combinations)."""

    ruleset: RuleSet
    listener: Callable[[Finding], None] | None
    stats: RuleStats

    @staticmethod
    def _state(session: SessionState) -> RuleState:
        st: RuleState | None = session.det.get(NAME)
        if st is None:
            st = session.det[NAME] = RuleState()
        return st

    def _keys(self, rule: Rule, session: SessionState, create: bool) -> SmallMap | None:
        """This rule's per-key state in the session (dropped if the rule changed shape)."""
        st: RuleState | None = session.det.get(NAME)
        if st is None and not create:
            return None
        st = st if st is not None else self._state(session)
        rs = st.r.get(rule.id)
        if rs is None or rs[0] != rule.shape:
            if rs is not None:  # the rule changed shape in a reload: its state means nothing
                del st.r[rule.id]
                st.drop_live(rule.id)
            if not create:
                return None
            rs = st.r[rule.id] = [rule.shape, SmallMap()]
        keys: SmallMap = rs[1]
        return keys

    @staticmethod
    def _key(rule: Rule, x: Subject) -> str:
        return x.ev.session.id if rule.by == "session" else "*"

    def _excepted(self, rule: Rule, x: Subject) -> bool:
        if rule.exception is not None and rule.exception(x):
            self.stats.excepted[rule.id] += 1
            return True
        return False

    # -- findings -------------------------------------------------------------------------
    def _report(
        self,
        rule: Rule,
        x: Subject | None,
        out: list[Finding],
        evidence: Iterable[str],
        values: dict[str, Any],
        stage: str | None,
        *,
        early: bool = False,
        message: str | None = None,
        session: SessionState | None = None,
        sid: str | None = None,
        explanation: dict[str, Any] | None = None,
    ) -> Finding | None:
        session = session if session is not None else (x.session if x is not None else None)
        assert session is not None
        sid = sid if sid is not None else (x.ev.session.id if x is not None else session.root_id)
        key = rule.id if rule.by == "root" else f"{rule.id}:{sid}"
        mode = rule.mode
        self.stats.matched[(rule.id, mode)] += 1
        keys = self._keys(rule, session, True)
        assert keys is not None
        counts = keys.get("#")
        if counts is None:
            counts = keys["#"] = SmallMap()
        n = counts[key] = counts.pop(key, 0) + 1  # most recently matched last
        if len(counts) > MAX_KEYS:  # keys may name sub-agents, which come and go
            del counts[next(iter(counts))]
        values.setdefault("rule.id", rule.id)
        values.setdefault("rule.title", rule.title)
        values.setdefault("stage", stage)
        if message is None:
            assert x is not None
            message = rule.output.render(x, values)
        e = rule.early if early else None
        finding = Finding(
            detector=rule.id,
            title=rule.title,
            message=message,
            score=e.score if e else rule.score,
            severity=e.severity if e else rule.severity,
            action=e.action if e else rule.action,
            mode=mode,
            evidence=tuple(dict.fromkeys(evidence)),
            tags=rule.tags,
            attacks=rule.attacks,
            key=key,
            stage=stage,
            explanation=explanation or {"rule": rule.id, "type": rule.type},
            rule_version=rule.version,
        )
        if self.listener is not None:
            self.listener(finding)
        if not _should_report(n):
            return None
        out.append(finding)
        return finding

    # -- counts ---------------------------------------------------------------------------
    def _count(self, rule: Rule, x: Subject, out: list[Finding]) -> None:
        assert rule.cond is not None and rule.window is not None
        if not rule.cond.fn(x) or self._excepted(rule, x):
            return
        value: Any = None
        if rule.distinct is not None or rule.sum is not None:
            spec = rule.distinct or rule.sum
            assert spec is not None
            value = spec.get(x)
            if value is None or (rule.sum is not None and not isinstance(value, (int, float))):
                return
        keys = self._keys(rule, x.session, True)
        assert keys is not None
        ts, eid = x.ctx.ts, x.ev.event_id
        entries: list[list[Any]] = _entry(keys, self._key(rule, x), list)
        newest = max([ts] + [e[0] for e in entries])
        entries[:] = [e for e in entries if e[0] >= newest - rule.window]
        if ts < newest - rule.window:
            return
        if rule.distinct is not None:
            vals = (
                sorted(map(str, value))
                if isinstance(value, (set, frozenset, list))
                else [str(value)]
            )
            entries[:] = [e for e in entries if e[2] not in vals]
            entries.extend([ts, eid, v, x.ev.session.id] for v in vals)
        else:
            entries.append([ts, eid, value, x.ev.session.id])
        entries.sort(key=lambda e: e[0])
        cap = MAX_SUM_ENTRIES if rule.sum is not None else int(rule.threshold)
        del entries[: max(0, len(entries) - cap)]
        n = len(entries)
        total = sum(float(e[2]) for e in entries) if rule.sum is not None else float(n)
        if total < rule.threshold:
            return
        values = {
            "count": n,
            "distinct": n if rule.distinct is not None else None,
            "sum": total if rule.sum is not None else None,
            "span": human_duration(entries[-1][0] - entries[0][0]),
            "window": human_duration(rule.window),
            "sessions": len({e[3] for e in entries}),
        }
        self._report(rule, x, out, (e[1] for e in entries), values, None)

    # -- combinations ---------------------------------------------------------------------
    def _combination(self, rule: Rule, x: Subject, out: list[Finding]) -> None:
        hits = [m for m in rule.steps if m.cond.fn(x)]
        if not hits or self._excepted(rule, x):
            return
        keys = self._keys(rule, x.session, True)
        assert keys is not None
        latest: SmallMap = _entry(keys, self._key(rule, x), SmallMap)
        ts = x.ctx.ts
        for m in hits:
            prev = latest.get(m.name)
            if prev is None or ts >= prev[0]:
                latest[m.name] = [
                    ts,
                    x.ev.event_id,
                    x.ev.session.id,
                    self._capture(rule, m.name, x),
                ]
        if rule.window is not None:
            newest = max(v[0] for v in latest.values())
            for name in [n for n, v in latest.items() if v[0] < newest - rule.window]:
                del latest[name]
        order = {m.name: i for i, m in enumerate(rule.steps)}
        present = sorted(latest.items(), key=lambda kv: (kv[1][0], order[kv[0]]))
        need = rule.min or len(rule.steps)
        if len(present) >= need:
            chosen = present[-need:]
            stage = "complete"
            early = False
        elif rule.early is not None and len(present) >= rule.early.after:
            chosen = present
            stage = "+".join(sorted((n for n, _ in present), key=order.__getitem__))
            early = True
        else:
            return
        if x.ev.event_id not in {v[1] for _, v in chosen}:
            return
        values = self._values(rule, chosen)
        members = {n: v[1] for n, v in sorted(chosen, key=lambda kv: order[kv[0]])}
        evidence = [v[1] for _, v in sorted(chosen, key=lambda kv: (kv[1][0], kv[1][1]))]
        self._report(
            rule,
            x,
            out,
            evidence,
            values,
            stage,
            early=early,
            explanation={"rule": rule.id, "type": "combination", "members": members},
        )

    def _capture(self, rule: Rule, step: str, x: Subject) -> dict[str, Any] | None:
        got = {f"{step}.{spec.name}": spec.get(x) for s, spec in rule.captures if s == step}
        return got or None

    @staticmethod
    def _values(rule: Rule, chosen: Sequence[tuple[str, list[Any]]]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for _, v in chosen:
            if v[3]:
                values.update(v[3])
        stamps = [v[0] for _, v in chosen]
        values["span"] = human_duration(max(stamps) - min(stamps))
        values["window"] = human_duration(rule.window) if rule.window is not None else None
        values["steps"] = ", ".join(n for n, _ in chosen)
        values["sessions"] = len({v[2] for _, v in chosen})
        return values
