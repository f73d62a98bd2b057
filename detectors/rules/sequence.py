"""Sequences: ordered steps within ``maxspan``, ``until``, missing steps, absences (timers).

A key's state is a :class:`~detectors.rules.matching.SeqKey`. A partial match is
``(steps matched, start, last, event ids, session ids, captures or None)`` (the event ids in
one ``bytes`` object, 16 bytes each, while they are UUIDs: ``detectors.history.add_id``; a
tuple of strings otherwise, and in checkpoints written before), kept at most one
per number of steps matched (the newest start wins: it has the most time left), the most
steps first. A sequence ending in a missing step becomes a timer when its positive steps are
in; the timer is cancelled by a matching event up to its deadline (inclusive) and fires on the
first event, or tick, strictly after it. A timer is ``(deadline, last, event ids, session ids,
captures, wait, fields, seq, agent, workload, on behalf of)``: what renders its message when
it fires (``fields``: the output's event fields as ``(name, value, ...)``, read when it was
set), not the message; the last event and session ids are the trigger's.

Most events of a session with a partial match or a timer change neither: they are checked
and the state is left as it was (no rewrite, no recount of the live rules and deadlines).
"""

from __future__ import annotations

from typing import Any

from detectors.base import Finding, Trigger
from detectors.history import NO_IDS, Ids, add_id, ids_of
from detectors.intern import canonical
from detectors.rules.fields import Subject
from detectors.rules.matching import (
    MAX_KEYS,
    MAX_TIMERS,
    NAME,
    Matcher,
    RuleKeys,
    RuleState,
    SeqKey,
    pairs,
)
from detectors.rules.model import Rule, human_duration
from detectors.session import SessionState


