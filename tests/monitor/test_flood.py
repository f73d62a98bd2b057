"""One session floods the worker (100,000 events: reads, distinct tools, distinct
destinations and values, sub-agents): other sessions keep their state (their combinations,
begun before the flood and finished after it, are still detected and killed) and memory stays
bounded: the flooding session's state (its checkpoint snapshot) and the process's number of
live objects stop growing once the documented caps are full (``DEFAULT_MAX_STEPS`` steps,
``DEFAULT_MAX_MEMBERS`` members, ``MAX_CONTRIBUTIONS`` risk contributions, ``dedup_window``
event ids, the rules' ``MAX_KEYS``/``MAX_DESTS``/``MAX_SUM_ENTRIES``), and the process-wide
tables filled by producer-chosen names (interned values, the catalog's name cache) stay within
their caps.

Found by this test and fixed: risk contributions, rule keys and rule report counters were kept
per sub-agent session forever (a tree whose sub-agents come and go grew without bound, and
fusing the contributions cost more on every event), and the catalog's per-name cache had no
cap.

The pure pipeline takes the full 100,000 in CI; a real worker on the embedded broker takes a
shorter flood (10,000 in CI; ``AGENTWATCH_FAULT_SCALE`` scales both).
"""

from __future__ import annotations

import gc
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from detectors.engine import KillDecision
from monitor.broker import EmbeddedBroker
from monitor.detection import engine_from_settings
from monitor.pipeline import Evicted, Pipeline, PipelineSettings
from monitor.settings import Settings
from schemas.events import validate_event
from tests.monitor.faults import scaled, wait_until
from tests.monitor.harness import Collector, Worker, produce, topic_env, trifecta

pytestmark = pytest.mark.slow

T0 = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)


def flood_event(root: str, i: int) -> dict[str, Any]:
    """The flooding session's ``i``-th event: mostly reads of distinct files, some calls of
    distinct (unknown) tools, posts to distinct internal hosts, and every 50 events a new
    sub-agent with a few events (the tree outgrows its 256-member cap after 12,800)."""
    member = root if i % 50 < 45 else f"{root}-sub{i // 50}"
    seq = i // 50 * 45 + i % 50 if member == root else i % 50 - 45
    doc: dict[str, Any] = {
        "event_id": f"{root}-f{i}",
        "time": (T0 + timedelta(milliseconds=10 * i)).isoformat(),
        "kind": "tool_call",
        "session": {"id": member, "root_id": root, "seq": seq, "parent_id": root},
        "actor": {"agent_id": "flood-agent"},
        "tool": {"name": "fs.read_file", "arguments": {"path": f"/data/file-{i}.csv"}},
    }
    if i == 0:
        doc["kind"] = "session_start"
        del doc["tool"]
    elif i % 10 == 3:
        doc["tool"] = {"name": f"custom.tool_{i}", "arguments": {"q": f"value-{i}"}}
    elif i % 10 == 7:
        doc["tool"] = {"name": "http.post", "arguments": {"body": f"row {i}"}}
        doc["transfer"] = {"destination": f"https://svc-{i}.internal.acme.com/in"}
    if member != root and seq == 0:
        doc["kind"] = "session_start"
        doc.pop("tool", None)
    return doc


def _state_size(pipeline: Pipeline, root: str) -> int:
    return len(pipeline.snapshot(root) or b"")


