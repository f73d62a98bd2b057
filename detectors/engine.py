"""The detection engine: one event in, decisions out.

For each event (in session order) the engine classifies it with the tool catalog, updates the
delegation tree and scopes, calls every detector, folds their findings into the session's
alerts (one per key, updated rather than repeated) and its fused risk, and decides:

* an :class:`AlertDecision` each time an alert is created or brings something new;
* at most one :class:`KillDecision` per root session: when a finding asks for
  ``kill_session`` in enforce mode, or when the fused risk reaches the agent's kill threshold.

The engine is pure (no I/O, no clock): the same events give the same decisions in the worker,
in ``agentwatch score`` and in replay.
"""

from __future__ import annotations

import copy
import dataclasses
import pickle
from collections.abc import Sequence
from dataclasses import dataclass

from detectors.alerting import AlertState, apply_finding
from detectors.base import (
    Detector,
    EventContext,
    Finding,
    Learner,
    Timed,
    Trigger,
    is_session_aware,
)
from detectors.catalog import ToolCatalog
from detectors.fusion import FusionPolicy
from detectors.history import StepLog
from detectors.intern import canonical
from detectors.session import (
    MAX_ALERTS,
    MAX_CONTRIBUTIONS,
    Member,
    Scope,
    SessionState,
    slot_of,
)
from schemas.events import ActionEvent
from schemas.signals import set_jti

RISK_KEY = "AW-RISK-001"


@dataclass(frozen=True, slots=True)
class Identity:
    """Who the decision is about (for the alert's actor and the kill signal's subject)."""

    tenant: str | None
    root_session_id: str
    session_id: str
    agent_id: str
    workload_id: str | None
    credential_iss: str | None
    credential_jti: str | None
    on_behalf_of: str | None


@dataclass(frozen=True, slots=True)
class AlertDecision:
    """Emit (create or update) this alert."""

    alert: AlertState
    who: Identity
    risk: float


@dataclass(frozen=True, slots=True)
class KillDecision:
    """Revoke this session (one per root session and decision)."""

    jti: str
    alert_uid: str
    detector: str
    who: Identity
    reason: str
    event_ts: float
    trigger_event_id: str
    trigger_seq: int | None
    risk: float


Decision = AlertDecision | KillDecision


def _contribution(f: Finding) -> tuple[float, str, str]:
    """(score, mode, detector) of a finding: one shared copy of each (sessions repeat the same
    few), but for a score whose value does not say its type or sign (ints, zeros)."""
    c = (f.score, f.mode, f.detector)
    return canonical(c) if type(f.score) is float and f.score != 0.0 else c


def _forget_alert(session: SessionState, keep: str) -> None:
    """Make room in the session's alerts (at most ``MAX_ALERTS``): forget the oldest that
    neither killed nor is the risk alert nor ``keep`` (the one being written)."""
    alerts = session.alerts
    doomed = next(
        (
            k
            for k, a in alerts.items()
            if k != keep and k != RISK_KEY and a.kill_jti is None and a.response != "kill_session"
        ),
        None,
    )
    if doomed is not None:
        del alerts[doomed]