class SequenceMatcher(Matcher):
    """Adds sequence and absence matching (and timers) to the matcher."""

    # -- sequences ------------------------------------------------------------------------
    def _sequence(self, rule: Rule, x: Subject, out: list[Finding]) -> None:
        key = self._key(rule, x)
        keys = self._keys(rule, x.session, False)
        state: SeqKey | None = keys.get(key) if keys is not None else None
        ts = x.ctx.ts
        changed = False
        partials: tuple[tuple[Any, ...], ...] = ()
        if state is not None:
            if rule.until is not None and rule.until.fn(x):
                del keys[key]  # type: ignore[union-attr]
                self._relive(rule, x.session)
                return
            if state.t:
                changed = self._timers(rule, x, state, out)
            partials = state.p
        moved: dict[int, tuple[Any, ...]] = {}
        matched = False
        for p in partials:  # the most steps matched first
            g = p[0]
            if rule.window is not None and ts - p[1] > rule.window:
                changed = True
                continue
            if ts >= p[2] and any(c.fn(x) for c in rule.guards[g]):
                changed = True
                continue
            step = rule.positive[g]
            if ts >= p[2] and step.cond.fn(x) and not self._excepted(rule, x):
                changed = True
                got = _shared_captures(_join(p[5], self._capture(rule, step.name, x)))
                q = (g + 1, p[1], ts, *_with(p[3], p[4], x.ev.event_id, x.sid), got)
                if g + 1 == len(rule.positive):
                    self._complete(rule, x, q, out)
                    matched = True
                    break
                _keep_newest(moved, q)
                self._early(rule, x, q, out)
            else:
                _keep_newest(moved, p)
        if matched:
            moved = {}
        elif rule.positive[0].cond.fn(x) and not self._excepted(rule, x):
            changed = True
            first = rule.positive[0].name
            got = _shared_captures(self._capture(rule, first, x))
            q = (1, ts, ts, *_with(NO_IDS, (), x.ev.event_id, x.sid), got)
            if len(rule.positive) == 1:
                self._complete(rule, x, q, out)
            else:
                _keep_newest(moved, q)
                self._early(rule, x, q, out)
        if changed:
            self._store(rule, x, key, moved, state)

    def _sequence_idle(self, rule: Rule, x: Subject, out: list[Finding], st: RuleState) -> None:
        """:meth:`_sequence` for an event none of the rule's conditions can meet (see
        ``Batch.idle``): only time can change the key's state, a timer coming due or a partial
        match expiring, and most such events find neither and change nothing."""
        keys: RuleKeys | None = st.r.get(rule.id)
        if keys is None:
            return
        if keys.shape != rule.shape:  # changed in a reload: the full path drops the state
            self._sequence(rule, x, out)
            return
        state: SeqKey | None = keys.get(x.sid if rule.by == "session" else "*")
        if state is None:
            return
        ts = x.ctx.ts
        window = rule.window
        if any(ts > t[0] for t in state.t) or (
            window is not None and any(ts - p[1] > window for p in state.p)
        ):
            self._sequence(rule, x, out)

    def _store(
        self,
        rule: Rule,
        x: Subject,
        key: str,
        partials: dict[int, tuple[Any, ...]],
        state: SeqKey | None,
    ) -> None:
        keys = self._keys(rule, x.session, bool(partials) or state is not None)
        if keys is None:
            return
        cur = keys.get(key) or state or SeqKey()
        cur.p = tuple(sorted(partials.values(), key=_most_steps_first))
        if cur.p or cur.t:
            if key not in keys:
                keys[key] = cur
                while sum(1 for k in keys if k != "#") > MAX_KEYS:
                    del keys[next(k for k in keys if k != "#")]
        else:
            keys.pop(key, None)
        self._relive(rule, x.session)

    def _relive(self, rule: Rule, session: SessionState) -> None:
        """Keep ``live`` (rules with partial matches) and the timer deadline up to date."""
        st = self._state(session)
        keys = self._keys(rule, session, False) or _NO_KEYS
        if any(k != "#" and (v.p or v.t) for k, v in keys.items()):
            st.add_live(rule.id)
        else:
            st.drop_live(rule.id)
        deadlines = [
            t[0]
            for rid in st.live
            for k, v in (st.r.get(rid) or _NO_KEYS).items()
            if k != "#"
            for t in v.t
        ]
        st.deadline = min(deadlines) if deadlines else None

    def _early(self, rule: Rule, x: Subject, q: tuple[Any, ...], out: list[Finding]) -> None:
        got = q[0]
        if rule.early is None or got < rule.early.after:
            return
        eids = ids_of(q[3])
        values = self._seq_values(rule, q[1], q[2], eids, q[4], q[5])
        stage = f"{got}/{len(rule.positive)} {rule.positive[got - 1].name}"
        expl = self._seq_expl(rule, eids)
        self._report(rule, x, out, eids, values, stage, early=True, explanation=expl)

    def _complete(self, rule: Rule, x: Subject, q: tuple[Any, ...], out: list[Finding]) -> None:
        _, start, last, ids, sids, captures = q
        if not rule.trailing:
            eids = ids_of(ids)
            values = self._seq_values(rule, start, last, eids, sids, captures)
            expl = self._seq_expl(rule, eids)
            self._report(rule, x, out, eids, values, "complete", explanation=expl)
            return
        wait = rule.window if rule.window_field is None else rule.window_field.get(x)
        if not isinstance(wait, (int, float)) or isinstance(wait, bool):
            return  # the first event gave no time to wait (no declared duration)
        ev = x.ev
        m = x.member
        agent = ev.actor.agent_id
        if m is not None and m.agent_id == agent:
            agent = m.agent_id  # the member's string, not the event's copy
        fields = tuple(_shared(v, (x.sid, agent)) for v in rule.output.read(x))  # names too
        timer = (
            start + float(wait),
            last,
            ids,  # as the partial kept them
            sids,
            captures,
            wait,
            fields,
            ev.session.seq,
            agent,
            ev.actor.workload_id,
            ev.actor.on_behalf_of,
        )
        keys = self._keys(rule, x.session, True)
        assert keys is not None
        key = self._key(rule, x)
        cur = keys.get(key)
        if cur is None:
            cur = keys[key] = SeqKey()
        cur.t = (*cur.t, timer)[-MAX_TIMERS:]
        self._relive(rule, x.session)

    def _timers(self, rule: Rule, x: Subject, state: SeqKey, out: list[Finding]) -> bool:
        """Fire the key's timers that are due and cancel those the event meets; whether any
        went."""
        ts = x.ctx.ts
        keep = []
        for t in state.t:
            if ts > t[0]:
                self._fire(rule, x.session, t, out)
            elif ts >= t[1] and any(c.fn(x) for c in rule.trailing):
                continue
            else:
                keep.append(t)
        if len(keep) == len(state.t):
            return False
        state.t = tuple(keep)
        return True

    def _fire(
        self, rule: Rule, session: SessionState, t: tuple[Any, ...], out: list[Finding]
    ) -> Finding | None:
        return self._report(
            rule,
            None,
            out,
            ids_of(t[2]),
            {},
            "complete",
            message=self._timer_message(rule, t),
            session=session,
            sid=t[3][-1],
            explanation={"rule": rule.id, "type": "absence", "deadline": t[0]},
        )

    def _timer_message(self, rule: Rule, t: tuple[Any, ...]) -> str:
        """A timer's alert message: rendered now from what it kept, exactly as it would have
        been when it was set (the event fields were read then; the rest follows from them)."""
        _, last, eids, sids, captures, wait, fields = t[:7]
        if isinstance(fields, str):
            return fields  # a timer from an earlier checkpoint: rendered when it was set
        values = self._seq_values(rule, 0.0, 0.0, ids_of(eids), sids, captures)
        values["span"] = values["window"] = human_duration(float(wait))
        values.update({"rule.id": rule.id, "rule.title": rule.title, "stage": "complete"})
        return rule.output.fill(fields, values)

    def _seq_values(
        self,
        rule: Rule,
        start: float,
        last: float,
        eids: tuple[str, ...],
        sids: tuple[str, ...],
        captures: tuple[Any, ...] | None,
    ) -> dict[str, Any]:
        values = dict(pairs(captures)) if captures else {}
        values["span"] = human_duration(last - start)
        values["window"] = human_duration(rule.window) if rule.window is not None else None
        values["sessions"] = len(set(sids))
        values["steps"] = len(eids)
        return values

    @staticmethod
    def _seq_expl(rule: Rule, eids: tuple[str, ...]) -> dict[str, Any]:
        names = [s.name for s in rule.positive]
        return {"rule": rule.id, "type": "sequence", "steps": dict(zip(names, eids, strict=False))}

    # -- timers ---------------------------------------------------------------------------
    def next_deadline(self, session: SessionState) -> float | None:
        st: RuleState | None = session.det.get(NAME)
        return st.deadline if st is not None else None

    def on_tick(self, session: SessionState, now: float) -> list[tuple[Trigger, Finding]]:
        st: RuleState | None = session.det.get(NAME)
        if st is None or st.deadline is None or st.deadline >= now:
            return []
        fired: list[tuple[Trigger, Finding]] = []
        for rid in list(st.live):
            rule = self.ruleset.rules.get(rid)
            if rule is None or not rule.timed:
                continue
            keys = self._keys(rule, session, False) or _NO_KEYS
            for k, v in keys.items():
                if k == "#":
                    continue
                keep = []
                for t in v.t:
                    if now > t[0]:
                        out: list[Finding] = []
                        self._fire(rule, session, t, out)
                        trig = Trigger(ids_of(t[2])[-1], t[3][-1], t[7], t[0], t[8], t[9], t[10])
                        fired.extend((trig, f) for f in out)
                    else:
                        keep.append(t)
                v.t = tuple(keep)
                if not v.p and not v.t:
                    del keys[k]
            self._relive(rule, session)
        return fired


