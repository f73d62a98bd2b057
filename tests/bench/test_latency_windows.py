"""The latency bench's over-time table (``bench.latency.windows``) and machine CPU reading."""

from __future__ import annotations

import time

from bench.latency import machine_busy_s, windows


def _sample(produced: float, latency_ms: float) -> dict[str, float]:
    return {"produced": produced, "received": produced + latency_ms / 1000}


def test_sessions_fall_in_the_window_of_their_deciding_event() -> None:
    samples = [_sample(100.0, 10), _sample(104.0, 30), _sample(111.0, 200), _sample(125.0, 5)]
    rows = windows(samples, [], 10.0)
    assert [r["from_s"] for r in rows] == [0.0, 10.0, 20.0]
    assert [r["sessions"] for r in rows] == [2, 1, 1]
    assert rows[0]["p50_ms"] == 10.0 and rows[0]["max_ms"] == 30.0
    assert rows[1]["p99_ms"] == 200.0
    assert rows[0]["broker_cores"] is None  # no ticks, no CPU shares


def test_cpu_shares_come_from_the_ticks_inside_each_window() -> None:
    samples = [_sample(100.0, 10), _sample(112.0, 10)]
    # (wall, lag, broker CPU s, worker CPU s): broker 0.2 then 0.8 of a core, worker 0.5 flat
    ticks: list[tuple[float, float, float | None, float]]
    ticks = [(100.0 + t, float(t), 0.2 * t, 0.5 * t) for t in range(0, 10)]
    ticks += [(110.0 + t, 50.0, 1.8 + 0.8 * t, 5.0 + 0.5 * t) for t in range(0, 10)]
    rows = windows(samples, ticks, 10.0)
    assert rows[0]["broker_cores"] == 0.2 and rows[1]["broker_cores"] == 0.8
    assert rows[0]["worker_cores"] == rows[1]["worker_cores"] == 0.5
    assert rows[0]["lag_max"] == 9.0 and rows[1]["lag_max"] == 50.0


def test_an_empty_run_has_no_rows() -> None:
    assert windows([], [(1.0, 0.0, 0.0, 0.0)], 10.0) == []


def test_machine_busy_counts_this_process_spinning() -> None:
    before = machine_busy_s()
    end = time.perf_counter() + 0.3
    while time.perf_counter() < end:
        pass
    assert machine_busy_s() - before >= 0.2


def test_without_a_broker_pid_only_the_worker_share_is_given() -> None:
    samples = [_sample(100.0, 10)]
    ticks = [(100.0 + t, 0.0, None, 0.5 * t) for t in range(0, 10)]
    (row,) = windows(samples, ticks, 10.0)
    assert row["broker_cores"] is None and row["worker_cores"] == 0.5
