"""The rule engine as a detector: runs a :class:`RuleSet` over each event of a root session.

Per event it builds one :class:`~detectors.rules.fields.Subject`, evaluates only the rules
indexed under the event's kind (and whose capability guard the event meets) plus the
sequences this session has a partial match of, and returns their findings. Rule state lives
in ``session.det["rules"]`` (plain dicts and lists: picklable, checkpointed with the
session) and is bounded: partial matches per sequence key at most one per step, timers,
keys and counted events capped, windows pruned as they slide.

Semantics (the tests pin each of these):

* windows (``maxspan``, ``within``) are on event time and **inclusive**: a step exactly
  ``maxspan`` after the first still matches; an absence's expected event exactly at the
  deadline still counts; the absence fires once time is strictly past the deadline;
* sequences are ordered by event time (a step earlier than the previous one does not
  advance); after a full match the key's partial matches are dropped (EQL: skip past the
  last event), so overlapping repeats do not multiply alerts;
* a partial match that waited longer than ``maxspan`` expires; ``until`` drops them all;
* an event matching an exception never feeds a rule (any step, member or count);
* repeated matches of a rule in one key are all counted, but reported (as findings) only
  for the first 8 and then at powers of two, so a busy session updates its alert
  logarithmically rather than once per event.

Hot reload: :meth:`RuleDetector.swap` replaces the rule set between two events; each
rule's state is kept when a rule with the same id and the same shape (type, scope, step
names) exists in the new set, and dropped otherwise.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from detectors.base import EventContext, Finding, Trigger
from detectors.rules.compile import Source
from detectors.rules.fields import Subject
from detectors.rules.loader import load_rules, load_sources
from detectors.rules.model import Rule, RuleSet, human_duration
from detectors.session import SessionState

NAME = "rules"
MAX_KEYS = 256
MAX_TIMERS = 16
MAX_SUM_ENTRIES = 4096
MAX_DESTS = 512
MAX_CREDS = 256
REPORT_FIRST = 8


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


class RuleDetector:
    """Runs rules. ``listener`` (optional) sees every finding, reported or not (fixtures)."""

    name = NAME

    def __init__(
        self,
        ruleset: RuleSet | None = None,
        listener: Callable[[Finding], None] | None = None,
    ) -> None:
        self.ruleset = ruleset if ruleset is not None else load_rules()
        self.listener = listener
        self.stats = RuleStats()

    @classmethod
    def from_paths(cls, paths: Sequence[Path] = (), *, builtin: bool = True) -> RuleDetector:
        return cls(load_rules(paths, builtin=builtin))

    def swap(self, ruleset: RuleSet) -> None:
        """Use ``ruleset`` from the next event on (state of unchanged rules is kept)."""
        self.ruleset = ruleset
        self.stats.reloads += 1

    # -- pickling: closures do not pickle, so a detector travels as its sources ---------------
    def __getstate__(self) -> dict[str, Any]:
        return {"sources": self.ruleset.sources}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.ruleset = load_sources([Source(n, t) for n, t in state["sources"]])
        self.listener = None
        self.stats = RuleStats()

    # -- per event ------------------------------------------------------------------------
    def process(self, ctx: EventContext, session: SessionState) -> list[Finding]:
        rs = self.ruleset
        candidates = rs.candidates(ctx.event.kind, ctx.caps)
        st = session.det.get(NAME)
        live: dict[str, None] = st["live"] if st is not None else {}
        out: list[Finding] = []
        if candidates or live:
            x = Subject(ctx, session, st["facts"] if st is not None else {})
            self.stats.batches[candidates] += 1
            for rule in candidates:
                if rule.id in live:
                    continue
                if rule.type == "event":  # the common case, inline
                    if rule.cond.fn(x) and not (  # type: ignore[union-attr]
                        rule.exception is not None and self._excepted(rule, x)
                    ):
                        self._report(rule, x, out, (x.ev.event_id,), {}, None)
                else:
                    self._eval(rule, x, out)
            for rid in list(live):
                seq = rs.rules.get(rid)
                if seq is None or not seq.enabled or seq.type != "sequence":
                    live.pop(rid, None)  # the rule went away in a reload: so does its state
                    st["r"].pop(rid, None)  # type: ignore[index]
                    continue
                self.stats.live[rid] += 1
                self._sequence(seq, x, out)
        self._remember(ctx, session)
        return out

    def _remember(self, ctx: EventContext, session: SessionState) -> None:
        """Facts later rules ask about: destinations used, credentials issued."""
        ev = ctx.event
        dests = ctx.cls.destinations
        issued = ev.credential_issued if ev.kind == "credential_issued" else None
        if not dests and (issued is None or not issued.jti):
            return
        facts = self._state(session)["facts"]
        if dests:
            seen = facts.setdefault("dests", {})
            for d in dests:
                seen[d.lower()] = None
            while len(seen) > MAX_DESTS:
                del seen[next(iter(seen))]
        if issued is not None and issued.jti:
            creds = facts.setdefault("issued", {})
            exp = (
                issued.exp
                if issued.exp is not None
                else (ctx.ts + issued.ttl_s if issued.ttl_s is not None else None)
            )
            creds[issued.jti] = (issued.bound_session_id or ev.session.id, exp)
            while len(creds) > MAX_CREDS:
                del creds[next(iter(creds))]

    @staticmethod
    def _state(session: SessionState) -> dict[str, Any]:
        st = session.det.get(NAME)
        if st is None:
            st = session.det[NAME] = {"r": {}, "live": {}, "facts": {}, "deadline": None}
        return st

    def _keys(self, rule: Rule, session: SessionState, create: bool) -> dict[str, Any] | None:
        """This rule's per-key state in the session (dropped if the rule changed shape)."""
        st = session.det.get(NAME)
        if st is None and not create:
            return None
        st = st if st is not None else self._state(session)
        rs = st["r"].get(rule.id)
        if rs is None or rs["v"] != rule.shape:
            if rs is not None:  # the rule changed shape in a reload: its state means nothing
                del st["r"][rule.id]
                st["live"].pop(rule.id, None)
            if not create:
                return None
            rs = st["r"][rule.id] = {"v": rule.shape, "k": {}}
        keys: dict[str, Any] = rs["k"]
        return keys

    @staticmethod
    def _key(rule: Rule, x: Subject) -> str:
        return x.ev.session.id if rule.by == "session" else "*"

    def _excepted(self, rule: Rule, x: Subject) -> bool:
        if rule.exception is not None and rule.exception(x):
            self.stats.excepted[rule.id] += 1
            return True
        return False

    def _eval(self, rule: Rule, x: Subject, out: list[Finding]) -> None:
        if rule.type == "count":
            self._count(rule, x, out)
        elif rule.type == "combination":
            self._combination(rule, x, out)
        else:
            self._sequence(rule, x, out)

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
        counts = keys.setdefault("#", {})
        n = counts[key] = counts.get(key, 0) + 1
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
        entries: list[list[Any]] = keys.setdefault(self._key(rule, x), [])
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
        latest: dict[str, list[Any]] = keys.setdefault(self._key(rule, x), {})
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

    # -- sequences ------------------------------------------------------------------------
    def _sequence(self, rule: Rule, x: Subject, out: list[Finding]) -> None:
        key = self._key(rule, x)
        keys = self._keys(rule, x.session, False)
        state: dict[str, Any] | None = keys.get(key) if keys is not None else None
        ts = x.ctx.ts
        if state is not None:
            if rule.until is not None and rule.until.fn(x):
                del keys[key]  # type: ignore[union-attr]
                self._relive(rule, x.session)
                return
            if state["t"]:
                self._timers(rule, x, state, out)
            partials: dict[int, list[Any]] = {int(g): p for g, p in state["p"].items()}
        else:
            partials = {}
        moved: dict[int, list[Any]] = {}
        matched = False
        for g in sorted(partials, reverse=True):
            p = partials[g]
            if rule.window is not None and ts - p[0] > rule.window:
                continue
            if ts >= p[1] and any(c.fn(x) for c in rule.guards[g]):
                continue
            step = rule.positive[g]
            if ts >= p[1] and step.cond.fn(x) and not self._excepted(rule, x):
                q = [p[0], ts, p[2] + [x.ev.event_id], p[3] + [x.ev.session.id], dict(p[4])]
                q[4].update(self._capture(rule, step.name, x) or {})
                if g + 1 == len(rule.positive):
                    self._complete(rule, x, q, out)
                    matched = True
                    break
                _keep_newest(moved, g + 1, q)
                self._early(rule, x, q, g + 1, out)
            else:
                _keep_newest(moved, g, p)
        if matched:
            moved = {}
        elif rule.positive[0].cond.fn(x) and not self._excepted(rule, x):
            first = rule.positive[0].name
            q = [ts, ts, [x.ev.event_id], [x.ev.session.id], self._capture(rule, first, x) or {}]
            if len(rule.positive) == 1:
                self._complete(rule, x, q, out)
            else:
                _keep_newest(moved, 1, q)
                self._early(rule, x, q, 1, out)
        if moved or state is not None:
            self._store(rule, x, key, moved, state)

    def _store(
        self,
        rule: Rule,
        x: Subject,
        key: str,
        partials: dict[int, list[Any]],
        state: dict[str, Any] | None,
    ) -> None:
        keys = self._keys(rule, x.session, bool(partials) or state is not None)
        if keys is None:
            return
        cur = keys.get(key) or state or {"p": {}, "t": []}
        cur["p"] = {g: p for g, p in partials.items()}
        if cur["p"] or cur["t"]:
            keys[key] = cur
            while sum(1 for k in keys if k != "#") > MAX_KEYS:
                del keys[next(k for k in keys if k != "#")]
        else:
            keys.pop(key, None)
        self._relive(rule, x.session)

    def _relive(self, rule: Rule, session: SessionState) -> None:
        """Keep ``live`` (rules with partial matches) and the timer deadline up to date."""
        st = self._state(session)
        keys = self._keys(rule, session, False) or {}
        if any(k != "#" and (v["p"] or v["t"]) for k, v in keys.items()):
            st["live"][rule.id] = None
        else:
            st["live"].pop(rule.id, None)
        deadlines = [
            t[0]
            for rid in st["live"]
            for k, v in (st["r"].get(rid) or {"k": {}})["k"].items()
            if k != "#"
            for t in v["t"]
        ]
        st["deadline"] = min(deadlines) if deadlines else None

    def _early(self, rule: Rule, x: Subject, q: list[Any], got: int, out: list[Finding]) -> None:
        if rule.early is None or got < rule.early.after:
            return
        values = self._seq_values(rule, q)
        stage = f"{got}/{len(rule.positive)} {rule.positive[got - 1].name}"
        expl = self._seq_expl(rule, q)
        self._report(rule, x, out, q[2], values, stage, early=True, explanation=expl)

    def _complete(self, rule: Rule, x: Subject, q: list[Any], out: list[Finding]) -> None:
        values = self._seq_values(rule, q)
        if not rule.trailing:
            expl = self._seq_expl(rule, q)
            self._report(rule, x, out, q[2], values, "complete", explanation=expl)
            return
        wait = rule.window if rule.window_field is None else rule.window_field.get(x)
        if not isinstance(wait, (int, float)) or isinstance(wait, bool):
            return  # the first event gave no time to wait (no declared duration)
        deadline = q[0] + float(wait)
        values["span"] = human_duration(float(wait))
        values["window"] = values["span"]
        message = rule.output.render(
            x, {**values, "rule.id": rule.id, "rule.title": rule.title, "stage": "complete"}
        )
        ev = x.ev
        timer = [
            deadline,
            q[1],
            q[2],
            q[3],
            message,
            ev.event_id,
            ev.session.id,
            ev.session.seq,
            ev.actor.agent_id,
            ev.actor.workload_id,
            ev.actor.on_behalf_of,
        ]
        keys = self._keys(rule, x.session, True)
        assert keys is not None
        cur = keys.setdefault(self._key(rule, x), {"p": {}, "t": []})
        cur["t"].append(timer)
        del cur["t"][: max(0, len(cur["t"]) - MAX_TIMERS)]
        self._relive(rule, x.session)

    def _timers(self, rule: Rule, x: Subject, state: dict[str, Any], out: list[Finding]) -> None:
        ts = x.ctx.ts
        keep = []
        for t in state["t"]:
            if ts > t[0]:
                self._fire(rule, x.session, t, out)
            elif ts >= t[1] and any(c.fn(x) for c in rule.trailing):
                continue
            else:
                keep.append(t)
        state["t"] = keep

    def _fire(
        self, rule: Rule, session: SessionState, t: list[Any], out: list[Finding]
    ) -> Finding | None:
        return self._report(
            rule,
            None,
            out,
            t[2],
            {},
            "complete",
            message=t[4],
            session=session,
            sid=t[6],
            explanation={"rule": rule.id, "type": "absence", "deadline": t[0]},
        )

    def _seq_values(self, rule: Rule, q: list[Any]) -> dict[str, Any]:
        values = dict(q[4])
        values["span"] = human_duration(q[1] - q[0])
        values["window"] = human_duration(rule.window) if rule.window is not None else None
        values["sessions"] = len(set(q[3]))
        values["steps"] = len(q[2])
        return values

    @staticmethod
    def _seq_expl(rule: Rule, q: list[Any]) -> dict[str, Any]:
        names = [s.name for s in rule.positive]
        return {"rule": rule.id, "type": "sequence", "steps": dict(zip(names, q[2], strict=False))}

    # -- timers ---------------------------------------------------------------------------
    def next_deadline(self, session: SessionState) -> float | None:
        st = session.det.get(NAME)
        return st.get("deadline") if st is not None else None

    def on_tick(self, session: SessionState, now: float) -> list[tuple[Trigger, Finding]]:
        st = session.det.get(NAME)
        if st is None or st.get("deadline") is None or st["deadline"] >= now:
            return []
        fired: list[tuple[Trigger, Finding]] = []
        for rid in list(st["live"]):
            rule = self.ruleset.rules.get(rid)
            if rule is None or not rule.timed:
                continue
            keys = self._keys(rule, session, False) or {}
            for k, v in list(keys.items()):
                if k == "#":
                    continue
                keep = []
                for t in v["t"]:
                    if now > t[0]:
                        out: list[Finding] = []
                        self._fire(rule, session, t, out)
                        trig = Trigger(t[5], t[6], t[7], t[0], t[8], t[9], t[10])
                        fired.extend((trig, f) for f in out)
                    else:
                        keep.append(t)
                v["t"] = keep
                if not v["p"] and not v["t"]:
                    del keys[k]
            self._relive(rule, session)
        return fired


def _keep_newest(partials: dict[int, list[Any]], g: int, p: list[Any]) -> None:
    cur = partials.get(g)
    if cur is None or p[0] >= cur[0]:
        partials[g] = p
