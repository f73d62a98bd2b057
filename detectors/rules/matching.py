"""The rule matcher's shared machinery: per-session rule state, findings, counts, combinations.

State layout in ``session.det["rules"]``, a :class:`RuleState` (small maps and tuples inside,
so it pickles with the session): ``r`` (rule id -> :class:`RuleKeys`, the rule's state per
key, the key ``"#"`` holding match counts per key), ``live`` (a tuple of the sequence rules
with partial matches or timers), ``facts`` (``dests``: a tuple of the destinations used;
``issued``: the credentials issued) and ``deadline`` (the earliest timer). A key is ``"*"``
(``by: root``) or the session id (``by: session``). What a key holds, by rule type:

* count: a list of ``(time, event id, value, session id)``;
* combination: a :class:`SmallMap` member name -> ``(time, event id, session id, captures)``;
* sequence: a :class:`SeqKey` (partial matches and timers, see ``detectors.rules.sequence``).

Captures are a flat tuple ``(name, value, name, value, ...)`` or ``None``. The mappings are
:class:`~detectors.smallmap.SmallMap`: a session holds a dozen of them with an entry or two
each, and a dict would cost three times as much. Checkpoints of the two earlier layouts (dicts;
then ``[shape, keys]`` lists, dict captures, timers holding their rendered message) are
converted when a session is restored.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from detectors.base import Finding
from detectors.intern import canonical
from detectors.rules.fields import Subject
from detectors.rules.model import Batch, Rule, RuleSet, human_duration
from detectors.session import SessionState
from detectors.smallmap import SmallMap

NAME = "rules"
MAX_KEYS = 256
MAX_TIMERS = 16
MAX_SUM_ENTRIES = 4096
MAX_DESTS = 512
MAX_CREDS = 256
REPORT_FIRST = 8
#: the layout ``RuleState`` pickles (checkpoints without it are of the layouts before)
LAYOUT = 2


class RuleKeys(SmallMap):
    """One rule's state in a session: key -> state, and the rule's ``shape`` when it was
    written (a reload that changes the rule's shape makes the state meaningless). A slot
    rather than a ``[shape, keys]`` pair: 8 bytes instead of a 72-byte list."""

    __slots__ = ("shape",)

    def __init__(self, shape: str) -> None:
        super().__init__()
        self.shape = shape

    def __reduce__(self) -> tuple[Any, ...]:
        return (_keys_from_flat, (self.shape, list(list.__iter__(self))))


def _keys_from_flat(shape: str, flat: list[Any]) -> RuleKeys:
    keys = RuleKeys(shape)
    list.__init__(keys, flat)
    return keys


class SeqKey:
    """A sequence's state for one key: partial matches and timers (see
    ``detectors.rules.sequence``). Two slots rather than a map of two lists: 48 bytes
    instead of ~250."""

    __slots__ = ("p", "t")

    def __init__(self, p: tuple[Any, ...] = (), t: tuple[Any, ...] = ()) -> None:
        #: partial matches, at most one per number of steps matched, most steps first
        self.p = p
        #: timers (absences waiting for their deadline), oldest first
        self.t = t

    def __reduce__(self) -> tuple[Any, ...]:
        return (SeqKey, (self.p, self.t))

    def __repr__(self) -> str:
        return f"SeqKey(p={self.p!r}, t={self.t!r})"


class RuleState:
    """A session's rule state (see the module docstring): slots, not a dict: a small dict
    costs 200 bytes before it holds anything."""

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
        return (self.r, self.live, self.facts, self.deadline, LAYOUT)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self.r, self.live, self.facts, self.deadline = state[:4]
        if len(state) > 4:
            return
        if isinstance(self.live, dict):  # a checkpoint of the dict layout
            self._from_dicts()
        self._from_pairs()

    def _from_dicts(self) -> None:
        """The dict layout -> the ``[shape, keys]`` layout (then converted by ``_from_pairs``)."""
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

    def _from_pairs(self) -> None:
        """The ``[shape, keys]`` layout -> :class:`RuleKeys`, :class:`SeqKey`, tuples."""
        r = SmallMap()
        for rid, (shape, keys) in self.r.items():
            kind = shape.split("|", 1)[0]
            new = RuleKeys(shape)
            for k, v in keys.items():
                if k == "#":  # counts were keyed by the finding's key: "rule" or "rule:session"
                    v = SmallMap((_count_key(rid, fk), n) for fk, n in v.items())
                elif kind == "sequence":
                    v = SeqKey(
                        tuple(
                            (int(g), p[0], p[1], tuple(p[2]), tuple(p[3]), _flat(p[4]))
                            for g, p in sorted(v["p"].items(), key=lambda gp: -int(gp[0]))
                        ),
                        tuple(_old_timer(t) for t in v["t"]),
                    )
                elif kind == "combination":
                    v = SmallMap((n, (e[0], e[1], e[2], _flat(e[3]))) for n, e in v.items())
                elif kind == "count":
                    v = [tuple(e) for e in v]
                new[k] = v
            r[rid] = new
        self.r = r


def shared_value(value: Any) -> Any:
    """A captured value as rule state keeps it: short strings (tool names, destinations) as
    the one copy every session shares (``detectors.intern``), anything else as it is."""
    if type(value) is str and len(value) <= 128:
        return canonical(value)
    return value


def _count_key(rule_id: str, finding_key: str) -> str:
    return "*" if finding_key == rule_id else finding_key[len(rule_id) + 1 :]


def _flat(captures: dict[str, Any] | None) -> tuple[Any, ...] | None:
    """Captures as a flat ``(name, value, ...)`` tuple (a dict in earlier checkpoints)."""
    return tuple(x for kv in captures.items() for x in kv) if captures else None


def _old_timer(t: Sequence[Any]) -> tuple[Any, ...]:
    """A timer of the earlier layout (its message rendered, the trigger's event and session
    ids apart) in today's: the message takes the place of the values that would render it."""
    deadline, last, eids, sids, message = t[:5]
    return (deadline, last, tuple(eids), tuple(sids), None, None, message, *t[7:11])


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


