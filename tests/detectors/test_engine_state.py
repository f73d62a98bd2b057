"""The engine's per-session bookkeeping: alerts are capped, empty maps are shared and stay
apart through a checkpoint."""

from __future__ import annotations

import pickle

from detectors.base import EventContext, Finding
from detectors.engine import RISK_KEY, Engine
from detectors.fusion import FusionPolicy
from detectors.session import MAX_ALERTS, NO_ENTRIES, SessionState
from detectors.testing import ctx_for


class OneKeyPerEvent:
    """An alert under a new key for every event (as a rule keyed on a value would)."""

    name = "T-KEYS"

    def process(self, ctx: EventContext, session: SessionState) -> list[Finding]:
        return [
            Finding(
                detector=self.name,
                title="t",
                message="m",
                score=0.01,
                action="alert",
                key=f"{self.name}:{ctx.seq}",
                evidence=(ctx.event.event_id,),
            )
        ]


def test_alerts_per_session_are_capped_and_the_newest_kept() -> None:
    engine = Engine([OneKeyPerEvent()], policy=FusionPolicy())
    session = engine.new_session(ctx_for("read_file", seq=1).event)
    emitted = 0
    for seq in range(1, MAX_ALERTS + 40):
        emitted += len(engine.process(ctx_for("read_file", seq=seq), session))
    assert emitted == MAX_ALERTS + 39  # every new key was still alerted on
    assert len(session.alerts) == MAX_ALERTS
    assert f"T-KEYS:{MAX_ALERTS + 38}" in session.alerts  # the newest is kept
    assert "T-KEYS:1" not in session.alerts  # the oldest went first
    assert RISK_KEY not in session.alerts or session.alerts[RISK_KEY].key == RISK_KEY


def test_sessions_without_alerts_share_one_empty_map_and_never_write_to_it() -> None:
    engine = Engine([OneKeyPerEvent()])
    a, b = SessionState("r1", None, "x"), SessionState("r2", None, "x")
    assert a.alerts is NO_ENTRIES and b.contributions is NO_ENTRIES
    engine.process(ctx_for("read_file", seq=1, session="r1"), a)
    assert a.alerts and a.contributions
    assert not NO_ENTRIES and b.alerts is NO_ENTRIES


def test_empty_maps_come_back_apart_from_a_checkpoint() -> None:
    restored: SessionState = pickle.loads(pickle.dumps(SessionState("r1", None, "x")))
    assert restored.alerts is NO_ENTRIES and restored.contributions is NO_ENTRIES
    restored.own_contributions()["k"] = (0.5, "enforce", "d")
    assert not restored.alerts and not NO_ENTRIES
