"""bench.ticks builds idle sessions with the production TTLs, and its ticks evict the ended ones
only."""

from __future__ import annotations

import json
from pathlib import Path

from bench.ticks import main


def test_the_ticks_bench_times_ticks_over_idle_running_sessions(tmp_path: Path) -> None:
    assert main(["--sessions", "400", "--ticks", "5", "--out", str(tmp_path)]) == 0
    (run,) = json.loads((tmp_path / "ticks.json").read_text())["runs"]
    assert run["ended"] >= 1 and run["sessions"] > 400  # in-flight ones and the ended 1%
    # 400 s idle: past the ended TTL (300 s), not the idle one (3,600 s): only the ended go
    assert run["running_idle"] == run["sessions"] - run["ended"]
    assert run["outputs"] >= run["ended"]  # an Evicted each, besides what timers fired
    assert run["tick_median_ms"] >= 0 and run["tick_max_ms"] >= run["tick_median_ms"]
