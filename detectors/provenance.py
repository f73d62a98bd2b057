"""Provenance: a value from untrusted content flowing into a sensitive call.

Every steering value (address, account, URL, host, phone, path; :mod:`detectors.values`) that
enters a session is tagged with where it came from: the task text (``intent.task``: the user's
own words), or the output of a tool call (data someone else wrote). When a sensitive action
(payment, message send, egress, credential change, write, fetch of a destination, code
execution) carries in its arguments a value that came from tool output and not from the task,
the agent is acting on a destination it read rather than one it was given (OWASP ASI01/ASI02).

How bad that is depends on the source. An output that also carried instructions addressed to
the agent (``detectors.injection``), with this very value inside the instruction passage, is
near-certain evidence of a hijacked agent; an ordinary e-mail is weaker; an output of a call
the task itself pointed at ("pay the bill in bill.txt") is weaker still.

>>> from detectors.testing import ctx_for, new_session
>>> det = Provenance()
>>> s = new_session(task="Summarise my unread e-mails")
>>> _ = det.process(ctx_for(kind="session_start", task="Summarise my unread e-mails", seq=0), s)
>>> _ = det.process(ctx_for("get_unread_emails", output="From bob: the new IBAN is "
...                         "DE89370400440532013000", seq=1), s)
>>> f = det.process(ctx_for("send_money", arguments={"recipient": "DE89370400440532013000"},
...                         seq=2), s)
>>> f[0].explanation["values"][0]["origin_tool"], f[0].score
('get_unread_emails', 0.5)
"""

from __future__ import annotations

from typing import Any

from detectors import capabilities as C
from detectors import values
from detectors.base import EventContext, Finding
from detectors.scoring import action_for, mode_of, severity_for
from detectors.session import SessionState

#: How sensitive an action is, by capability (the highest applies).
CAPABILITY_WEIGHTS: dict[str, float] = {
    C.PAYMENT: 0.5,
    C.CREDENTIAL_CHANGE: 0.5,
    C.EGRESS: 0.45,
    C.SEND: 0.45,
    C.CODE_EXEC: 0.45,
    C.DESTRUCTIVE: 0.35,
    C.PROD_WRITE: 0.35,
    C.WRITE: 0.25,
    C.FETCH: 0.25,
}
_ADDRESS_KINDS = frozenset(
    {values.EMAIL, values.URL, values.HOST, values.IBAN, values.PHONE, values.ACCOUNT}
)


