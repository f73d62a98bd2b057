"""The session-state settings (``AGENTWATCH_*_TTL_S``, ``AGENTWATCH_MAX_*``) reach every
partition's pipeline: the soak benchmark and operators bound a worker's memory with them."""

from __future__ import annotations

import time
from pathlib import Path

from monitor.runtime import Monitor
from monitor.settings import Settings
from tests.monitor.test_pipeline import ev_at as ev


def test_session_bounds_from_the_environment_reach_each_partition(tmp_path: Path) -> None:
    env = {
        "AGENTWATCH_IDLE_TTL_S": "120",
        "AGENTWATCH_ENDED_TTL_S": "60",
        "AGENTWATCH_ENDED_MIN_IDLE_S": "12",
        "AGENTWATCH_TOMBSTONE_TTL_S": "90",
        "AGENTWATCH_MAX_TOMBSTONES": "500",
        "AGENTWATCH_MAX_SESSIONS": "1000",
        "AGENTWATCH_STORE_URL": "none",
        "AGENTWATCH_DATADIR": str(tmp_path),
    }
    monitor = Monitor(Settings.from_env(env, profile="embedded"))
    got = monitor.new_partition(0, 0).pipeline.settings
    assert (got.idle_ttl_s, got.ended_ttl_s, got.ended_min_idle_s) == (120.0, 60.0, 12.0)
    assert (got.tombstone_ttl_s, got.max_tombstones) == (90.0, 500)
    assert got.max_sessions == 1000


def test_the_worker_evicts_ended_sessions_on_event_time(tmp_path: Path) -> None:
    """The worker's clock tick hands the pipelines the wall clock: a session that ended ten
    minutes of traffic ago goes after ``ended_min_idle_s``, though it was read only 100 s ago
    (a worker catching up on a backlog)."""
    env = {"AGENTWATCH_STORE_URL": "none", "AGENTWATCH_DATADIR": str(tmp_path)}
    monitor = Monitor(Settings.from_env(env, profile="embedded"))
    monitor.partitions[0] = monitor.new_partition(0, 0)  # as the worker does on assignment
    pipeline = monitor.partitions[0].pipeline
    assert (pipeline.settings.ended_ttl_s, pipeline.settings.ended_min_idle_s) == (300.0, 60.0)
    read = time.monotonic() - 100
    for e in (ev(0, "session_start", "old", 0), ev(1, "session_end", "old", 0)):
        pipeline.process(e, now=read)
    pipeline.process(ev(0, "session_start", "new", 10), now=read + 1)
    monitor.tick()
    assert set(pipeline.sessions) == {"new"}
    assert pipeline.stats.evicted["ended"] == 1


def test_tombstone_defaults_keep_an_hour() -> None:
    s = Settings.from_env({}, profile="production")
    assert (s.tombstone_ttl_s, s.max_tombstones) == (3600.0, 100_000)
