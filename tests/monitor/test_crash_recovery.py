"""SIGKILL the worker three times while traffic flows, restart it each time: nothing is lost,
nothing is doubled, every combination spanning a crash is detected once, one kill signal per
decision. Real worker processes, the real embedded broker and the real chdb store.

CI runs it with 30 attack and 30 benign sessions; ``AGENTWATCH_FAULT_SCALE=10`` runs 300 + 300
(see ``tests/monitor/faults.py``).
"""

from __future__ import annotations

import random
import time
import uuid
from pathlib import Path

import pytest

from monitor.broker import EmbeddedBroker
from tests.monitor.faults import (
    Paced,
    header,
    is_attack,
    latest_alerts,
    scale,
    scaled,
    sessions,
)
from tests.monitor.harness import Collector, Worker, topic_env

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse, pytest.mark.slow]

KILLS = 3


def test_three_sigkills_mid_stream_lose_and_double_nothing(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    prefix = f"kill3-{uuid.uuid4().hex[:6]}"
    env = {
        **topic_env(prefix),
        "AGENTWATCH_TOPIC_PARTITIONS": "2",
        "AGENTWATCH_CHECKPOINT_INTERVAL_S": "0.5",
        # checkpoints in slices of a few sessions: a kill can fall between two slices
        "AGENTWATCH_CHECKPOINT_SLICE_BYTES": "8192",
        # one store and one signing key for every incarnation, as on a real volume
        "AGENTWATCH_STORE_URL": f"chdb://{tmp_path.resolve()}/clickhouse",
    }
    docs = sessions(prefix, attacks=scaled(30), benigns=scaled(30))
    total = sum(len(d) for d in docs.values())
    rng = random.Random(7)
    worker = Worker(broker.bootstrap, tmp_path / "worker", env).start()
    s = worker.settings
    out = Collector(broker.bootstrap, [s.topic_alerts, s.topic_revocations, s.topic_dlq], 2)
    # five steps, each spread over ~12 s (x scale): every session spans the crashes below
    producer = Paced(broker.bootstrap, s.topic_actions, docs, step_s=12.0 * scale()).start()
    kills: list[float] = []
    try:
        for _ in range(KILLS):
            # mid-stream: once this incarnation has processed a few records, at a random moment
            seen = worker.wait_metric("agentwatch_events_consumed_total", 5, timeout=60)
            assert seen >= 5, worker.tail()
            time.sleep(rng.uniform(0.5, 4.0) * scale())
            worker.kill()
            kills.append(time.monotonic())
            worker = Worker(broker.bootstrap, tmp_path / "worker", env).start(timeout=120)
        producer.join(timeout=600)
        attacks = [r for r in docs if is_attack(r)]
        got = out.poll(
            lambda r: len({x.key for x in r[s.topic_revocations]}) >= len(attacks),
            timeout=120,
            settle=3.0,
        )
        # the store holds every event once, read as users read it (FINAL + LIMIT 1 BY event_id)
        stored = {}
        for root, evs in docs.items():
            doc = worker.wait_stored(root, events=len(evs), alerts=0, signals=0, timeout=60)
            stored[root] = sorted(e["event_id"] for e in doc["events"])
    finally:
        out.close()
        assert worker.stop() == 0, worker.tail()

    # the crashes fell inside the stream: sessions had events sent before and after each
    spans = [
        r for r, evs in docs.items() if any(
            min(producer.sent[e["event_id"]] for e in evs) < k < max(
                producer.sent[e["event_id"]] for e in evs
            ) for k in kills
        )
    ]  # fmt: skip
    assert len(spans) == len(docs), "every session should span a crash"
    assert all(stored[r] == sorted(e["event_id"] for e in evs) for r, evs in docs.items())
    assert sum(len(v) for v in stored.values()) == total
    assert got[s.topic_dlq] == []

    # one kill signal per decision: one per attack session, every jti once, none for benign
    signals = got[s.topic_revocations]
    jtis = [header(r, "ce_id") for r in signals]
    assert len(jtis) == len(set(jtis)) == len(attacks), (len(jtis), len(set(jtis)), len(attacks))
    assert sorted(r.key.decode() for r in signals) == sorted(attacks)

    # each combination once, with its three steps as evidence, in every attack session
    alerts = latest_alerts(got[s.topic_alerts])
    combos: dict[str, list[tuple[str, ...]]] = {}
    for a in alerts.values():
        if a["finding_info"]["analytic"]["uid"] == "AW-COMBO-001":
            root = a["unmapped"]["agentwatch"]["root_session_id"]
            evidence = tuple(e["uid"] for e in a["finding_info"]["related_events"])
            combos.setdefault(root, []).append(evidence)
    assert combos == {r: [(f"{r}-e1", f"{r}-e2", f"{r}-e3")] for r in attacks}
    assert not any(
        a["unmapped"]["agentwatch"]["root_session_id"] not in attacks
        and a["unmapped"]["agentwatch"].get("response") == "kill_session"
        for a in alerts.values()
    )
