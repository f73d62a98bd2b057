"""A caught-up worker keeps reading a long topic on the embedded broker.

On a long enough topic written in small batches (agents send their events one by one), Tansu
returns nothing at all within the embedded profile's 5 ms fetch wait. A worker that had caught
up then got empty fetches only and never read again (``bench/soak.py`` found it: reading
stopped after 40,000-140,000 events). An empty fetch while a partition's high watermark is
past what was read now lengthens the wait (``monitor.transport``, point 5).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from kafka import KafkaProducer

from monitor.broker import EmbeddedBroker
from tests.monitor.faults import scaled
from tests.monitor.harness import Collector, Worker, event, topic_env, trifecta

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def _fill(bootstrap: str, topic: str, prefix: str, n: int) -> None:
    """``n`` harmless events in small batches (a flush every 5 records), as agents send."""
    p = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, acks=1)
    try:
        for i in range(n):
            sid = f"{prefix}-b{i // 50}"
            doc = event(sid, i % 50, "session_start" if i % 50 == 0 else "tool_call", "fs.read")
            p.send(topic, key=sid.encode(), value=json.dumps(doc).encode())
            if i % 5 == 4:
                p.flush()
        p.flush()
    finally:
        p.close()


def test_a_caught_up_worker_reads_new_records_on_a_long_topic(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    prefix = f"long-{uuid.uuid4().hex[:6]}"
    env = {**topic_env(prefix), "AGENTWATCH_TOPIC_PARTITIONS": "1", "AGENTWATCH_STORE_URL": "none"}
    worker = Worker(broker.bootstrap, tmp_path / "worker", env).start()
    s = worker.settings
    out = Collector(broker.bootstrap, [s.topic_revocations], 1)
    try:
        n = scaled(60_000)
        _fill(broker.bootstrap, s.topic_actions, prefix, n)
        assert worker.wait_metric("agentwatch_events_consumed_total", n, timeout=300) >= n, (
            worker.tail()
        )
        # caught up on a long topic: what comes next must still be read and decided on
        sid = f"{prefix}-attack"
        events = trifecta(sid)
        p = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=0)
        for doc in events:
            p.send(s.topic_actions, key=sid.encode(), value=json.dumps(doc).encode()).get(30)
        p.close()
        got = out.poll(lambda r: len(r[s.topic_revocations]) >= 1, timeout=60, settle=0.5)
        assert [r.key.decode() for r in got[s.topic_revocations]] == [sid], worker.tail()
        assert worker.metric("agentwatch_events_consumed_total") >= n + len(events)
    finally:
        out.close()
        assert worker.stop() == 0, worker.tail()
