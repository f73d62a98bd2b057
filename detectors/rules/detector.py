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

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from detectors.base import EventContext, Finding
from detectors.rules.compile import Source
from detectors.rules.fields import Subject, issued_expiry
from detectors.rules.loader import load_rules, load_sources
from detectors.rules.matching import (
    MAX_CREDS,
    MAX_DESTS,
    NAME,
    REPORT_FIRST,
    RuleState,
    RuleStats,
)
from detectors.rules.model import Rule, RuleSet
from detectors.rules.sequence import SequenceMatcher
from detectors.session import SessionState
from detectors.smallmap import SmallMap

#: what a session without rule state has (read only)
_NOTHING: SmallMap = SmallMap()

__all__ = ["REPORT_FIRST", "RuleDetector", "RuleStats"]


class RuleDetector(SequenceMatcher):
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
        cls = ctx.cls
        batch = rs.batch(ctx.event.kind, cls.capabilities)
        st: RuleState | None = session.det.get(NAME)
        live: tuple[str, ...] = st.live if st is not None else ()
        out: list[Finding] = []
        if batch.rules or live:
            x = Subject(ctx, session, st.facts if st is not None else _NOTHING)
            self.stats.batches[batch] += 1
            fire = batch.fire
            if fire is not None and fire(x):  # an event rule matches: the plan in order
                for rule, cond in batch.plan:
                    if cond is not None:  # an event rule (never live)
                        if cond(x) and not (rule.exception is not None and self._excepted(rule, x)):
                            self._report(rule, x, out, (x.ev.event_id,), {}, None)
                    elif rule.id not in live:  # a live sequence runs below
                        self._eval(rule, x, out)
            else:  # most events: no event rule matches (conditions are pure: checked once)
                for rule in batch.rest:
                    if rule.id not in live:
                        self._eval(rule, x, out)
            # the rules live now: a candidate may have started a partial match just above
            if st is not None and st.live:
                views, idle = batch.views, batch.idle
                for rid in st.live:
                    seq = views.get(rid)  # every enabled sequence has a view
                    if seq is None or seq.type != "sequence":
                        # the rule went away in a reload: so does its state
                        st.drop_live(rid)
                        st.r.pop(rid, None)
                        continue
                    if rid not in batch.ids:  # counted with its batch otherwise
                        self.stats.live[rid] += 1
                    if rid in idle:
                        self._sequence_idle(seq, x, out, st)
                    else:
                        self._sequence(seq, x, out)
        if cls.destinations or batch.issues:
            self._remember(ctx, session)
        return out

    def _remember(self, ctx: EventContext, session: SessionState) -> None:
        """Facts later rules ask about: destinations used, credentials issued."""
        ev = ctx.event
        dests = ctx.cls.destinations
        issued = ev.credential_issued if ev.kind == "credential_issued" else None
        if not dests and (issued is None or not issued.jti):
            return
        facts = self._state(session).facts
        if dests:
            seen: tuple[str, ...] = facts.get("dests", ())
            for d in dests:
                low = d.lower()
                if low not in seen:
                    seen += (low,)
            facts["dests"] = seen[-MAX_DESTS:]
        if issued is not None and issued.jti:
            creds = facts.get("issued")
            if creds is None:
                creds = facts["issued"] = SmallMap()
            exp = issued_expiry(issued, ctx.ts)
            creds[issued.jti] = (issued.bound_session_id or ev.session.id, exp)
            while len(creds) > MAX_CREDS:
                del creds[next(iter(creds))]

    def _eval(self, rule: Rule, x: Subject, out: list[Finding]) -> None:
        if rule.type == "count":
            self._count(rule, x, out)
        elif rule.type == "combination":
            self._combination(rule, x, out)
        else:
            self._sequence(rule, x, out)
