"""The session-state settings (``AGENTWATCH_*_TTL_S``, ``AGENTWATCH_MAX_*``) reach every
partition's pipeline: the soak benchmark and operators bound a worker's memory with them."""

from __future__ import annotations

from pathlib import Path

from monitor.runtime import Monitor
from monitor.settings import Settings


def test_session_bounds_from_the_environment_reach_each_partition(tmp_path: Path) -> None:
    env = {
        "AGENTWATCH_IDLE_TTL_S": "120",
        "AGENTWATCH_ENDED_TTL_S": "60",
        "AGENTWATCH_TOMBSTONE_TTL_S": "90",
        "AGENTWATCH_MAX_TOMBSTONES": "500",
        "AGENTWATCH_MAX_SESSIONS": "1000",
        "AGENTWATCH_STORE_URL": "none",
        "AGENTWATCH_DATADIR": str(tmp_path),
    }
    monitor = Monitor(Settings.from_env(env, profile="embedded"))
    got = monitor.new_partition(0, 0).pipeline.settings
    assert (got.idle_ttl_s, got.ended_ttl_s) == (120.0, 60.0)
    assert (got.tombstone_ttl_s, got.max_tombstones) == (90.0, 500)
    assert got.max_sessions == 1000


def test_tombstone_defaults_keep_an_hour() -> None:
    s = Settings.from_env({}, profile="production")
    assert (s.tombstone_ttl_s, s.max_tombstones) == (3600.0, 100_000)
