"""Behaviour drift of an identity across sessions (ADWIN), reported on its next sessions.

For each identity, ADWIN watches per-session measures (share of sensitive actions, number of
calls, distinct tools) of its unflagged sessions. When a measure's mean shifts, the shift is
recorded and reported, as a low-score observation with the before/after means, on the
identity's next session: the agent's behaviour changed (new version, new prompt, compromised
credentials used by something else) and its thresholds or baseline may need a look.

>>> from detectors.testing import ctx_for, new_session
>>> det = IdentityDrift(delta=0.01)
>>> found = []
>>> for n in range(200):
...     s = new_session(f"s{n}")
...     tool = "get_balance" if n < 100 else "send_money"
...     found += det.process(ctx_for(tool, session=f"s{n}", seq=1), s)
...     det.on_session_close(s, flagged=False)
>>> found[0].explanation["drifts"][0]["measure"]
'sensitive_share'
"""

from __future__ import annotations

from typing import Any

from river import drift

from detectors import capabilities as C
from detectors.base import EventContext, Finding
from detectors.intern import canonical
from detectors.scoring import mode_of
from detectors.session import SessionState, slot_of, state_at, states_len

MEASURES = ("sensitive_share", "calls", "tools")
#: distinct tools counted per session
MAX_TOOLS = 256


class Measures:
    """A session's counts behind the measures (distinct tools: a tuple of shared names)."""

    __slots__ = ("calls", "sensitive", "tools", "reported")

    def __init__(self) -> None:
        self.calls = 0
        self.sensitive = 0
        self.tools: tuple[str, ...] = ()
        self.reported = False

    def __getstate__(self) -> tuple[Any, ...]:
        return (self.calls, self.sensitive, self.tools, self.reported)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self.calls, self.sensitive, self.tools, self.reported = state


class IdentityDrift:
    """ADWIN per identity and measure; drifts are reported once on the next session."""

    def __init__(
        self,
        name: str = "AW-DRIFT-ID-001",
        delta: float = 0.002,
        score: float = 0.1,
        max_identities: int = 10_000,
        mode: str = "enforce",
    ) -> None:
        self.name = name
        self._slot = slot_of(name)
        self.delta = delta
        self.score = score
        self.max_identities = max_identities
        self.mode = mode
        self.detectors: dict[tuple[str, str], drift.ADWIN] = {}
        #: identity -> drifts detected and not yet reported
        self.drifts: dict[str, list[dict[str, Any]]] = {}

    def learned_state(self) -> dict[str, Any]:
        return {"adwin": self.detectors, "drifts": self.drifts}

    def load_learned_state(self, state: dict[str, Any]) -> None:
        self.detectors, self.drifts = state["adwin"], state["drifts"]

    def process(self, ctx: EventContext, session: SessionState) -> list[Finding]:
        det, slot = session.det, self._slot
        st: Measures | None = state_at(det, slot) if slot < states_len(det) else None
        if st is None:
            st = session.det[self.name] = Measures()
        tool = ctx.event.tool
        if tool is not None:
            st.calls += 1
            st.sensitive += bool(ctx.caps & C.SENSITIVE_ACTIONS)
            if len(st.tools) < MAX_TOOLS and tool.name not in st.tools:
                # shared: sessions of one agent call the same tools in the same order
                st.tools = canonical((*st.tools, canonical(tool.name)))
        pending = self.drifts.get(session.agent_id)
        if st.reported or not pending:
            return []
        st.reported = True
        reported = self.drifts.pop(session.agent_id)
        what = "; ".join(
            f"{d['measure']} {d['before']:.2f} -> {d['after']:.2f}" for d in reported[:3]
        )
        return [
            Finding(
                detector=self.name,
                title="Agent behaviour drifted across sessions",
                message=f"The sessions of {session.agent_id} changed: {what}.",
                score=self.score,
                severity="informational",
                action="observe",
                mode=mode_of(self.mode),
                evidence=(ctx.event.event_id,),
                tags=("ASI10",),
                key=self.name,
                explanation={"drifts": reported},
            )
        ]

    def on_session_close(self, session: SessionState, *, flagged: bool) -> None:
        st = session.det.get(self.name)
        if flagged or not st or not st.calls:
            return
        agent = session.agent_id
        if (agent, MEASURES[0]) not in self.detectors and len(self.detectors) >= (
            self.max_identities * len(MEASURES)
        ):
            return
        x = {
            "sensitive_share": st.sensitive / st.calls,
            "calls": st.calls / (st.calls + 8.0),
            "tools": len(st.tools) / (len(st.tools) + 4.0),
        }
        for m in MEASURES:
            d = self.detectors.get((agent, m))
            if d is None:
                d = self.detectors[(agent, m)] = drift.ADWIN(delta=self.delta)
            before = d.estimation
            d.update(x[m])
            if d.drift_detected:
                found = {"measure": m, "before": round(before, 4), "after": round(d.estimation, 4)}
                self.drifts.setdefault(agent, []).append(found)
                del self.drifts[agent][:-8]
