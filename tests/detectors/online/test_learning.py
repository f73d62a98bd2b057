"""Online detectors learn only from unflagged sessions; their state survives a restart."""

from __future__ import annotations

import pickle

from detectors.online.identity_drift import IdentityDrift
from detectors.online.session_anomaly import SessionAnomaly
from detectors.online.transitions import TransitionSurprise
from detectors.registry import build_engine
from detectors.testing import event
from schemas.events import validate_event


def _session(engine, sid: str, tools: list[str], agent: str = "bot-a"):  # type: ignore[no-untyped-def]
    docs = [event("session_start", session=sid, agent=agent, seq=0, task="check balance")]
    docs += [event(tool=t, session=sid, agent=agent, seq=i) for i, t in enumerate(tools, 1)]
    docs.append(event("session_end", session=sid, agent=agent, seq=len(tools) + 1))
    session = None
    findings = []
    for d in docs:
        ev = validate_event(d)
        session = session or engine.new_session(ev)
        findings += engine.process(engine.context(ev), session)
    return session, findings


def test_transitions_never_learn_from_a_flagged_session() -> None:
    det = TransitionSurprise(min_sessions=1)
    engine = build_engine(detectors=[det])
    s, _ = _session(engine, "a", ["get_balance", "send_money"])
    engine.close(s)  # unflagged: learned
    assert det.sessions["bot-a"] == 1
    s2, _ = _session(engine, "b", ["get_balance", "delete_file"])
    det.on_session_close(s2, flagged=True)
    assert det.sessions["bot-a"] == 1
    assert det.next_tool[("bot-a", "get_balance")]("delete_file") == 0.0


def test_cold_start_backs_off_to_the_template_model() -> None:
    det = TransitionSurprise(min_sessions=1)
    engine = build_engine(detectors=[det])
    s, _ = _session(engine, "a", ["get_balance"], agent="payer-v1")
    engine.close(s)
    # A new version of the same agent is judged by its template's model from the start.
    s2, _ = _session(engine, "b", ["get_balance", "send_money"], agent="payer-v2")
    assert [f for f in s2.alerts.values()] == []
    assert s2.contributions.get("AW-SEQ-001", (0,))[0] > 0


def test_session_anomaly_and_drift_skip_flagged_sessions() -> None:
    anom, drift = SessionAnomaly(min_sessions=1), IdentityDrift()
    engine = build_engine(detectors=[anom, drift])
    s, _ = _session(engine, "a", ["get_balance"])
    engine.close(s)
    s2, _ = _session(engine, "b", ["get_balance"])
    anom.on_session_close(s2, flagged=True)
    drift.on_session_close(s2, flagged=True)
    assert anom.learned["bot-a"] == 1
    assert drift.detectors[("bot-a", "calls")].n_detections == 0


def test_session_anomaly_keeps_at_most_max_models_and_backs_off_beyond() -> None:
    """One model per agent id would grow without end (replica and version ids): past
    ``max_models`` an identity gets none, and is scored by the global model it still teaches."""
    anom = SessionAnomaly(min_sessions=1, max_models=3)
    engine = build_engine(detectors=[anom])
    for n in range(6):
        s, _ = _session(engine, f"s{n}", ["get_balance"], agent=f"bot-{'abcdef'[n]}")
        engine.close(s)
    assert len(anom.models) == 3 and "*" in anom.models
    assert set(anom.models) == set(anom.learned) == set(anom.known_tools)
    assert anom.learned["*"] == 6  # every session taught the global model
    assert "bot-f" not in anom.models and anom._warm("bot-f") == "*"
    s, _ = _session(engine, "late", ["get_balance"], agent="bot-f")
    ev = validate_event(event(tool="get_balance", session="late", agent="bot-f", seq=2))
    x = tuple(anom.features(s).values())  # scored by the global model
    assert anom.score_one(engine.context(ev), s) == anom._scores[("*", 6, x)]
    old = pickle.loads(pickle.dumps(anom))
    del old.__dict__["max_models"]  # a detector pickled before the bound
    assert pickle.loads(pickle.dumps(old)).max_models == 256


def test_learned_state_round_trip_through_the_engine() -> None:
    engine = build_engine()
    for n in range(6):
        s, _ = _session(engine, f"s{n}", ["get_balance", "get_most_recent_transactions"])
        engine.close(s)
    blob = engine.learned_state()
    restored = build_engine()
    restored.load_learned_state(blob)
    assert pickle.loads(restored.learned_state()).keys() == pickle.loads(blob).keys()
    seq = next(d for d in restored.detectors if d.name == "AW-SEQ-001")
    assert seq.sessions["bot-a"] == 6  # type: ignore[attr-defined]
    # The restored engine judges a new session as the original does.
    a, _ = _session(engine, "x", ["get_balance", "update_password"])
    b, _ = _session(restored, "x", ["get_balance", "update_password"])
    assert a.contributions == b.contributions
    assert a.contributions["AW-SEQ-001"][0] > 0  # the never-seen step is noticed by both
    cold, _ = _session(build_engine(), "x", ["get_balance", "update_password"])
    assert "AW-SEQ-001" not in cold.contributions


def test_transitions_learn_a_bounded_number_of_identities() -> None:
    """Agent ids that keep changing (replicas, versions) do not grow the model without end:
    past ``max_identities`` a new id is learned only through its template and the global key,
    and is scored by them."""
    det = TransitionSurprise(min_sessions=1, max_identities=4)
    engine = build_engine(detectors=[det])
    for i in range(10):
        s, _ = _session(engine, f"s{i}", ["get_balance", "send_money"], agent=f"payer-{i}")
        engine.close(s)
    # payer-0, its template and the global key come first, then payer-1: full
    assert set(det.sessions) == {"payer-0", "payer", "*", "payer-1"}
    assert det.sessions["payer"] == det.sessions["*"] == 10  # learned from every replica
    assert det._warm("payer-9") == "payer"


def test_a_full_table_does_not_make_every_step_new() -> None:
    """A warm identity whose distributions found no room is not flagged for the steps it
    could not learn: the same walk again is not new."""
    det = TransitionSurprise(min_sessions=1, max_keys=2)
    engine = build_engine(detectors=[det])
    walk = ["get_balance", "send_money", "read_file"]
    s, _ = _session(engine, "a", walk, agent="bot-x")
    engine.close(s)
    assert set(det.next_tool) == {("bot-x", "<start>"), ("bot-x", "get_balance")}  # full
    s2, _ = _session(engine, "b", walk, agent="bot-x")
    assert "AW-SEQ-001" not in s2.contributions
    s3, _ = _session(engine, "c", ["get_balance", "delete_file"], agent="bot-x")
    assert s3.contributions["AW-SEQ-001"][0] > 0  # a step its distributions rule out is new
