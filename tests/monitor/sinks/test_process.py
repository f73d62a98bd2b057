"""The sink in a child process, against the real embedded engine: same results as in-process,
reads through the child, honest durable offsets when the child is killed, outage reports."""

from __future__ import annotations

import os
import signal
import socket
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from monitor.settings import Settings
from monitor.sinks import ProcessSink, open_sink
from tests.monitor.store_fixtures import make_alert, sim_events

pytestmark = pytest.mark.clickhouse


def _sink(tmp_path: Path, **kw: Any) -> ProcessSink:
    s = open_sink(
        Settings(
            store_url=kw.pop("url", f"chdb://{tmp_path / 'child-chdb'}"),
            store_database="p_" + uuid.uuid4().hex[:8],
            datadir=tmp_path / "data",
            **kw,
        )
    )
    assert isinstance(s, ProcessSink)
    return s


def _add(sink: ProcessSink, events: list[Any], first: int = 0) -> dict[int, list[int]]:
    offsets: dict[int, list[int]] = defaultdict(list)
    for i, (raw, ev) in enumerate(events):
        p, off = i % 3, first + i // 3
        sink.add_event(raw, ev, partition=p, offset=off, caps=frozenset({"read"}))
        offsets[p].append(off)
    return offsets


def test_round_trip_through_the_child(tmp_path: Path) -> None:
    sim, events = sim_events(sessions=30)
    sink = _sink(tmp_path)
    sink.start()
    try:
        offsets = _add(sink, events)
        ev = events[4][1]
        sink.add_alert(make_alert(ev))
        assert sink.durable_offset(0) == 0
        assert sink.flush(timeout=60)
        assert all(sink.durable_offset(p) is None for p in offsets)
        st = sink.stats()
        assert st.rows_inserted["events"] == len(events) and st.rows_inserted["alerts"] == 1
        root = ev.root_session_id
        got = [r["event_id"] for r in sink.session_events(root)]
        assert got == [e.event_id for _, e in events if e.root_session_id == root]
        assert [a["alert_uid"] for a in sink.session_alerts(root)] == [
            make_alert(ev).finding_info.uid
        ]
        assert {s["root_session_id"] for s in sink.sessions(limit=100)} == set(sim.labels)
    finally:
        sink.close(timeout=10)
    assert sink._proc is not None and sink._proc.exitcode == 0


def test_a_killed_child_never_makes_durable_offsets_lie(tmp_path: Path) -> None:
    """SIGKILL the child while it holds rows in memory: the parent keeps the worker's commits
    behind them, starts a new child, and stores what comes next."""
    _, events = sim_events(sessions=40)
    half = len(events) // 2
    sink = _sink(tmp_path, sink_flush_interval_s=3600.0, sink_batch_rows=1_000_000)
    sink.start()
    try:
        first = _add(sink, events[:half])
        deadline = time.monotonic() + 30
        while sink._child_stats.buffered_rows < half and time.monotonic() < deadline:
            time.sleep(0.05)  # the child holds them (nothing inserted: huge batch, long wait)
        assert sink._child_stats.buffered_rows == half
        old = sink._proc
        os.kill(old.pid, signal.SIGKILL)
        while (sink._proc is old or sink._proc is None) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sink._proc is not old and sink._proc.is_alive()
        held = {p: sink.durable_offset(p) for p in first}
        assert all(held[p] == min(first[p]) for p in first), held
        assert sink.stats().degraded
        second = _add(sink, events[half:], first=10_000)
        assert sink.flush(timeout=60)
        stored: dict[int, set[int]] = defaultdict(set)
        for root in {e.root_session_id for _, e in events}:
            for r in sink.session_events(root):
                stored[r["source_partition"]].add(r["source_offset"])
        for p in first:
            d = sink.durable_offset(p)
            assert d == held[p]  # still held: the lost rows come back only by re-reading
            assert {o for o in first[p] + second[p] if o < d} <= stored[p]
            assert set(second[p]) <= stored[p]
    finally:
        sink.close(timeout=10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_spilled_rows_count_as_durable_across_the_process_boundary(tmp_path: Path) -> None:
    _, events = sim_events(sessions=20)
    sink = _sink(
        tmp_path,
        url=f"http://127.0.0.1:{_free_port()}",
        sink_batch_rows=20,
        sink_max_buffer_rows=20,
        sink_flush_interval_s=0.05,
        sink_spill_after_s=0.2,
    )
    sink.start()
    try:
        offsets = _add(sink, events)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # a long outage: everything ends up on disk
            if all(sink.durable_offset(p) is None for p in offsets):
                break
            time.sleep(0.05)
        st = sink.stats()
        assert st.insert_errors > 0 and st.degraded
        assert st.spooled_rows == len(events)
        assert all(sink.durable_offset(p) is None for p in offsets)  # spilled = durable
    finally:
        sink.close(timeout=2)
    spool = tmp_path / "data" / "spool"
    assert sum(1 for _ in spool.glob("*.json")) > 0


def test_the_child_stores_what_it_holds_when_the_worker_is_killed(tmp_path: Path) -> None:
    """SIGKILL the worker (the parent): the child sees its pipe close, stores what it holds,
    and exits; nothing is left running."""
    import subprocess
    import sys

    from monitor.replay import StoreReader

    store = tmp_path / "orphan-chdb"
    script = f"""
import sys, time
sys.path.insert(0, {str(Path(__file__).resolve().parents[3])!r})
from monitor.settings import Settings
from monitor.sinks import open_sink
from tests.monitor.store_fixtures import sim_events
_, events = sim_events(sessions=20)
sink = open_sink(Settings(store_url="chdb://{store}", store_database="orphan",
                          datadir={str(tmp_path / "data")!r}, sink_flush_interval_s=3600.0,
                          sink_batch_rows=1_000_000))
sink.start()
for i, (raw, ev) in enumerate(events):
    sink.add_event(raw, ev, partition=0, offset=i, caps=None)
while sink._child_stats.buffered_rows < len(events):  # the child holds them all
    time.sleep(0.05)
print(sink._proc.pid, len(events), flush=True)
time.sleep(600)
"""
    worker = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert worker.stdout is not None
        child_pid, n = (int(x) for x in worker.stdout.readline().split())
        worker.kill()
        worker.wait(10)
        deadline = time.monotonic() + 30
        while Path(f"/proc/{child_pid}").exists() and time.monotonic() < deadline:
            status = Path(f"/proc/{child_pid}/status").read_text()
            if "State:\tZ" in status:
                break
            time.sleep(0.1)
        assert (
            not Path(f"/proc/{child_pid}").exists()
            or "State:\tZ" in Path(f"/proc/{child_pid}/status").read_text()
        ), "the sink process outlived its worker"
    finally:
        worker.kill()
        worker.wait(10)
    reader = StoreReader(f"chdb://{store}", "orphan")
    try:
        total = reader.client.query("SELECT count() FROM orphan.events FINAL").result_rows[0][0]
    finally:
        reader.close()
    assert total == n


def _niceness(pid: int, tid: str) -> int:
    # /proc/<pid>/task/<tid>/stat: field 19 is the nice value (after the parenthesised name)
    stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[16])


