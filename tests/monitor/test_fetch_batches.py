"""A fetch hands the scoring loop at most ``AGENTWATCH_MAX_POLL_RECORDS`` records (500 by
default).

Unbounded, one fetch of a backlog hands over everything prefetched (up to 1 MiB a
partition), and the worker holds those records and what they produce at once while it
catches up; its allocators keep that peak (docs/memory.md, eleventh and thirteenth rounds).
The same backlog read by consumer groups on the real broker: with a cap of 200 every fetch
is within it; with no cap (0) some fetch is over 500 (so the backlog does come in larger
fetches); with the default every fetch is within 500.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from monitor.broker import EmbeddedBroker
from tests.monitor.harness import Worker, event, produce, topic_env

pytestmark = [pytest.mark.kafka]

BACKLOG = 4_000


def _drain(broker: EmbeddedBroker, datadir: Path, env: dict[str, str]) -> Worker:
    worker = Worker(broker.bootstrap, datadir, env).start()
    try:
        done = worker.wait_metric("agentwatch_events_consumed_total", BACKLOG, timeout=120)
        assert done >= BACKLOG, worker.tail()
    except BaseException:
        worker.stop()
        raise
    return worker


def _buckets(worker: Worker) -> dict[str, float]:
    """``le`` -> cumulative count of ``agentwatch_fetch_records``, for the bounds read."""
    return {
        le: worker.metric("agentwatch_fetch_records_bucket", le=le)
        for le in ("250.0", "500.0", "+Inf")
    }


def test_a_backlog_is_handed_over_in_fetches_of_at_most_the_cap(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    prefix = f"batches-{uuid.uuid4().hex[:6]}"
    env = {**topic_env(prefix), "AGENTWATCH_TOPIC_PARTITIONS": "1", "AGENTWATCH_STORE_URL": "none"}
    docs = [
        event(f"{prefix}-s{i // 40}", i % 40, "session_start" if i % 40 == 0 else "tool_call",
              "fs.read")
        for i in range(BACKLOG)
    ]  # fmt: skip
    Worker(broker.bootstrap, tmp_path / "topics", env)  # declares the topics
    produce(broker.bootstrap, f"{prefix}.actions", docs)

    capped = _drain(broker, tmp_path / "capped", {**env, "AGENTWATCH_MAX_POLL_RECORDS": "200"})
    try:
        small = _buckets(capped)
    finally:
        capped.stop()
    assert small["+Inf"] >= BACKLOG / 200  # every record came in a fetch, 200 at most each
    assert small["250.0"] == small["+Inf"], small

    wide = {**env, "AGENTWATCH_APP_ID": f"{prefix}-wide", "AGENTWATCH_MAX_POLL_RECORDS": "0"}
    uncapped = _drain(broker, tmp_path / "wide", wide)
    try:
        large = _buckets(uncapped)
    finally:
        uncapped.stop()
    assert large["500.0"] < large["+Inf"], large  # without the cap, fetches are larger

    default = _drain(broker, tmp_path / "default", {**env, "AGENTWATCH_APP_ID": f"{prefix}-d"})
    try:
        usual = _buckets(default)
    finally:
        default.stop()
    assert usual["+Inf"] >= BACKLOG / 500 and usual["500.0"] == usual["+Inf"], usual