class Engine:
    """Runs detectors over events of one root session at a time."""

    def __init__(
        self,
        detectors: Sequence[Detector],
        catalog: ToolCatalog | None = None,
        policy: FusionPolicy | None = None,
    ) -> None:
        self.detectors = list(detectors)
        self.catalog = catalog or ToolCatalog()
        self.policy = policy or FusionPolicy()
        #: detector states a session makes room for: one slot per detector (its position is
        #: its name's, ``session.slot_of``; each detector asks for its own when built)
        self._states = max((slot_of(d.name) for d in self.detectors), default=-1) + 1
        # isinstance() on a runtime-checkable Protocol is slow: decide once, not per event
        self._timed = [d for d in self.detectors if isinstance(d, Timed)]
        #: the earliest timer deadline of the session :meth:`process` last ran on, as it left
        #: it (so the pipeline need not ask the timed detectors again)
        self.due: float | None = None
        #: the last context built: the worker asks for an event's context again (to store its
        #: capabilities) right after processing it, and it costs ~10 µs to rebuild
        self._last_ctx: EventContext | None = None

    # -- per event ------------------------------------------------------------------------
    def context(self, event: ActionEvent, *, late: bool = False) -> EventContext:
        last = self._last_ctx
        if last is not None and last.event is event and last.late is late:
            return last
        ctx = EventContext(event=event, cls=self.catalog.classify(event), ts=event.ts, late=late)
        self._last_ctx = ctx
        return ctx

    def new_session(self, event: ActionEvent) -> SessionState:
        return SessionState(
            event.root_session_id, event.tenant, event.actor.agent_id, states=self._states
        )

    def process(self, ctx: EventContext, session: SessionState) -> list[Decision]:
        """Run every detector on one event and return the decisions it leads to."""
        m = self._before(ctx, session)
        findings: list[Finding] | None = None  # most events find nothing: no list for them
        for det in self.detectors:
            out = det.process(ctx, session)
            if out:
                if findings is None:
                    findings = []
                findings.extend(out)
        self._after(ctx, session, m)
        decisions = (
            self._decide(ctx, session, findings or [])
            if findings or session.contributions
            else []  # nothing found and no risk so far: nothing to decide
        )
        due = None
        if self._timed:
            due = self.next_deadline(session)
            if due is not None and due < ctx.ts:
                # this event's time passed a timer of another session of the tree: fire it
                decisions.extend(self.tick(session, ctx.ts))
                due = self.next_deadline(session)
        self.due = due
        return decisions

    def tick(self, session: SessionState, now: float) -> list[Decision]:
        """Event time reached ``now`` for this session: fire the timers that are due."""
        out: list[Decision] = []
        for det in self._timed:
            for trigger, finding in det.on_tick(session, now):  # type: ignore[attr-defined]
                out.extend(self._decide(trigger, session, [finding]))
        return out

    def next_deadline(self, session: SessionState) -> float | None:
        """The earliest event time at which a timer of this session is due (None: no timer)."""
        due = None
        for det in self._timed:
            d = det.next_deadline(session)  # type: ignore[attr-defined]
            if d is not None and (due is None or d < due):
                due = d
        return due

    def close(self, session: SessionState) -> None:
        """The root session ended or was evicted: let learners learn from it."""
        flagged = session.flagged or session.killed
        for det in self.detectors:
            if is_session_aware(det):
                det.on_session_close(session, flagged=flagged)

    # -- learned state (checkpointed by the worker) ---------------------------------------
    def learned_state(self) -> bytes:
        """Every learning detector's learned state, pickled (detector name -> state)."""
        states = {d.name: d.learned_state() for d in self.detectors if isinstance(d, Learner)}
        return pickle.dumps(states, protocol=pickle.HIGHEST_PROTOCOL)

    def load_learned_state(self, blob: bytes) -> None:
        """Restore what :meth:`learned_state` saved (detectors it does not name keep theirs)."""
        states = pickle.loads(blob)
        for d in self.detectors:
            if isinstance(d, Learner) and d.name in states:
                d.load_learned_state(states[d.name])

    # -- bookkeeping ----------------------------------------------------------------------
    def _before(self, ctx: EventContext, session: SessionState) -> Member:
        """Update the delegation tree and scopes; the member the event is about."""
        ev = ctx.event
        sref = ev.session
        m = session.member(sref.id, ev.actor.agent_id)
        if sref.parent_id and not m.parent_id and sref.parent_id != sref.id:
            m.parent_id = sref.parent_id
            parent = session.members.get(sref.parent_id)
            if parent is not None and not m.scope.declared:
                m.scope = parent.scope
        workload = ev.actor.workload_id
        if workload and workload != m.workload_id:
            m.workload_id = canonical(workload)  # one copy for every session of the workload
        cred = ev.actor.credential
        if cred is not None and cred.jti and cred.jti != m.credential_jti:
            m.credential_iss, m.credential_jti = canonical(cred.iss), cred.jti
        if session.started_ts is None or ctx.ts < session.started_ts:
            session.started_ts = ctx.ts
        if ev.kind == "session_start":
            m.started_ts = ctx.ts
            own = Scope.from_intent(ev.intent)
            parent = session.members.get(m.parent_id) if m.parent_id else None
            m.scope = parent.scope.narrowed_by(own) if parent is not None else own
        elif ev.kind == "delegation" and ev.delegation is not None:
            d = ev.delegation
            if d.child_session_id and d.child_session_id != sref.id:
                child = session.member(d.child_session_id, d.child_agent_id or ev.actor.agent_id)
                child.parent_id = sref.id
                if d.child_agent_id:
                    child.agent_id = d.child_agent_id
                child.granted_scopes = tuple(d.scopes_granted) if d.scopes_granted else None
                child.scope = m.scope.narrowed_by(child.scope) if child.scope.declared else m.scope
        return m

    def _after(self, ctx: EventContext, session: SessionState, m: Member | None = None) -> None:
        """Record the step; ``m``: the member :meth:`_before` returned (looked up if not)."""
        ev = ctx.event
        if m is None:
            m = session.members[ev.session.id]
        log = session.log
        if log is None:
            log = session.log = StepLog(session.max_steps)
        seq = ev.session.seq
        ts = ctx.ts
        tool = ev.tool
        log.add(
            seq,
            ts,
            m.session_id,  # the tree's copy of the id: the event's would be one more
            ev.kind,
            tool.name if tool is not None else None,
            ctx.caps,
            ev.event_id,
            ctx.cls.destination,
        )
        session.event_count += 1
        if session.last_ts is None or ts > session.last_ts:
            session.last_ts = ts
        if seq is not None and seq > m.last_seq:
            m.last_seq = seq
        if ev.kind == "session_end":
            m.ended_ts = ctx.ts
            if ev.session.id == session.root_id:
                session.ended = True

    def identity(self, ctx: EventContext | Trigger, session: SessionState) -> Identity:
        t = Trigger.of(ctx) if isinstance(ctx, EventContext) else ctx
        m = session.members.get(t.session_id)
        root = session.members.get(session.root_id)
        cred_src = m if m is not None and m.credential_jti else root
        return Identity(
            tenant=session.tenant,
            root_session_id=session.root_id,
            session_id=t.session_id,
            agent_id=t.agent_id,
            workload_id=(m.workload_id if m is not None else None) or t.workload_id,
            credential_iss=cred_src.credential_iss if cred_src is not None else None,
            credential_jti=cred_src.credential_jti if cred_src is not None else None,
            on_behalf_of=t.on_behalf_of,
        )

    # -- decisions ------------------------------------------------------------------------
    def _quiet(self, session: SessionState) -> bool:
        """With no new finding, whether the session's risk (updated here) leads to nothing: no
        risk alert to raise or update (what :meth:`_decide` would conclude, without the
        trigger it would build)."""
        risk = self.policy.combine(session.contributions)
        session.risk = risk
        if session.killed:
            return True
        shadow_risk = self.policy.combine(session.contributions, mode="shadow")
        return self._risk_call(session, risk, shadow_risk)[0] is None

    def _risk_call(
        self, session: SessionState, risk: float, shadow_risk: float
    ) -> tuple[str | None, float, float, float]:
        """What the session's risk calls for: ``"fused"`` (raise or update its risk alert at
        the fused risk), ``"shadow"`` (report what shadow-mode detectors would have done) or
        ``None``; with the fused risk and the agent's alert and kill thresholds."""
        alert_t, kill_t = self.policy.thresholds(session.agent_id)
        fused = max(risk, shadow_risk) if self.policy.mode == "shadow" else risk
        if fused >= alert_t and (fused >= kill_t or not session.alerts):
            return "fused", fused, alert_t, kill_t
        if shadow_risk >= kill_t and RISK_KEY not in session.alerts:
            return "shadow", fused, alert_t, kill_t
        return None, fused, alert_t, kill_t

    def _decide(
        self, ctx: Trigger | EventContext, session: SessionState, findings: list[Finding]
    ) -> list[Decision]:
        """The decisions of these findings (and of the session's risk) on ``ctx``: the event
        (its :class:`Trigger` is built only when a decision needs it) or a timer's trigger."""
        if not findings and (not session.contributions or self._quiet(session)):
            return []
        if type(ctx) is EventContext:
            ctx = Trigger.of(ctx)
        assert isinstance(ctx, Trigger)
        out: list[Decision] = []
        who: Identity | None = None
        kill_alert: AlertState | None = None
        kill_finding: Finding | None = None
        for f in findings:
            mode = self.policy.mode_of(f.detector, f.mode)
            if mode != f.mode:
                f = dataclasses.replace(f, mode=mode)
            prev = session.contributions.get(f.alert_key)
            if prev is None or f.score > prev[0]:
                contributions = session.own_contributions()
                contributions[f.alert_key] = _contribution(f)
                if prev is None and len(contributions) > MAX_CONTRIBUTIONS:
                    weakest = min(contributions.items(), key=lambda kv: kv[1][0])[0]
                    del contributions[weakest]
            if f.action == "observe":
                continue
            emitted = apply_finding(
                session.own_alerts(),
                f,
                tenant=session.tenant,
                root_session_id=session.root_id,
                session_id=ctx.session_id,
                trigger_event_id=ctx.event_id,
                trigger_seq=ctx.seq,
                ts=ctx.ts,
            )
            if len(session.alerts) > MAX_ALERTS:
                _forget_alert(session, f.alert_key)
            alert = session.alerts[f.alert_key]
            if f.action == "kill_session":
                alert.response = "kill_session"
                if f.mode == "enforce" and kill_finding is None and not session.killed:
                    kill_alert, kill_finding = alert, f
            if emitted is not None:
                who = who or self.identity(ctx, session)
                out.append(AlertDecision(copy.copy(emitted), who, 0.0))

        risk = self.policy.combine(session.contributions)
        shadow_risk = self.policy.combine(session.contributions, mode="shadow")
        session.risk = risk

        if kill_alert is None and not session.killed:
            call, fused, alert_t, kill_t = self._risk_call(session, risk, shadow_risk)
            if call == "fused":
                risk_alert = self._risk_alert(ctx, session, fused, alert_t, kill_t)
                if risk_alert is not None:
                    who = who or self.identity(ctx, session)
                    out.append(AlertDecision(copy.copy(risk_alert), who, risk))
                if fused >= kill_t:
                    alert = session.alerts[RISK_KEY]
                    alert.response = "kill_session"
                    alert.mode = self.policy.mode
                    if self.policy.mode == "enforce" and risk >= kill_t:
                        kill_alert = alert
            elif call == "shadow":
                # What the shadow-mode detectors would have done: reported, never enforced.
                risk_alert = self._risk_alert(ctx, session, shadow_risk, alert_t, kill_t)
                if risk_alert is not None:
                    risk_alert.mode = "shadow"
                    risk_alert.response = "kill_session"
                    who = who or self.identity(ctx, session)
                    out.append(AlertDecision(copy.copy(risk_alert), who, risk))

        if kill_alert is not None and not session.killed:
            who = who or self.identity(ctx, session)
            jti = set_jti(kill_alert.uid)
            session.kill_jti = jti
            session.kill_ts = ctx.ts
            kill_alert.kill_jti = jti
            kill_alert.response = "kill_session"
            kill_alert.trigger_event_id = ctx.event_id
            kill_alert.trigger_seq = ctx.seq
            kill_alert.risk = risk
            out = [
                d
                for d in out
                if not (isinstance(d, AlertDecision) and d.alert.uid == kill_alert.uid)
            ]
            out.append(AlertDecision(copy.copy(kill_alert), who, risk))
            out.append(
                KillDecision(
                    jti=jti,
                    alert_uid=kill_alert.uid,
                    detector=kill_alert.detector,
                    who=who,
                    reason=f"agentwatch {kill_alert.detector}: {kill_alert.message}",
                    event_ts=ctx.ts,
                    trigger_event_id=ctx.event_id,
                    trigger_seq=ctx.seq,
                    risk=risk,
                )
            )
        for d in out:
            if isinstance(d, AlertDecision):
                d.alert.risk = risk
                session.alerts[d.alert.key].risk = risk
        return out

    def _risk_alert(
        self, ctx: Trigger, session: SessionState, risk: float, alert_t: float, kill_t: float
    ) -> AlertState | None:
        parts = sorted(session.contributions.items(), key=lambda kv: -kv[1][0])
        evidence: list[str] = []
        for key, _ in parts:
            a = session.alerts.get(key)
            if a is not None:
                evidence.extend(e for e in a.evidence if e not in evidence)
        if ctx.event_id not in evidence:
            evidence.append(ctx.event_id)
        names = ", ".join(f"{k} ({s:.2f})" for k, (s, _, _) in parts[:5])
        over = "kill" if risk >= kill_t else "alert"
        finding = Finding(
            detector=RISK_KEY,
            title="Session risk over the " + over + " threshold",
            message=(
                f"Session {session.root_id} of {session.agent_id} reached risk {risk:.2f} "
                f"(alert {alert_t:.2f}, kill {kill_t:.2f}) from {names}."
            ),
            score=risk,
            severity="critical" if risk >= kill_t else "high",
            action="kill_session" if risk >= kill_t else "alert",
            mode=self.policy.mode,
            evidence=tuple(evidence),
            key=RISK_KEY,
            stage=over,
            explanation={"contributions": {k: round(s, 4) for k, (s, _, _) in parts}},
        )
        if len(session.alerts) >= MAX_ALERTS and RISK_KEY not in session.alerts:
            _forget_alert(session, RISK_KEY)
        return apply_finding(
            session.own_alerts(),
            finding,
            tenant=session.tenant,
            root_session_id=session.root_id,
            session_id=ctx.session_id,
            trigger_event_id=ctx.event_id,
            trigger_seq=ctx.seq,
            ts=ctx.ts,
        )
