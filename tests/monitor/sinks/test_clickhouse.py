"""The ClickHouse sink against the real embedded engine (chdb): batching, exactly-once reads,
an outage with catch-up, honest durable offsets, and no secret in any table or log."""

from __future__ import annotations

import json
import logging
import shutil
import socket
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from monitor.settings import Settings
from monitor.sinks import ClickHouseSink, NullSink, ProcessSink, open_sink
from monitor.sinks.spool import Spool
from schemas.errors import ConfigError
from schemas.events import ActionEvent, validate_event
from tests.monitor.store_fixtures import make_alert, make_signal, sim_events

pytestmark = pytest.mark.clickhouse


def count(client: Any, db: str, table: str, final: bool = False) -> int:
    return int(
        client.query(f"SELECT count() FROM {db}.{table}{' FINAL' if final else ''}").result_rows[0][
            0
        ]
    )


def add_all(
    sink: ClickHouseSink,
    events: list[tuple[bytes, ActionEvent]],
    partitions: int = 3,
    first_offset: int = 0,
) -> dict[int, list[int]]:
    offsets: dict[int, list[int]] = defaultdict(list)
    for i, (raw, ev) in enumerate(events):
        p = i % partitions
        off = first_offset + i // partitions
        sink.add_event(raw, ev, partition=p, offset=off, caps=frozenset({"read"}))
        offsets[p].append(off)
    return offsets


