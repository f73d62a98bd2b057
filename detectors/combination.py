"""Toxic combinations: a set of capabilities in one session (or delegation tree), any order.

The canonical one (the "lethal trifecta" for credentials): secret retrieval + production
write + external export in one root session, within a window. Each capability's latest
occurrence is kept, so late or out-of-order events still complete the set.

>>> det = ToxicCombination()
>>> det.name
'AW-COMBO-001'
"""

from __future__ import annotations

from collections.abc import Iterable

from detectors import capabilities as C
from detectors.base import EventContext, Finding
from detectors.session import SessionState


class ToxicCombination:
    """Fires when every capability of ``required`` was seen within ``window_s`` seconds."""

    def __init__(
        self,
        name: str = "AW-COMBO-001",
        required: Iterable[str] = (C.SECRET_READ, C.PROD_WRITE, C.EGRESS),
        window_s: float = 3600.0,
        by: str = "root",
        title: str = "Secret retrieval, production write and external export in one session",
        severity: str = "critical",
        action: str = "kill_session",
        mode: str = "enforce",
        tags: tuple[str, ...] = ("ASI02", "ASI03", "NHI2", "NHI5"),
        attacks: tuple[str, ...] = ("AML.T0086", "AML.T0083"),
    ) -> None:
        self.name = name
        self.required = tuple(required)
        self.window_s = window_s
        self.by = by
        self.title = title
        self.severity = severity
        self.action = action
        self.mode = mode
        self.tags = tags
        self.attacks = attacks

    def process(self, ctx: EventContext, session: SessionState) -> list[Finding]:
        hit = [c for c in self.required if c in ctx.caps]
        if not hit:
            return []
        scope = ctx.session_id if self.by == "session" else session.root_id
        state: dict[str, dict[str, tuple[float, str, str]]] = session.det.setdefault(self.name, {})
        latest = state.setdefault(scope, {})
        tool = ctx.event.tool.name if ctx.event.tool is not None else ctx.event.kind
        for c in hit:
            prev = latest.get(c)
            if prev is None or ctx.ts >= prev[0]:
                latest[c] = (ctx.ts, ctx.event.event_id, tool)
        if len(latest) < len(self.required):
            return []
        stamps = sorted(latest[c] for c in self.required)
        if stamps[-1][0] - stamps[0][0] > self.window_s:
            return []
        steps = ", ".join(f"{c} ({latest[c][2]})" for c in self.required)
        return [
            Finding(
                detector=self.name,
                title=self.title,
                message=(
                    f"Agent {session.agent_id} combined {steps} in session {session.root_id} "
                    f"within {stamps[-1][0] - stamps[0][0]:.0f}s."
                ),
                score=1.0,
                severity=self.severity,
                action="kill_session" if self.action == "kill_session" else "alert",
                mode="shadow" if self.mode == "shadow" else "enforce",
                evidence=tuple(dict.fromkeys(s[1] for s in stamps)),
                tags=self.tags,
                attacks=self.attacks,
                key=self.name if self.by == "root" else f"{self.name}:{scope}",
                stage="complete",
                explanation={"capabilities": {c: latest[c][1] for c in self.required}},
            )
        ]