def _comm(pid: int, tid: str) -> str:
    return Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()


@pytest.mark.parametrize("nice", [0, 7])
def test_the_child_and_every_engine_thread_run_at_the_sink_niceness(
    tmp_path: Path, nice: int
) -> None:
    """``AGENTWATCH_SINK_NICE`` lowers the priority of the whole sink process, including the
    threads chdb starts for inserts and merges (Linux keeps niceness per thread)."""
    _, events = sim_events(sessions=10)
    sink = _sink(tmp_path, sink_nice=nice)
    sink.start()
    try:
        _add(sink, events)
        assert sink.flush(timeout=60)  # chdb has run inserts: its pools exist
        pid = sink._proc.pid
        tids = os.listdir(f"/proc/{pid}/task")
        assert len(tids) > 3  # the engine's threads, not only the child's own
        base = os.getpriority(os.PRIO_PROCESS, 0)
        levels = {t: _niceness(pid, t) for t in tids}
        # ClickHouse raises its memory-tracking thread to -20 itself where it may (as root)
        raised = {t for t, n in levels.items() if n < base and _comm(pid, t) == "MemoryWorker"}
        assert {n for t, n in levels.items() if t not in raised} == {min(19, base + nice)}
    finally:
        sink.close(timeout=10)


def test_alerts_and_audit_records_cross_as_json_unchanged() -> None:
    """What the engine emits for simulated traffic (attacks included) crosses to the child as
    JSON and is read back equal to the record the worker had, and the same storage row."""
    from datetime import UTC, datetime

    from detectors.engine import AlertDecision
    from detectors.registry import build_engine
    from monitor.decisions import alert_finding
    from monitor.pipeline import Pipeline, PipelineSettings
    from monitor.redaction import Redactor
    from monitor.sinks.process import _compact
    from monitor.sinks.rows import alert_row, privileged_row
    from schemas.alerts import DetectionFinding
    from schemas.privileged import PrivilegedAction

    _, events = sim_events(sessions=80, seed=5, attack_ratio=0.5)
    pipe = Pipeline(build_engine(), PipelineSettings())
    red, now = Redactor(b"k" * 32, ["password"]), datetime(2026, 7, 1, tzinfo=UTC)
    seen = {"A": 0, "P": 0}
    for _, ev in events:
        for out in pipe.process(ev, now=ev.ts):
            if isinstance(out, AlertDecision):
                finding = alert_finding(out)
                tag, blob = _compact(("a", finding))
                back: Any = DetectionFinding.model_validate_json(blob)
                assert back == finding
                assert alert_row(red, back, now) == alert_row(red, finding, now)
            elif isinstance(out, PrivilegedAction):
                tag, blob = _compact(("p", out))
                back = PrivilegedAction.model_validate_json(blob)
                assert back == out
                assert privileged_row(red, back, now) == privileged_row(red, out, now)
            else:
                continue
            seen[tag] += 1
    assert seen["A"] > 20 and seen["P"] > 100