def test_flood_from_one_session_keeps_others_and_stays_bounded(monkeypatch: Any) -> None:
    import detectors.catalog
    from detectors import intern

    # the flood calls 10,000 distinct tools; with the name cache's cap below that, the test
    # sees the cache start over (at its real cap, 65,536, it would just keep growing here)
    monkeypatch.setattr(detectors.catalog, "MAX_CACHED_NAMES", 200)
    n = max(100_000, scaled(100_000))  # the caps fill within the first half (see below)
    pipeline = Pipeline(engine_from_settings(Settings()), PipelineSettings())
    now = 0.0
    others = {f"other{i}": trifecta(f"other{i}") for i in range(20)}
    decisions: list[Any] = []  # kills and evictions (alerts are many: not kept)

    def keep(outputs: list[Any]) -> None:
        decisions.extend(o for o in outputs if isinstance(o, KillDecision | Evicted))

    for docs in others.values():  # each has read a secret and written to production
        for doc in docs[:3]:
            keep(pipeline.process(validate_event(doc), now=now))
    flood = "flood"
    sizes: dict[int, tuple[int, int]] = {}
    checkpoints = {n // 2, 3 * n // 4, n}
    for i in range(n):
        now += 0.001
        keep(pipeline.process(validate_event(flood_event(flood, i)), now=now))
        if i % 1000 == 999:
            keep(pipeline.tick(now))
        if i + 1 in checkpoints:
            gc.collect()
            sizes[i + 1] = (_state_size(pipeline, flood), len(gc.get_objects()))
    for docs in others.values():  # ... and now they export: the combination is complete
        for doc in docs[3:]:
            keep(pipeline.process(validate_event(doc), now=now))

    # nobody was evicted, every other session's combination was detected and killed once
    assert not any(isinstance(d, Evicted) for d in decisions)
    assert set(others) <= set(pipeline.sessions)
    kills = [d.who.root_session_id for d in decisions if isinstance(d, KillDecision)]
    assert sorted(k for k in kills if k != flood) == sorted(others)
    session = pipeline.sessions[flood]
    assert pipeline.stats.processed >= n + 5 * len(others) - 5
    # the flood's state stops growing once the caps are full: 4,096 event ids, 64 steps, 256
    # members, 256 risk contributions, and the rules' 512 destinations and 4,096 summed
    # exports (one every 10th event: full after ~41,000); so does the number of live objects
    # of the process (pipeline, engine, detectors and their caches)
    assert len(session.members) <= session.max_members
    (s1, o1), (s2, o2), (s3, o3) = (sizes[k] for k in sorted(sizes))
    # (the step log is compacted in bursts: its size saws up and down by a few kB)
    assert s3 <= s1 * 1.2 and s2 <= s1 * 1.2, sizes
    assert o3 <= o1 + 5_000 and o2 <= o1 + 5_000, sizes
    # the process-wide tables that producer-chosen names fill are within their caps
    assert intern.shared_values() <= intern.MAX_VALUES
    catalog = pipeline.engine.catalog
    assert len(catalog._cache) <= detectors.catalog.MAX_CACHED_NAMES
    print(f"\nflood of {n}: (state bytes, live objects) {sizes}")


@pytest.mark.kafka
@pytest.mark.clickhouse
def test_flood_through_a_worker_does_not_crowd_out_other_sessions(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    prefix = f"flood-{uuid.uuid4().hex[:6]}"
    n = scaled(10_000)
    env = {**topic_env(prefix), "AGENTWATCH_TOPIC_PARTITIONS": "1"}  # all on one partition
    worker = Worker(broker.bootstrap, tmp_path / "worker", env).start()
    s = worker.settings
    others = {f"{prefix}-o{i}": trifecta(f"{prefix}-o{i}") for i in range(10)}
    flood = f"{prefix}-flood"
    out = Collector(broker.bootstrap, [s.topic_revocations, s.topic_dlq], 1)
    try:
        actions = s.topic_actions
        produce(broker.bootstrap, actions, [d for docs in others.values() for d in docs[:3]])
        produce(broker.bootstrap, actions, (flood_event(flood, i) for i in range(n)))
        produce(broker.bootstrap, actions, [d for docs in others.values() for d in docs[3:]])
        total = n + sum(len(d) for d in others.values())
        wait_until(
            lambda: worker.metric("agentwatch_events_consumed_total") >= total,
            timeout=300,
            what="the worker to read the flood",
        )
        got = out.poll(lambda r: len(r[s.topic_revocations]) >= len(others), timeout=60)
        stored = worker.wait_stored(flood, events=n, alerts=0, signals=0, timeout=120)
        assert worker.metric("agentwatch_sessions_evicted_total") == 0
        assert worker.metric("agentwatch_active_sessions") == len(others) + 1
    finally:
        out.close()
        assert worker.stop() == 0, worker.tail()
    assert got[s.topic_dlq] == []
    killed = sorted(r.key.decode() for r in got[s.topic_revocations] if r.key != flood.encode())
    assert killed == sorted(others)
    assert len(stored["events"]) == n
