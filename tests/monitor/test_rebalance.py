"""Scale-out: a second worker joins mid-session; detection does not depend on which worker
holds a partition (the partition's sessions move with it through its checkpoint)."""

from __future__ import annotations

import json
import time
import urllib.error
import uuid
from pathlib import Path

import pytest

from monitor.broker import EmbeddedBroker
from tests.monitor.harness import (
    Collector,
    Worker,
    expected_alerts,
    produce,
    published_alerts,
    topic_env,
    trifecta,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_sessions_move_with_their_partition_to_a_new_worker(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    prefix = f"scale-{uuid.uuid4().hex[:6]}"
    env = {**topic_env(prefix), "AGENTWATCH_TOPIC_PARTITIONS": "2",
           "AGENTWATCH_CHECKPOINT_INTERVAL_S": "0.5", "AGENTWATCH_STORE_URL": "none"}  # fmt: skip
    sessions = [f"{prefix}-s{i}" for i in range(6)]
    events = {sid: trifecta(sid) for sid in sessions}
    w1 = Worker(broker.bootstrap, tmp_path / "w1", env).start()
    w2 = Worker(broker.bootstrap, tmp_path / "w2", env)
    s = w1.settings
    out = Collector(broker.bootstrap, [s.topic_alerts, s.topic_revocations], 2)
    try:
        produce(broker.bootstrap, s.topic_actions, [e for sid in sessions for e in events[sid][:3]])
        assert w1.wait_metric("agentwatch_events_consumed_total", 18) == 18
        w2.start()  # joins the group: w1 gives up a partition (final checkpoint), w2 restores it
        deadline = time.monotonic() + 60
        held: list[list[int]] = []
        while time.monotonic() < deadline:
            try:
                held = [json.loads(w.get("/readyz"))["partitions"] for w in (w1, w2)]
            except urllib.error.HTTPError as exc:  # 503 while a worker is rebalancing
                if exc.code != 503:
                    raise
                held = []
            if sorted(held) == [[0], [1]]:
                break
            time.sleep(0.2)
        assert sorted(held) == [[0], [1]], held
        produce(broker.bootstrap, s.topic_actions, [e for sid in sessions for e in events[sid][3:]])
        got = out.poll(lambda r: len(r[s.topic_revocations]) >= len(sessions), timeout=30,
                       settle=1.5)  # fmt: skip
        # the partition w2 took over came with its sessions, from w1's final checkpoint
        restored = w2.metric("agentwatch_restored_sessions_total")
    finally:
        out.close()
        w2.stop()
        w1.stop()
    assert sorted(r.key.decode() for r in got[s.topic_revocations]) == sorted(sessions)
    expected: dict[str, tuple[str, tuple[str, ...]]] = {}
    for sid in sessions:
        expected.update(expected_alerts(events[sid]))
    assert published_alerts(got[s.topic_alerts]) == expected
    assert restored >= 1
