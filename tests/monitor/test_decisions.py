"""Decisions to records: the alert and kill-signal records the worker produces (no broker)."""

from __future__ import annotations

import json
from pathlib import Path

from detectors.engine import AlertDecision, KillDecision
from detectors.registry import build_engine
from monitor.decisions import alert_finding, alert_record, signed_kill
from monitor.pipeline import Pipeline
from monitor.settings import Settings
from monitor.signals import Signer, verify_set
from schemas.events import validate_event
from tests.monitor.harness import trifecta


def test_alert_and_kill_records(tmp_path: Path) -> None:
    settings = Settings()
    pipeline = Pipeline(build_engine())
    out = []
    for i, doc in enumerate(trifecta("s9")):
        out += pipeline.process(validate_event(doc), now=float(i))
    alerts = [d for d in out if isinstance(d, AlertDecision)]
    (kill,) = [d for d in out if isinstance(d, KillDecision)]

    finding = alert_finding(alerts[-1])
    rec = alert_record(finding, settings)
    doc = json.loads(rec.value or b"")
    headers = dict(rec.headers)
    assert rec.key == b"s9"
    assert headers["ce_id"].decode() == doc["finding_info"]["uid"] == kill.alert_uid
    assert headers["content-type"] == b"application/json"
    assert headers["ce_subject"] == b"s9" and headers["ce_time"].endswith(b"Z")
    assert doc["unmapped"]["agentwatch"]["kill_signal_jti"] == kill.jti

    signer = Signer.load_or_create(None, tmp_path)
    signed = signed_kill(kill, settings, signer, now=1_800_000_000)
    assert signed.record.key == b"s9" and signed.record.value == signed.compact.encode()
    kh = dict(signed.record.headers)
    assert kh["content-type"] == b"application/secevent+jwt" and kh["ce_id"] == kill.jti.encode()
    claims = verify_set(
        signed.compact,
        signer.jwks(),
        issuer=settings.issuer,
        audience=settings.audience[0],
        max_age_s=60,
        now=1_800_000_001,
    )
    assert claims.jti == kill.jti and claims.txn == kill.alert_uid
    assert claims.sub_id.agent is not None
    assert claims.sub_id.agent.uri.startswith("spiffe://prod.acme.com")
