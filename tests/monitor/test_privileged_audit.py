"""The privileged-action audit log end to end: a worker on the real broker publishes each
privileged action on ``agent.privileged`` and stores it in ClickHouse (embedded chdb), with
the session's intent and the acting identity; ordinary events go to neither."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from monitor.broker import EmbeddedBroker
from tests.monitor.harness import Collector, Worker, event, produce, topic_env

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]

IDENTITY = {
    "agent_id": "deploy-agent",
    "workload_id": "spiffe://acme.com/ns/agents/sa/deploy-agent",
    "on_behalf_of": "user:u_42",
    "credential": {"iss": "https://sts.acme.com", "jti": "tok-77", "scope": "deploy:prod"},
}
TASK = "Roll out payments-api v2.3.1 to prod after the checks pass."


def _session(sid: str) -> list[dict[str, object]]:
    intent = {"task": TASK, "allowed_tools": ["kubectl.*", "vault.read_secret", "github.*"],
              "allowed_environments": ["prod"]}  # fmt: skip
    prod = [{"type": "k8s_deployment", "uid": "k8s://prod/payments-api", "environment": "prod"}]
    evs = [
        event(sid, 0, "session_start", intent=intent),
        event(sid, 1, "tool_call", "github.get_pull_request"),  # ordinary
        event(sid, 2, "tool_call", "vault.read_secret"),  # secret retrieval
        event(sid, 3, "tool_call", "kubectl.get_pods", resources=prod),  # a read in prod
        event(sid, 4, "tool_call", "kubectl.apply", resources=prod),  # production write
        event(sid, 5, "session_end"),
    ]
    for e in evs:
        e["actor"] = dict(IDENTITY)
    return evs


def test_privileged_actions_reach_the_topic_and_the_table(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    env = {**topic_env(f"audit-{uuid.uuid4().hex[:6]}"), "AGENTWATCH_TOPIC_PARTITIONS": "1"}
    worker = Worker(broker.bootstrap, tmp_path / "worker", env).start()
    s = worker.settings
    sid = f"aud-{uuid.uuid4().hex[:8]}"
    out = Collector(worker.bootstrap, [s.topic_privileged], s.topic_partitions)
    try:
        produce(worker.bootstrap, s.topic_actions, _session(sid))
        got = out.poll(lambda r: len(r[s.topic_privileged]) >= 2, timeout=30, settle=1.0)
        worker.wait_stored(sid, events=6, alerts=0, signals=0)
    finally:
        out.close()
        code = worker.stop()
    assert code == 0, worker.tail()

    on_topic = [json.loads(r.value) for r in got[s.topic_privileged] if r.key == sid.encode()]
    assert sorted(r["event_id"] for r in on_topic) == [f"{sid}-e2", f"{sid}-e4"]
    by_event = {r["event_id"]: r for r in on_topic}
    write = by_event[f"{sid}-e4"]
    assert write["capabilities"] == ["production_write"] and write["environment"] == "prod"
    assert write["scope"]["task"] == TASK and write["in_scope"] is True
    assert (write["agent_id"], write["workload_id"], write["on_behalf_of"]) == (
        IDENTITY["agent_id"],
        IDENTITY["workload_id"],
        IDENTITY["on_behalf_of"],
    )
    assert write["credential"]["jti"] == "tok-77"
    assert by_event[f"{sid}-e2"]["capabilities"] == ["secret_retrieval"]

    # the worker has stopped and released the embedded engine: read its tables directly
    import clickhouse_connect

    client = clickhouse_connect.get_client(dsn=s.store_url)
    try:
        db = s.store_database
        rows = client.query(
            f"SELECT event_id, uid, capabilities, scope, in_scope, agent_id, workload_id, "
            f"on_behalf_of, credential, environment FROM {db}.privileged_actions FINAL "
            f"WHERE root_session_id = {{root:String}} ORDER BY time",
            parameters={"root": sid},
        ).result_rows
        events = client.query(
            f"SELECT count() FROM {db}.events FINAL WHERE root_session_id = {{root:String}}",
            parameters={"root": sid},
        ).result_rows[0][0]
    finally:
        client.close()
    assert [r[0] for r in rows] == [f"{sid}-e2", f"{sid}-e4"]  # ordinary events are not here
    assert events == 6  # ... they are in the events table
    e4 = rows[1]
    assert e4[1] == write["uid"] and e4[2] == ["production_write"]
    assert json.loads(e4[3])["task"] == TASK and e4[4] is True
    assert e4[5:8] == (IDENTITY["agent_id"], IDENTITY["workload_id"], IDENTITY["on_behalf_of"])
    assert json.loads(e4[8])["jti"] == "tok-77" and e4[9] == "prod"
