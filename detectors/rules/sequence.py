"""Sequences: ordered steps within ``maxspan``, ``until``, missing steps, absences (timers).

A partial match is ``[start, last, event ids, session ids, captures or None]``, kept at most one
per number of steps matched (the newest start wins: it has the most time left). A sequence
ending in a missing step becomes a timer when its positive steps are in; the timer is
cancelled by a matching event up to its deadline (inclusive) and fires on the first event,
or tick, strictly after it.
"""

from __future__ import annotations

from typing import Any

from detectors.base import Finding, Trigger
from detectors.rules.fields import Subject
from detectors.rules.matching import MAX_KEYS, MAX_TIMERS, NAME, Matcher, RuleState
from detectors.rules.model import Rule, human_duration
from detectors.session import SessionState
from detectors.smallmap import SmallMap


class SequenceMatcher(Matcher):
    """Adds sequence and absence matching (and timers) to the matcher."""

    # -- sequences ------------------------------------------------------------------------
    def _sequence(self, rule: Rule, x: Subject, out: list[Finding]) -> None:
        key = self._key(rule, x)
        keys = self._keys(rule, x.session, False)
        state: SmallMap | None = keys.get(key) if keys is not None else None
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
                got = dict(p[4] or ())
                got.update(self._capture(rule, step.name, x) or ())
                q = [p[0], ts, [*p[2], x.ev.event_id], [*p[3], x.ev.session.id], got or None]
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
            q = [ts, ts, [x.ev.event_id], [x.ev.session.id], self._capture(rule, first, x)]
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
        state: SmallMap | None,
    ) -> None:
        keys = self._keys(rule, x.session, bool(partials) or state is not None)
        if keys is None:
            return
        cur = keys.get(key) or state or _new_key()
        cur["p"] = SmallMap(partials)
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
        keys = self._keys(rule, session, False) or _NO_KEYS
        if any(k != "#" and (v["p"] or v["t"]) for k, v in keys.items()):
            st.add_live(rule.id)
        else:
            st.drop_live(rule.id)
        deadlines = [
            t[0]
            for rid in st.live
            for k, v in (st.r.get(rid) or (None, _NO_KEYS))[1].items()
            if k != "#"
            for t in v["t"]
        ]
        st.deadline = min(deadlines) if deadlines else None

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
        timer = (
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
        )
        keys = self._keys(rule, x.session, True)
        assert keys is not None
        cur = keys.get(self._key(rule, x))
        if cur is None:
            cur = keys[self._key(rule, x)] = _new_key()
        cur["t"].append(timer)
        del cur["t"][: max(0, len(cur["t"]) - MAX_TIMERS)]
        self._relive(rule, x.session)

    def _timers(self, rule: Rule, x: Subject, state: SmallMap, out: list[Finding]) -> None:
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
        self, rule: Rule, session: SessionState, t: tuple[Any, ...], out: list[Finding]
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
        values = dict(q[4] or ())
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


#: what a rule with no state in a session has
_NO_KEYS = SmallMap()


def _new_key() -> SmallMap:
    """A sequence's state for one key: partial matches (by steps matched) and timers."""
    return SmallMap((("p", SmallMap()), ("t", [])))


def _keep_newest(partials: dict[int, list[Any]], g: int, p: list[Any]) -> None:
    cur = partials.get(g)
    if cur is None or p[0] >= cur[0]:
        partials[g] = p