def test_batches_by_size_and_reads_back_a_session(make_sink: Any, client: Any) -> None:
    sim, events = sim_events(sessions=60)
    sink = make_sink(batch_rows=100, flush_interval_s=60)
    sink.start()
    add_all(sink, events)
    assert sink.flush(timeout=30)
    st = sink.stats()
    assert st.rows_inserted["events"] == len(events)
    # size-triggered batches of 100 rows, plus the forced final one
    assert st.inserts == -(-len(events) // 100)
    assert count(client, sink.database, "events") == len(events)
    root, label = next(iter(sim.labels.items()))
    rows = sink.session_events(root)
    expected = [e for _, e in events if e.root_session_id == root]
    assert [r["event_id"] for r in rows] == [e.event_id for e in expected]
    assert rows[0]["kind"] == "session_start" and rows[0]["task"]
    assert rows[0]["agent_id"] == label.agent_id
    listed = {s["root_session_id"]: s for s in sink.sessions(limit=1000)}
    assert set(listed) == set(sim.labels)
    assert listed[root]["events"] == len(expected)


def test_every_event_once_when_read_after_duplicate_adds(make_sink: Any, client: Any) -> None:
    _, events = sim_events(sessions=20)
    sink = make_sink(batch_rows=50)
    sink.start()
    add_all(sink, events)
    assert sink.flush(timeout=30)
    add_all(sink, events[: len(events) // 2])  # at-least-once re-delivery, separate batches
    # a producer re-sending one event with another time (sorts elsewhere: FINAL keeps both)
    raw, ev = events[5]
    doc = orjson.loads(raw)
    doc["time"] = "2026-07-01T23:59:59.000Z"
    sink.add_event(orjson.dumps(doc), validate_event(doc), partition=0, offset=10_000, caps=None)
    assert sink.flush(timeout=30)
    db = sink.database
    assert count(client, db, "events") > len(events)  # the duplicates are stored...
    roots = {e.root_session_id for _, e in events}
    seen = []
    for root in roots:
        seen += [r["event_id"] for r in sink.session_events(root)]
    assert sorted(seen) == sorted(e.event_id for _, e in events)  # ...but read once
    total = client.query(
        f"SELECT count() FROM (SELECT event_id FROM {db}.events FINAL LIMIT 1 BY event_id)"
    ).result_rows[0][0]
    assert total == len(events)
    sess = {s["root_session_id"]: s["events"] for s in sink.sessions(limit=100)}
    assert sum(sess.values()) == len(events)  # uniqExact: duplicates do not inflate counts


def test_alert_versions_latest_wins_and_signals_once(make_sink: Any) -> None:
    _, events = sim_events(sessions=5)
    sink = make_sink()
    sink.start()
    add_all(sink, events)
    ev = events[3][1]
    v1 = make_alert(ev, risk=0.6)
    v2 = make_alert(
        ev, risk=0.95, update=True, response="kill_session", modified_ms=int(ev.ts * 1000) + 500
    )
    sink.add_alert(v1)
    assert sink.flush()
    sink.add_alert(v2)
    claims = make_signal(ev, v2)
    sink.add_signal(claims.jti, "h.p.s", claims, root_session_id=ev.root_session_id)
    sink.add_signal(claims.jti, "h.p.s", claims, root_session_id=ev.root_session_id)
    assert sink.flush()
    alerts = sink.session_alerts(ev.root_session_id)
    assert len(alerts) == 1
    a = alerts[0]
    assert a["activity_id"] == 2 and a["response"] == "kill_session"
    assert a["session_risk"] == pytest.approx(0.95)
    assert a["finding"]["finding_info"]["uid"] == v1.finding_info.uid
    sigs = sink.session_signals(ev.root_session_id)
    assert [s["jti"] for s in sigs] == [claims.jti]
    assert sigs[0]["txn"] == v2.finding_info.uid and sigs[0]["compact_jws"] == "h.p.s"
    listed = sink.sessions(only_alerted=True)
    assert [s["root_session_id"] for s in listed] == [ev.root_session_id]
    assert listed[0]["kills"] == 1 and listed[0]["risk"] == pytest.approx(0.95)


def test_durable_offset_tracks_the_lowest_pending_offset(make_sink: Any) -> None:
    _, events = sim_events(sessions=5)
    sink = make_sink(flush_interval_s=60, batch_rows=100_000)
    sink.start()
    assert sink.durable_offset(0) is None
    for i, (raw, ev) in enumerate(events[:10]):
        sink.add_event(raw, ev, partition=7, offset=100 + i, caps=None)
    assert sink.durable_offset(7) == 100
    assert sink.durable_offset(8) is None
    assert sink.flush()
    assert sink.durable_offset(7) is None


def test_outage_loses_nothing_and_catches_up(make_sink: Any, client: Any) -> None:
    """The events table disappears (DETACH) while traffic goes on: rows wait in memory up to
    the bound, then spill to disk; durable_offset never claims what is neither inserted nor
    spilled; when the table is back, everything lands exactly once."""
    _, events = sim_events(sessions=60)
    sink = make_sink(batch_rows=40, max_buffer_rows=120)
    sink.start()
    db = sink.database
    client.command(f"DETACH TABLE {db}.events")
    offsets = add_all(sink, events)  # never blocks, whatever ClickHouse does
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # the builder has cut everything into batches
        st = sink.stats()
        if st.insert_errors and st.spooled_rows + st.buffered_rows == len(events) <= (
            st.spooled_rows + 120 + 40
        ):
            break
        time.sleep(0.05)
    st = sink.stats()
    assert st.insert_errors > 0 and st.degraded
    assert st.spooled_rows > 0
    assert st.buffered_rows <= 120 + 40  # the memory bound, plus the batch being built
    # honesty: every offset below durable_offset(p) is in a spool file (offsets first: files
    # only grow while the table is away)
    durable = {p: sink.durable_offset(p) for p in offsets}
    spool = Spool(sink.spool.directory)
    spilled: dict[int, set[int]] = defaultdict(set)
    for f in spool.files():
        _, tables = spool.read(f)
        for row in tables.get("events", []):
            spilled[row[27]].add(row[28])  # source_partition, source_offset
    for p, offs in offsets.items():
        d = durable[p]
        below = [o for o in offs if d is None or o < d]
        assert set(below) <= spilled[p], f"partition {p}: durable_offset {d} is not honest"
    client.command(f"ATTACH TABLE {db}.events")
    assert sink.flush(timeout=60)
    assert not spool.files()
    assert count(client, db, "events", final=True) == len(events)
    assert count(client, db, "events") == len(events)  # retries inserted nothing twice
    for p in offsets:
        assert sink.durable_offset(p) is None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_server_spills_and_a_later_store_replays(
    make_sink: Any, client: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A ClickHouse server URL that refuses connections: detection goes on, the rows go to
    the spool (counted durable), close() spills the rest; the spool is replayed when a store
    is reachable again, with the batch tokens, so replaying a file twice inserts nothing twice."""
    _, events = sim_events(sessions=20)
    datadir = tmp_path / "shared"
    caplog.set_level(logging.INFO)
    down = make_sink(
        url=f"http://aw:Sup3rS3cretPw@127.0.0.1:{_free_port()}",
        datadir=datadir,
        batch_rows=30,
        max_buffer_rows=30,
        connect_timeout_s=0.5,
    )
    down.start()
    offsets = add_all(down, events)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        st = down.stats()
        if st.insert_errors and st.spooled_rows >= len(events) - 60:
            break
        time.sleep(0.05)
    assert down.stats().insert_errors > 0
    down.close(timeout=1)
    assert "ClickHouse insert failed" in caplog.text
    assert "Sup3rS3cretPw" not in caplog.text  # the store's password is not logged
    spool = Spool(datadir / "spool")
    files = spool.files()
    assert sum(len(spool.read(f)[1]["events"]) for f in files) == len(events)
    shutil.copy(files[0], files[0].with_name("99999999999999999999-again.json"))  # a re-try
    up = make_sink(datadir=datadir)
    up.start()
    assert up.flush(timeout=30)
    assert count(client, up.database, "events") == len(events)
    assert not spool.files()
    assert all(up.durable_offset(p) is None for p in offsets)


def test_no_secret_reaches_any_table_spool_or_log(
    make_sink: Any, client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    sim, events = sim_events(sessions=150, attack_ratio=0.6)
    assert len(sim.secrets) >= 10
    planted = sorted(sim.secrets) + ["hunter2-Pa55w0rd!", "AKIAZZZZZZZZZZZZZZZZ"]
    doc = orjson.loads(events[0][0])
    doc["event_id"] = "planted-1"
    doc["tool"] = {
        "name": "http.post",
        "arguments": {"password": planted[-2], "url": f"https://x.io/?k={planted[-1]}"},
    }
    doc["kind"] = "tool_call"
    events.append((orjson.dumps(doc), validate_event(doc)))
    sink = make_sink(batch_rows=200, max_buffer_rows=100)
    sink.start()
    db = sink.database
    client.command(f"DETACH TABLE {db}.events")  # so that rows also go through the spool
    with caplog.at_level(logging.DEBUG):
        add_all(sink, events)
        ev = events[-1][1]
        alert = make_alert(ev, message=f"sent {planted[0]} to https://x.io/?k={planted[-1]}")
        sink.add_alert(alert)
        claims = make_signal(ev, alert)
        sink.add_signal(claims.jti, "h.p.s", claims, root_session_id=ev.root_session_id)
        deadline = time.monotonic() + 20
        while sink.stats().spooled_rows == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        spooled = b"".join(f.read_bytes() for f in sink.spool.files())
        client.command(f"ATTACH TABLE {db}.events")
        assert sink.flush(timeout=60)
    assert spooled
    dumps = {
        t: client.raw_query(f"SELECT * FROM {db}.{t} FORMAT TSVRaw")
        for t in ("events", "alerts", "kill_signals", "sessions")
    }
    assert len(dumps["events"].splitlines()) == len(events)
    logs = caplog.text.encode()
    for secret in planted:
        # the value, its JSON-escaped form, and every line of a multi-line key
        needles = {secret.encode(), orjson.dumps(secret)[1:-1]}
        needles |= {line.encode() for line in secret.splitlines() if len(line) >= 16}
        for name, blob in {**dumps, "spool": spooled, "log": logs}.items():
            for needle in needles:
                assert needle not in blob, f"secret {secret[:6]}… stored in clear in {name}"
    assert b"[REDACTED:" in dumps["events"] and b"[REDACTED:" in dumps["alerts"]
    assert sink.stats().values_masked >= len(planted)


def test_open_sink_by_url_scheme(tmp_path: Path) -> None:
    assert isinstance(open_sink(Settings(store_url="none")), NullSink)
    s = open_sink(Settings(store_url="http://ch:8123", datadir=tmp_path, sink_process=False))
    assert isinstance(s, ClickHouseSink) and not s.embedded
    p = open_sink(Settings(store_url="http://ch:8123", datadir=tmp_path))
    assert isinstance(p, ProcessSink) and p.config["url"] == "http://ch:8123"
    assert (tmp_path / "redaction.key").stat().st_mode & 0o777 == 0o600
    with pytest.raises(ConfigError, match="unknown scheme"):
        open_sink(Settings(store_url="mysql://x", datadir=tmp_path))
    with pytest.raises(ConfigError, match="absolute"):
        open_sink(Settings(store_url="chdb://relative/path", datadir=tmp_path))


def test_privileged_actions_table_holds_the_audit_records_once(make_sink: Any, client: Any) -> None:
    from detectors.registry import build_engine
    from monitor.pipeline import Pipeline
    from schemas.privileged import PrivilegedAction

    docs = [
        {
            "kind": "session_start",
            "intent": {"task": "Deploy api", "allowed_environments": ["prod"]},
        },
        {"kind": "tool_call", "tool": {"name": "read_file", "arguments": {"path": "a.md"}}},
        {
            "kind": "tool_call",
            "tool": {"name": "vault.read_secret", "arguments": {"path": "kv/prod/api"}},
            "actor": {
                "agent_id": "deployer",
                "workload_id": "spiffe://acme/deployer",
                "credential": {"iss": "https://sts", "jti": "tok-1"},
            },
        },  # fmt: skip
        {
            "kind": "tool_call",
            "tool": {"name": "http.post", "arguments": {"url": "https://u:hunter2@x.example/a"}},
        },
    ]
    pipe = Pipeline(build_engine())
    records: list[PrivilegedAction] = []
    for i, d in enumerate(docs):
        doc = {
            "event_id": f"p-{i}",
            "time": f"2026-07-01T12:00:0{i}Z",
            "tenant": "acme",
            "session": {"id": "ps1", "seq": i},
            "actor": {"agent_id": "deployer"},
            **d,
        }
        records += [o for o in pipe.process(validate_event(doc), now=float(i))
                    if isinstance(o, PrivilegedAction)]  # fmt: skip
    assert [r.event_id for r in records] == ["p-2", "p-3"]
    sink = make_sink()
    sink.start()
    for r in records + records[:1]:  # the first one replayed: the same uid collapses
        sink.add_privileged(r)
    assert sink.flush(timeout=30)
    assert sink.stats().rows_inserted["privileged_actions"] == 3
    rows = client.query(
        f"SELECT event_id, uid, agent_id, workload_id, capabilities, scope, credential, "
        f"destinations FROM {sink.database}.privileged_actions FINAL ORDER BY time"
    ).result_rows
    assert [r[0] for r in rows] == ["p-2", "p-3"]
    secret, post = rows
    assert secret[1] == records[0].uid and secret[2:4] == ("deployer", "spiffe://acme/deployer")
    assert secret[4] == ["secret_retrieval"]
    assert json.loads(secret[5])["task"] == "Deploy api" and json.loads(secret[6])["jti"] == "tok-1"
    assert "external_egress" in post[4] and "hunter2" not in str(post[7])  # redacted
    assert count(client, sink.database, "events") == 0  # audit records are not events


def test_the_latest_accepted_event_time_is_read_back(make_sink: Any) -> None:
    """Regression (found by the fuzz test): events were accepted up to 2200, but the store
    partitions by ``toDate(time)``, whose range ends 2149-06-06: a 2179 event landed in a
    wrapped-around partition that replay's time-range read never found. The schema now stops
    before that; the extremes it accepts are read back."""
    from schemas.errors import SchemaViolation
    from schemas.events import MAX_EVENT_TIME, MIN_EVENT_TIME, parse_event

    sink = make_sink()
    sink.start()
    last = MAX_EVENT_TIME - timedelta(seconds=1)
    times = [MIN_EVENT_TIME, datetime(2026, 7, 1, tzinfo=UTC), last]
    for i, t in enumerate(times):
        doc = {
            "event_id": f"edge-{i}",
            "time": t.isoformat(),
            "kind": "session_start" if i == 0 else "tool_call",
            "session": {"id": "edge", "seq": i},
            "actor": {"agent_id": "a"},
            "tool": {"name": "fs.read_file"},
        }
        raw = json.dumps(doc).encode()
        sink.add_event(raw, parse_event(raw), partition=0, offset=i, caps=None)
    assert sink.flush(timeout=30)
    assert [r["event_id"] for r in sink.session_events("edge")] == ["edge-0", "edge-1", "edge-2"]
    late = json.dumps({**doc, "time": "2149-06-07T00:00:00Z"}).encode()
    with pytest.raises(SchemaViolation, match="outside 2000-01-01..2149-01-01"):
        parse_event(late)