def pairs(captures: tuple[Any, ...]) -> Iterable[tuple[str, Any]]:
    """``(name, value)`` pairs of a flat captures tuple."""
    return zip(captures[::2], captures[1::2], strict=True)


def _should_report(n: int) -> bool:
    """Report match number ``n`` (1-based): the first few, then at powers of two."""
    return n <= REPORT_FIRST or (n & (n - 1)) == 0


class RuleStats:
    """Counters the worker exports (Prometheus): per rule, per mode.

    Evaluations are counted per candidate set (one increment per event, not per rule) and
    summed per rule when read, to keep counting off the per-rule path.
    """

    def __init__(self) -> None:
        self.batches: Counter[Batch] = Counter()
        self.live: Counter[str] = Counter()
        self.matched: Counter[tuple[str, str]] = Counter()
        self.excepted: Counter[str] = Counter()
        self.reloads = 0

    @property
    def evaluated(self) -> Counter[str]:
        """rule id -> events it was evaluated on."""
        out: Counter[str] = Counter(self.live)
        for batch, n in self.batches.items():
            for r in batch.rules:
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

    def _keys(self, rule: Rule, session: SessionState, create: bool) -> RuleKeys | None:
        """This rule's per-key state in the session (dropped if the rule changed shape)."""
        st: RuleState | None = session.det.get(NAME)
        if st is None and not create:
            return None
        st = st if st is not None else self._state(session)
        keys: RuleKeys | None = st.r.get(rule.id)
        if keys is None or keys.shape != rule.shape:
            if keys is not None:  # the rule changed shape in a reload: its state means nothing
                del st.r[rule.id]
                st.drop_live(rule.id)
            if not create:
                return None
            keys = st.r[rule.id] = RuleKeys(rule.shape)
        return keys

    @staticmethod
    def _key(rule: Rule, x: Subject) -> str:
        return x.sid if rule.by == "session" else "*"

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
        sid = sid if sid is not None else (x.sid if x is not None else session.root_id)
        root = rule.by == "root"
        key = rule.id if root else f"{rule.id}:{sid}"
        mode = rule.mode
        self.stats.matched[(rule.id, mode)] += 1
        keys = self._keys(rule, session, True)
        assert keys is not None
        counts = keys.get("#")
        if counts is None:
            counts = keys["#"] = SmallMap()
        ck = "*" if root else sid  # the finding's key, less the rule id every key starts with
        n = counts[ck] = counts.pop(ck, 0) + 1  # most recently matched last
        if len(counts) > MAX_KEYS:  # keys may name sub-agents, which come and go
            del counts[counts.first_key()]
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
        ts, eid, sid = x.ctx.ts, x.ev.event_id, x.sid
        entries: list[tuple[Any, ...]] = _entry(keys, self._key(rule, x), list)
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
            entries.extend((ts, eid, v, sid) for v in vals)
        else:
            entries.append((ts, eid, value, sid))
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
        me = x.ev.event_id
        for m in hits:
            prev = latest.get(m.name)
            if prev is None or ts >= prev[0]:
                latest[m.name] = (ts, me, x.sid, self._capture(rule, m.name, x))
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
        if me not in {v[1] for _, v in chosen}:
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

    @staticmethod
    def _capture(rule: Rule, step: str, x: Subject) -> tuple[Any, ...] | None:
        """What the output reads of this step, as ``(name, value, ...)``; None if nothing."""
        plan = rule.capture_plan.get(step)
        if plan is None:
            return None
        return tuple(y for name, get in plan for y in (name, shared_value(get(x))))

    @staticmethod
    def _values(rule: Rule, chosen: Sequence[tuple[str, Sequence[Any]]]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for _, v in chosen:
            if v[3]:
                values.update(pairs(v[3]))
        stamps = [v[0] for _, v in chosen]
        values["span"] = human_duration(max(stamps) - min(stamps))
        values["window"] = human_duration(rule.window) if rule.window is not None else None
        values["steps"] = ", ".join(n for n, _ in chosen)
        values["sessions"] = len({v[2] for _, v in chosen})
        return values