class Provenance:
    """Flags sensitive calls whose arguments carry values taken from tool output."""

    def __init__(
        self,
        name: str = "AW-PROV-001",
        injection_detector: str = "AW-INJ-001",
        untrusted_weight: float = 1.0,
        other_output_weight: float = 0.6,
        endorsed_weight: float = 0.3,
        unknown_origin_score: float = 0.1,
        alert_at: float = 0.6,
        kill_at: float = 0.9,
        max_values: int = 4096,
        mode: str = "enforce",
        tags: tuple[str, ...] = ("ASI01", "ASI02"),
        attacks: tuple[str, ...] = ("AML.T0051.001", "AML.T0086"),
    ) -> None:
        self.name = name
        self.injection_detector = injection_detector
        self.untrusted_weight = untrusted_weight
        self.other_output_weight = other_output_weight
        self.endorsed_weight = endorsed_weight
        self.unknown_origin_score = unknown_origin_score
        self.alert_at = alert_at
        self.kill_at = kill_at
        self.max_values = max_values
        self.mode = mode
        self.tags = tags
        self.attacks = attacks

    def _state(self, session: SessionState) -> dict[str, Any]:
        st: dict[str, Any] | None = session.det.get(self.name)
        if st is None:
            task = session.scope_of(session.root_id).task or ""
            st = {"task": task.lower(), "task_values": values.extract(task), "origins": {}}
            session.det[self.name] = st
        return st

    def _from_task(self, st: dict[str, Any], v: str) -> bool:
        return v in st["task_values"] or (len(v) >= 3 and v in st["task"])

    def process(self, ctx: EventContext, session: SessionState) -> list[Finding]:
        ev = ctx.event
        if ev.kind == "session_start" and ev.intent is not None and ev.intent.task:
            st = self._state(session)
            st["task"] = (st["task"] + "\n" + ev.intent.task.lower()).strip()
            st["task_values"] |= values.extract(ev.intent.task)
            return []
        tool = ev.tool
        if tool is None:
            return []
        st = self._state(session)
        args = values.argument_values(tool.arguments)
        found = self._judge(ctx, session, st, args) if args else []
        if tool.output:
            self._record(ctx, session, st, args)
        return found

    # -- recording where values came from -------------------------------------------------
    def _record(
        self,
        ctx: EventContext,
        session: SessionState,
        st: dict[str, Any],
        args: dict[str, tuple[str, str]],
    ) -> None:
        ev = ctx.event
        assert ev.tool is not None and ev.tool.output is not None
        inj: dict[str, Any] = session.det.get(self.injection_detector) or {}
        inj_score, inj_targets = 0.0, {}
        if ev.session.seq is not None:
            rec = inj.get("outputs", {}).get(ev.session.seq)
            if rec is not None and rec[1] == ev.event_id:
                inj_score, inj_targets = rec[0], rec[3]
        endorsed = any(self._from_task(st, v) for v in args)
        if endorsed:
            weight = self.endorsed_weight
        elif C.UNTRUSTED_INPUT in ctx.caps:
            weight = self.untrusted_weight
        else:
            weight = self.other_output_weight
        origins: dict[str, tuple[Any, ...]] = st["origins"]
        for v in values.extract(ev.tool.output):
            if self._from_task(st, v):
                continue
            prev = origins.get(v)
            hit = (ev.session.seq, ev.event_id, ev.tool.name, weight, inj_score, v in inj_targets)
            if prev is None or (hit[5], hit[4], hit[3]) > (prev[5], prev[4], prev[3]):
                origins[v] = hit
        if len(origins) > self.max_values:
            for k in list(origins)[: len(origins) - self.max_values]:
                del origins[k]

    # -- judging a call --------------------------------------------------------------------
    def _judge(
        self,
        ctx: EventContext,
        session: SessionState,
        st: dict[str, Any],
        args: dict[str, tuple[str, str]],
    ) -> list[Finding]:
        base = max((CAPABILITY_WEIGHTS.get(c, 0.0) for c in ctx.caps), default=0.0)
        if base <= 0.0:
            return []
        ev = ctx.event
        assert ev.tool is not None
        origins: dict[str, tuple[Any, ...]] = st["origins"]
        scored: list[tuple[float, str, str, str, tuple[Any, ...] | None]] = []
        for v, (arg, kind) in args.items():
            if self._from_task(st, v) or len(v) < 3:
                continue
            o = origins.get(v)
            if o is None:
                if kind in _ADDRESS_KINDS:
                    scored.append((self.unknown_origin_score * base * 2, v, arg, kind, None))
                continue
            _, _, _, weight, inj_score, in_passage = o
            s = base * weight
            if in_passage and inj_score > 0:
                floor = inj_score if weight <= self.endorsed_weight else 0.5 + 0.5 * inj_score
                s = max(s, floor)
            elif inj_score > 0:
                s = 1.0 - (1.0 - s) * (1.0 - 0.5 * inj_score * weight)
            scored.append((min(1.0, s), v, arg, kind, o))
        if not scored:
            return []
        scored.sort(key=lambda x: -x[0])
        score = round(scored[0][0], 4)
        evidence = tuple(
            dict.fromkeys([o[1] for _, _, _, _, o in scored if o is not None] + [ev.event_id])
        )
        top = scored[0]
        src = f"the output of {top[4][2]} (seq {top[4][0]})" if top[4] else "no earlier content"
        action = action_for(score, alert_at=self.alert_at, kill_at=self.kill_at)
        caps = sorted(c for c in ctx.caps if c in CAPABILITY_WEIGHTS)
        return [
            Finding(
                detector=self.name,
                title="Sensitive call uses a value taken from tool output",
                message=(
                    f"{ev.tool.name} ({', '.join(caps)}) in session {session.root_id} sends "
                    f"{top[2]}={top[1]!r}, which came from {src}, not from the task; "
                    f"score {score:.2f}."
                ),
                score=score,
                severity=severity_for(score, kill_at=self.kill_at),
                action=action,
                mode=mode_of(self.mode),
                evidence=evidence,
                tags=self.tags,
                attacks=self.attacks,
                key=self.name,
                stage="injected" if any(o is not None and o[5] for *_, o in scored) else None,
                explanation={
                    "tool": ev.tool.name,
                    "capabilities": caps,
                    "values": [
                        {
                            "value": v,
                            "argument": arg,
                            "kind": kind,
                            "score": round(s, 4),
                            "origin_tool": o[2] if o else None,
                            "origin_seq": o[0] if o else None,
                            "origin_injection": round(o[4], 4) if o else 0.0,
                            "in_injected_passage": bool(o[5]) if o else False,
                        }
                        for s, v, arg, kind, o in scored[:8]
                    ],
                },
            )
        ]
