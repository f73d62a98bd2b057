"""The simulated gateway: verified kill signals stop a session and its sub-agents; forged ones
do nothing; a gateway that ignores kills lets the calls through (and counts them)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from joserfc.jwk import ECKey

from detectors.engine import Identity, KillDecision
from monitor.decisions import kill_claims
from monitor.gateway import Gateway
from monitor.revocations import RevocationVerifier
from monitor.settings import Settings
from monitor.signals import Signer
from schemas.signals import set_jti
from tests.detectors.rules.helpers import call, events

SETTINGS = Settings()


def _signal(signer: Signer, session: str, root: str, trigger: str) -> bytes:
    """The kill signal the worker would publish for a decision taken on ``trigger``."""
    who = Identity("acme", root, session, "agent", None, None, None, None)
    alert_uid = f"alert-{session}"
    decision = KillDecision(
        jti=set_jti(alert_uid), alert_uid=alert_uid, detector="AW-TEST-001", who=who,
        reason="test", event_ts=time.time(), trigger_event_id=trigger, trigger_seq=1, risk=1.0,
    )  # fmt: skip
    return signer.sign(kill_claims(decision, SETTINGS, time.time())).encode()


def _gateway(tmp_path: Path, signer: Signer, **kw: Any) -> Gateway:
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(signer.jwks()))
    verifier = RevocationVerifier(
        jwks.as_uri(), issuer=SETTINGS.issuer, audience=SETTINGS.audience[0], max_age_s=60
    )
    return Gateway(verifier, **kw)


def _tree() -> list[dict[str, Any]]:
    """A root session r, its sub-agent c, and c's own sub-agent g."""
    docs: list[dict[str, Any]] = events(
        {"kind": "session_start", "session": "r"},
        {"kind": "delegation", "session": "r", "delegation": {"child_session_id": "c"}},
        {"kind": "session_start", "session": {"id": "c", "parent_id": "r"}},
        call("vault.read_secret", session={"id": "c", "parent_id": "r"}),
        {"kind": "session_start", "session": {"id": "g", "parent_id": "c"}},
        call("http.post", session={"id": "g", "parent_id": "c"}),
        call("http.post", session={"id": "c", "parent_id": "r"}),
        call("read_file", session="r"),
    )
    return [json.loads(d.model_dump_json(exclude_none=True)) for d in docs]


def test_a_verified_kill_stops_the_session_and_its_sub_agents(tmp_path: Path) -> None:
    signer = Signer(ECKey.generate_key("P-256", private=True))
    docs = _tree()
    harm = docs[5]["event_id"]  # g's export
    gw = _gateway(tmp_path, signer, harm_of={harm: "r"}.get)
    out = [gw.admit(d) for d in docs[:4]]  # up to c's secret read
    assert all(o is d for o, d in zip(out, docs[:4], strict=True))
    received = gw.receive(_signal(signer, "c", "r", trigger=docs[3]["event_id"]))
    assert received is not None and received.outcome == "revoked"
    rest = [gw.admit(d) for d in docs[4:]]
    # g (under c) is refused; its first refused call becomes the end the gateway reports
    assert rest[0] is not None and rest[0]["kind"] == "session_end"
    assert rest[0]["end_reason"] == "revoked" and rest[0]["session"]["id"] == "g"
    assert rest[1] is None  # g's export never happens
    assert rest[2] is not None and rest[2]["kind"] == "session_end"  # c's own end, once
    assert rest[3] is docs[7]  # the root was not revoked: it goes on
    st = gw.stats.as_dict()
    assert (st["events_blocked"], st["harms_prevented"], st["prevented_roots"]) == (3, 1, ["r"])
    assert st["kill_latency_ms"]["n"] == 1 and st["kill_latency_ms"]["p50"] is not None
    # the same signal delivered twice is acted on once
    again = gw.receive(_signal(signer, "c", "r", docs[3]["event_id"]))
    assert again is not None and again.outcome == "duplicate"


def test_a_forged_kill_signal_does_nothing(tmp_path: Path) -> None:
    signer = Signer(ECKey.generate_key("P-256", private=True))
    forger = Signer(ECKey.generate_key("P-256", private=True), kid=signer.kid)
    docs = _tree()
    gw = _gateway(tmp_path, signer)
    received = gw.receive(_signal(forger, "r", "r", trigger=docs[0]["event_id"]))
    assert received is not None and received.outcome == "invalid"
    assert all(gw.admit(d) is d for d in docs)
    assert gw.stats.signals_invalid == 1 and gw.stats.events_blocked == 0


def test_a_gateway_that_ignores_kills_lets_calls_through(tmp_path: Path) -> None:
    signer = Signer(ECKey.generate_key("P-256", private=True))
    docs = _tree()
    gw = _gateway(tmp_path, signer, ignore_share=1.0)
    gw.receive(_signal(signer, "r", "r", trigger=docs[0]["event_id"]))
    assert all(gw.admit(d) is d for d in docs)
    assert gw.stats.events_after_kill_ignored == len(docs)