#: what a rule with no state in a session has
_NO_KEYS = RuleKeys("")


def _most_steps_first(p: tuple[Any, ...]) -> int:
    return -int(p[0])


def _join(a: tuple[Any, ...] | None, b: tuple[Any, ...] | None) -> tuple[Any, ...] | None:
    """Captures of earlier steps and of this one (a step's names are its own)."""
    if not b:
        return a
    return b if not a else a + b


#: the event and session ids the last partial match was given, and what it kept of them: the
#: next one made of the same (several rules start or advance on one event) shares them
_LAST: list[Any] = [None, None, NO_IDS, None, None, ()]


def _with(ids: Ids, sids: tuple[str, ...], eid: str, sid: str) -> tuple[Ids, tuple[str, ...]]:
    """A partial match's event ids and session ids with one more step's: the very objects
    the last partial match made of the same ones, if it did (one copy for every rule)."""
    c = _LAST
    if c[0] is ids and c[1] is eid:
        new_ids = c[2]
    else:
        new_ids = add_id(ids, eid)
        c[0], c[1], c[2] = ids, eid, new_ids
    if c[3] is sids and c[4] is sid:
        new_sids = c[5]
    else:
        new_sids = (*sids, sid)
        c[3], c[4], c[5] = sids, sid, new_sids
    return new_ids, new_sids


def _shared_captures(captures: tuple[Any, ...] | None) -> tuple[Any, ...] | None:
    """The one shared copy of captures made of strings (tool names, destinations: sessions of
    one agent capture the same); others as they are (``1``, ``1.0`` and ``True`` are equal
    keys, and would render differently)."""
    if captures is None or not all(type(v) is str for v in captures):
        return captures
    return canonical(captures)


def _shared(value: Any, pool: tuple[str, ...]) -> Any:
    """``value``, or the equal string the timer already holds: a timer keeps the session and
    agent ids anyway, and its output mostly names them (saves a copy of each)."""
    if type(value) is str:
        for s in pool:
            if value == s:
                return s
    return value


def _keep_newest(partials: dict[int, tuple[Any, ...]], p: tuple[Any, ...]) -> None:
    cur = partials.get(p[0])
    if cur is None or p[1] >= cur[1]:
        partials[p[0]] = p
