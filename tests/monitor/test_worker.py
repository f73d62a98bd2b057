"""The worker end to end on the real embedded broker: detection, kill signals, dead letters,
duplicates and disorder. One worker process serves the module; each test has its sessions."""

from __future__ import annotations

import json
import random
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from monitor.broker import EmbeddedBroker
from monitor.ingest import H_CODE, H_OFFSET, H_PARTITION, H_REASON, H_TOPIC
from monitor.signals import verify_set
from schemas.signals import SESSION_REVOKED
from tests.monitor.harness import Collector, Worker, event, produce, topic_env, trifecta

pytestmark = pytest.mark.kafka

MAX_EVENT_BYTES = 4096


@pytest.fixture(scope="module")
def worker(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    env = {
        **topic_env(f"worker-{uuid.uuid4().hex[:6]}"),
        "AGENTWATCH_TOPIC_PARTITIONS": "2",
        "AGENTWATCH_MAX_EVENT_BYTES": str(MAX_EVENT_BYTES),
    }
    w = Worker(broker.bootstrap, tmp_path_factory.mktemp("worker"), env).start()
    yield w
    assert w.stop() == 0, w.tail()


def _collector(worker: Worker, *topics: str) -> Collector:
    return Collector(worker.bootstrap, topics, worker.settings.topic_partitions)


def _for_root(records: list[Any], root: str) -> list[Any]:
    return [r for r in records if r.key == root.encode()]


def test_combination_gives_one_alert_and_one_verified_kill_signal(worker: Worker) -> None:
    s = worker.settings
    sid = f"a-{uuid.uuid4().hex[:8]}"
    out = _collector(worker, s.topic_alerts, s.topic_revocations, s.topic_privileged)
    ce = [
        ("ce_specversion", b"1.0"),
        ("ce_type", b"io.agentwatch.action.v1"),
        ("ce_source", b"urn:gateway:test"),
        ("content-type", b"application/json"),
    ]
    events = trifecta(sid)
    produce(worker.bootstrap, s.topic_actions, events[:3], headers=ce)
    sent_at = time.time()
    produce(worker.bootstrap, s.topic_actions, events[3:], headers=ce)
    got = out.poll(lambda r: len(r[s.topic_revocations]) >= 1, settle=1.5)
    received_at = time.time()
    out.close()

    alerts = [json.loads(r.value) for r in _for_root(got[s.topic_alerts], sid)]
    uids = [a["finding_info"]["uid"] for a in alerts]
    assert len(uids) == len(set(uids)), "an alert was emitted twice"
    (alert,) = [a for a in alerts if a["finding_info"]["analytic"]["uid"] == "AW-COMBO-001"]
    assert alert["class_uid"] == 2004
    assert [e["uid"] for e in alert["finding_info"]["related_events"]] == [
        f"{sid}-e1",
        f"{sid}-e2",
        f"{sid}-e3",
    ]
    assert alert["unmapped"]["agentwatch"]["response"] == "kill_session"

    (kill,) = got[s.topic_revocations]
    assert kill.key == sid.encode()
    headers = dict(kill.headers)
    assert headers["content-type"] == b"application/secevent+jwt"
    jwks = json.loads(worker.get("/.well-known/jwks.json"))
    claims = verify_set(kill.value, jwks, issuer=s.issuer, audience=s.audience[0], max_age_s=60)
    assert (
        headers["ce_id"].decode()
        == claims.jti
        == alert["unmapped"]["agentwatch"]["kill_signal_jti"]
    )
    assert claims.txn == alert["finding_info"]["uid"]
    assert claims.sub_id.session.id == sid and SESSION_REVOKED in claims.events
    print(
        f"kill signal received {1000 * (received_at - sent_at):.0f} ms after the third step "
        "was produced (upper bound: includes the 1.5 s settle)"
    )
    audit = [json.loads(r.value) for r in _for_root(got[s.topic_privileged], sid)]
    assert {a["event_id"] for a in audit} >= {f"{sid}-e1", f"{sid}-e2", f"{sid}-e3"}
    assert all(a["agent_id"] == "billing-agent" for a in audit)
    stored = worker.wait_stored(sid, events=5, alerts=len(uids), signals=1)
    assert sorted(e["event_id"] for e in stored["events"]) == [f"{sid}-e{i}" for i in range(5)]
    assert sorted(a["alert_uid"] for a in stored["alerts"]) == sorted(uids)
    assert [x["jti"] for x in stored["signals"]] == [claims.jti]
    ssf = json.loads(worker.get("/.well-known/ssf-configuration"))
    assert ssf["issuer"] == s.issuer and ssf["jwks_uri"].endswith("/.well-known/jwks.json")
    assert worker.metric("agentwatch_kill_signals_published_total") >= 1


def _bad_records(sid: str) -> list[tuple[str, bytes]]:
    valid = event(sid, 9, "tool_call", "read_file")
    wrong_types = dict(valid, event_id="bad-types", session={"id": sid, "seq": "nine"})
    missing = {k: v for k, v in valid.items() if k not in ("event_id", "actor")}
    oversized = dict(valid, event_id="big", tool={"name": "read_file", "output": "x" * 10_000})
    return [
        ("undecodable", b"\xff\xfe not json {"),
        ("undecodable", b'{"event_id": "truncated", "time": '),
        ("schema", json.dumps(wrong_types).encode()),
        ("schema", json.dumps(missing).encode()),
        ("schema", b"[1, 2, 3]"),
        ("oversized", json.dumps(oversized).encode()),
    ]


def test_malformed_records_go_to_the_dead_letter_topic_unchanged(worker: Worker) -> None:
    s = worker.settings
    sid = f"b-{uuid.uuid4().hex[:8]}"
    bad = _bad_records(sid)
    events = trifecta(sid)
    out = _collector(worker, s.topic_dlq, s.topic_revocations)
    headers = [("x-producer", b"gateway-7"), ("traceparent", b"00-4bf9-00f0-01")]
    produce(worker.bootstrap, s.topic_actions, events[:2])
    produce(worker.bootstrap, s.topic_actions, [(sid.encode(), v) for _, v in bad], headers=headers)
    produce(worker.bootstrap, s.topic_actions, events[2:])
    got = out.poll(
        lambda r: (
            len(_for_root(r[s.topic_dlq], sid)) >= len(bad)
            and len(_for_root(r[s.topic_revocations], sid)) >= 1
        ),
        settle=1.0,
    )
    out.close()

    dead = sorted(_for_root(got[s.topic_dlq], sid), key=lambda r: int(dict(r.headers)[H_OFFSET]))
    assert [r.value for r in dead] == [v for _, v in bad]
    for (code, _), r in zip(bad, dead, strict=True):
        h = dict(r.headers)
        assert h["x-producer"] == b"gateway-7" and h["traceparent"] == b"00-4bf9-00f0-01"
        assert h[H_CODE].decode() == code, h[H_REASON]
        assert h[H_REASON] and h[H_TOPIC].decode() == s.topic_actions
        assert int(h[H_PARTITION]) >= 0
    reasons = {dict(r.headers)[H_REASON].decode() for r in dead}
    assert any("session.seq" in x for x in reasons) and any(
        "over the 4096-byte" in x for x in reasons
    )
    # the valid events around them were processed: the combination was detected
    assert len(_for_root(got[s.topic_revocations], sid)) == 1
    assert worker.metric("agentwatch_events_rejected_total", reason="schema") >= 3


def _shape(alerts: list[dict[str, Any]], sid: str) -> list[tuple[Any, ...]]:
    """What an alert says, with the session id taken out (to compare two sessions)."""
    return [
        (
            a["finding_info"]["analytic"]["uid"],
            a["activity_id"],
            [e["uid"].replace(sid, "S") for e in a["finding_info"]["related_events"]],
            a["unmapped"]["agentwatch"]["trigger_event_id"].replace(sid, "S"),
            a["unmapped"]["agentwatch"]["response"],
        )
        for a in alerts
    ]


def test_duplicates_and_disorder_give_the_same_result_as_clean_input(worker: Worker) -> None:
    s = worker.settings
    clean, messy = f"c-{uuid.uuid4().hex[:8]}", f"m-{uuid.uuid4().hex[:8]}"
    events = trifecta(messy)
    rng = random.Random(11)
    shuffled = events + [events[1], events[3], events[3]]
    rng.shuffle(shuffled)
    out = _collector(worker, s.topic_alerts, s.topic_revocations)
    produce(worker.bootstrap, s.topic_actions, trifecta(clean))
    produce(worker.bootstrap, s.topic_actions, shuffled)
    got = out.poll(
        lambda r: (
            len(_for_root(r[s.topic_revocations], clean)) >= 1
            and len(_for_root(r[s.topic_revocations], messy)) >= 1
        ),
        timeout=30,
        settle=1.0,
    )
    out.close()

    def alerts(sid: str) -> list[dict[str, Any]]:
        return [json.loads(r.value) for r in _for_root(got[s.topic_alerts], sid)]

    assert _shape(alerts(messy), messy) == _shape(alerts(clean), clean)
    assert len(_for_root(got[s.topic_revocations], messy)) == 1
    assert worker.metric("agentwatch_events_duplicate_total") >= 3


def test_worker_serves_metrics_and_readiness(worker: Worker) -> None:
    ready = json.loads(worker.get("/readyz"))
    assert ready["ready"] is True and ready["partitions"] == [0, 1]
    text = worker.get("/metrics").decode()
    for name in (
        "agentwatch_event_processing_duration_seconds_bucket",
        "agentwatch_active_sessions",
        "agentwatch_build_info",
        "agentwatch_consumer_lag_records",
    ):
        assert name in text
    labels = set(re.findall(r'[{,]([a-z_]+)="', text))
    # bounded label values only: never a session id, jti or event id
    assert labels <= {
        "kind",
        "reason",
        "outcome",
        "rule_id",
        "mode",
        "event_type",
        "decision",
        "partition",
        "topic",
        "version",
        "table",
        "rule",
        "pack",
        "result",
        "le",
    }, labels
