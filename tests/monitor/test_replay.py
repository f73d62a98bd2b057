"""``agentwatch replay``: a root session's timeline from the store, alerts and kill signals
where they were decided, sub-agents indented; as a table, JSON lines and a PNG."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from monitor import replay as rp
from monitor import replay_render as rr
from monitor.cli import app
from schemas.errors import SinkError
from tests.monitor.store_fixtures import make_alert, make_signal, sim_events

pytestmark = pytest.mark.clickhouse


@pytest.fixture
def stored(make_sink: Any) -> dict[str, Any]:
    """A store with simulated traffic, one delegating attack session alerted and killed."""
    sim, events = sim_events(sessions=40, seed=4, attack_ratio=0.5)
    root = next(
        lab.session_id
        for lab in sim.labels.values()
        if lab.attack_type and lab.harm_session_id != lab.session_id
    )
    sink = make_sink()
    sink.start()
    for i, (raw, ev) in enumerate(events):
        sink.add_event(raw, ev, partition=0, offset=i, caps=frozenset({"read"}))
    harm_id = sim.labels[root].harm_event_id
    harm = next(ev for _, ev in events if ev.event_id == harm_id)
    alert = make_alert(harm, response="kill_session", risk=0.97)
    claims = make_signal(harm, alert)
    sink.add_alert(alert)
    sink.add_signal(claims.jti, "h.p.s", claims, root_session_id=root)
    assert sink.flush()
    url, db = sink.url, sink.database
    sink.close()  # the worker stops: its chdb path can be opened directly
    n = sum(1 for _, ev in events if ev.root_session_id == root)
    return {"url": url, "db": db, "root": root, "harm": harm_id, "alert": alert, "n": n}


def test_timeline_places_alert_and_kill_after_their_event(stored: dict[str, Any]) -> None:
    reader = rp.StoreReader(stored["url"], stored["db"])
    try:
        rec = rp.load(reader, stored["root"])
    finally:
        reader.close()
    rows = rp.timeline(rec)
    assert [r["type"] for r in rows].count("event") == stored["n"]
    i = next(i for i, r in enumerate(rows) if r.get("event_id") == stored["harm"])
    assert rows[i + 1]["type"] == "alert" and rows[i + 2]["type"] == "kill"
    assert rows[i + 1]["alert_uid"] == stored["alert"].finding_info.uid
    assert any(r["depth"] > 0 for r in rows if r["type"] == "event")  # a sub-agent
    offsets = [r["offset_s"] for r in rows if r["type"] == "event"]
    assert offsets == sorted(offsets) and offsets[0] == 0
    console = Console(record=True, width=200)
    rr.render_table(rec, rows, console)
    text = console.export_text()
    assert "ALERT" in text and "KILL" in text and stored["root"] in text


def test_cli_jsonl_and_png(stored: dict[str, Any], tmp_path: Path) -> None:
    png = tmp_path / "t.png"
    res = CliRunner().invoke(
        app,
        [
            "replay",
            stored["root"],
            "--store",
            stored["url"],
            "--format",
            "jsonl",
            "--png",
            str(png),
        ],
        env={"AGENTWATCH_STORE_DATABASE": stored["db"]},
    )
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    assert sum(r["type"] == "event" for r in rows) == stored["n"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_cli_unknown_session(stored: dict[str, Any]) -> None:
    res = CliRunner().invoke(
        app,
        ["replay", "nope", "--store", stored["url"]],
        env={"AGENTWATCH_STORE_DATABASE": stored["db"]},
    )
    assert res.exit_code == 1 and "no session 'nope'" in res.output


def test_worker_document_round_trip(stored: dict[str, Any]) -> None:
    reader = rp.StoreReader(stored["url"], stored["db"])
    try:
        doc = rp.session_replay(reader, stored["root"])
        direct = rp.timeline(rp.load(reader, stored["root"]))
        listed = rp.sessions_document(reader, only_alerted=True)
    finally:
        reader.close()
    json.dumps(doc)  # JSON as it is
    assert rp.timeline(rp.from_document(doc)) == direct
    assert [s["root_session_id"] for s in listed] == [stored["root"]]
    assert listed[0]["kills"] == 1 and listed[0]["alerts"] == 1
    assert listed[0]["last_time"].endswith("Z")


def test_a_running_workers_path_gives_a_clear_error(stored: dict[str, Any]) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, clickhouse_connect; c = clickhouse_connect.get_client(dsn=sys.argv[1]);"
            " c.query('SELECT 1'); print('ready', flush=True); sys.stdin.read()",
            stored["url"],
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        with pytest.raises(SinkError, match="running worker"):
            rp.StoreReader(stored["url"], stored["db"])
    finally:
        holder.kill()
        holder.wait(5)


def test_cli_reads_a_running_workers_api(stored: dict[str, Any]) -> None:
    """``--worker URL``: the timeline from the worker's read route, as the route would serve
    :func:`session_replay` (a stand-in HTTP server over the same store)."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    reader = rp.StoreReader(stored["url"], stored["db"])
    doc = json.dumps(rp.session_replay(reader, stored["root"])).encode()
    reader.close()
    paths: list[str] = []

    class Route(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            paths.append(self.path)
            ok = self.path == f"/api/sessions/{stored['root']}/replay"
            self.send_response(200 if ok else 404)
            self.end_headers()
            self.wfile.write(doc if ok else b"{}")

        def log_message(self, *args: Any) -> None:
            return None

    server = HTTPServer(("127.0.0.1", 0), Route)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        res = CliRunner().invoke(
            app, ["replay", stored["root"], "--worker", url, "--format", "jsonl"]
        )
        missing = CliRunner().invoke(app, ["replay", "nope", "--worker", url])
    finally:
        server.shutdown()
        server.server_close()
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    assert sum(r["type"] == "event" for r in rows) == stored["n"]
    assert missing.exit_code == 2 and "cannot read session nope" in missing.output


def test_cli_lists_alerted_sessions(stored: dict[str, Any]) -> None:
    res = CliRunner().invoke(
        app,
        ["sessions", "--store", stored["url"], "--alerted"],
        env={"AGENTWATCH_STORE_DATABASE": stored["db"], "COLUMNS": "200"},
    )
    assert res.exit_code == 0, res.output
    assert stored["root"] in res.output and "1 root sessions" in res.output
