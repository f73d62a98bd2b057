"""``agentwatch demo``: the whole system on this machine, watched live.

Starts, as child processes: the embedded Kafka-protocol broker (Tansu) on a free loopback
port, the worker (``agentwatch worker``, embedded ClickHouse under ``var/demo/``), and the
simulator (``agentwatch simulate``: several agent types, mostly benign sessions, some attacks,
sub-agents). Then it follows ``monitor.alerts`` and ``agent.revocations``: every kill signal
is verified against the JWKS the worker serves, as a revocation consumer would. Ctrl-C (or
``--duration``) stops the simulator, then the worker (which writes a final checkpoint and
flushes ClickHouse), then the broker, and prints a summary with what ClickHouse stored.
Every child also dies with the demo if the demo is killed (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from monitor.broker import EmbeddedBroker
from monitor.processes import die_with_parent, free_port, stop_process
from monitor.revocations import RevocationVerifier
from monitor.settings import Settings
from monitor.topics import ensure_topics


@dataclass
class Seen:
    """What the demo has watched so far."""

    alerts: dict[str, dict[str, Any]] = field(default_factory=dict)
    recent: deque[tuple[str, str]] = field(default_factory=lambda: deque(maxlen=12))
    kills_verified: int = 0
    kills_invalid: int = 0
    kills_duplicate: int = 0
    by_rule: Counter[str] = field(default_factory=Counter)
    killed_sessions: set[str] = field(default_factory=set)
    metrics: dict[str, float] = field(default_factory=dict)
    first_kill_after_s: float | None = None


def _child(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            cmd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
            start_new_session=True,  # Ctrl-C reaches the demo only; it stops them in order
        )


def _env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTWATCH_")}
    env["AGENTWATCH_PROFILE"] = "embedded"
    for name in ("broker", "datadir", "store_url", "web_port", "app_id", "topic_partitions"):
        env["AGENTWATCH_" + name.upper()] = str(getattr(settings, name))
    return env


def _get_json(url: str, timeout: float = 2.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


def _scrape(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url + "/metrics", timeout=2) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("agentwatch_") and not line.startswith("#"):
            head, _, value = line.rpartition(" ")
            name = head.partition("{")[0]
            if name.endswith(("_total", "_sessions", "_rows")) or name.endswith("_count"):
                out[name] = out.get(name, 0.0) + float(value)
    return out


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the worker exited with {proc.returncode}; see {log}")
        with contextlib.suppress(OSError, ValueError):
            if _get_json(url + "/readyz", 1.0).get("ready"):
                return
        time.sleep(0.1)
    raise TimeoutError(f"the worker was not ready after {timeout:.0f}s; see {log}")


def _view(seen: Seen, started: float, where: str) -> Group:
    m = seen.metrics
    events = m.get("agentwatch_events_consumed_total", 0.0)
    elapsed = max(1e-6, time.monotonic() - started)
    head = (
        f"[bold]{events:,.0f}[/] events ({events / elapsed:,.0f}/s) · "
        f"[bold]{m.get('agentwatch_active_sessions', 0):,.0f}[/] active sessions · "
        f"[yellow]{len(seen.alerts)}[/] alerts · "
        f"[red]{seen.kills_verified}[/] kill signals verified"
        + (f" · [red]{seen.kills_invalid} INVALID[/]" if seen.kills_invalid else "")
        + f" · {m.get('agentwatch_events_rejected_total', 0):,.0f} dead-lettered"
    )
    table = Table(expand=True, box=None, pad_edge=False)
    for col in ("time", "what", "agent", "root session", "rule", "detail"):
        table.add_column(col, overflow="fold")
    for _kind, row in reversed(seen.recent):
        table.add_row(*json.loads(row))
    return Group(
        Panel(head, title="agentwatch demo", subtitle=where, border_style="blue"),
        table,
    )


def _on_alert(seen: Seen, value: bytes) -> None:
    a = json.loads(value)
    uid = a["finding_info"]["uid"]
    aw = a["unmapped"]["agentwatch"]
    if uid not in seen.alerts:
        seen.by_rule[a["finding_info"]["analytic"]["uid"]] += 1
    seen.alerts[uid] = a
    row = [
        time.strftime("%H:%M:%S"),
        "[red]ALERT+KILL[/]" if aw["response"] == "kill_session" else "[yellow]ALERT[/]",
        a["actor"]["app_name"],
        aw["root_session_id"],
        a["finding_info"]["analytic"]["uid"],
        f"{a['severity']} · risk {aw['risk']:.2f} · {a['finding_info']['related_events_count']}"
        f" evidence events",
    ]
    seen.recent.append(("alert", json.dumps(row)))


def _rule_of(claims: Any, seen: Seen) -> str:
    """The rule behind a kill signal: from its alert (``txn``), else from its reason text."""
    if claims is None:
        return "?"
    alert = seen.alerts.get(claims.txn)
    if alert is not None:
        return str(alert["finding_info"]["analytic"]["uid"])
    for event in claims.events.values():
        reason = str(event.get("reason_admin", {}).get("en", ""))
        if reason.startswith("agentwatch "):  # "agentwatch AW-COMBO-001: ..."
            return reason.split()[1].rstrip(":")
    return "session-revoked"


def _on_kill(
    console: Console, seen: Seen, verifier: RevocationVerifier, value: bytes, started: float
) -> None:
    r = verifier.receive(value)
    if r.outcome == "invalid":
        seen.kills_invalid += 1
        detail = f"[red]signature/claims INVALID: {r.reason}[/]"
        session = "?"
    elif r.outcome == "duplicate":
        seen.kills_duplicate += 1
        return
    else:
        assert r.claims is not None
        seen.kills_verified += 1
        if seen.first_kill_after_s is None:
            seen.first_kill_after_s = time.monotonic() - started
        session = r.claims.sub_id.session.id
        seen.killed_sessions.add(session)
        kid = verifier.jwks["keys"][0]["kid"][:10]
        detail = f"[green]signature verified[/] (kid {kid}…) · jti {r.jti}"
    agent = ""
    with contextlib.suppress(Exception):
        assert r.claims is not None and r.claims.sub_id.agent is not None
        agent = r.claims.sub_id.agent.uri.rsplit("/", 1)[-1]
    rule = _rule_of(r.claims, seen)
    row = [time.strftime("%H:%M:%S"), "[bold red]KILL SIGNAL[/]", agent, session, rule, detail]
    seen.recent.append(("kill", json.dumps(row)))
    # one line per kill signal above the live view (and in logs, where the view is not drawn)
    console.print(
        f"{row[0]} [bold red]KILL[/] session [bold]{session}[/] ({agent}) by {rule}: {detail}"
    )


def _stored(settings: Settings) -> dict[str, int]:
    """Row counts in the embedded ClickHouse (the worker has stopped and released it)."""
    import clickhouse_connect

    path = settings.store_url.removeprefix("chdb://")
    client = clickhouse_connect.get_client(dsn=f"chdb://{path}")
    try:
        out = {}
        for table in ("events", "alerts", "kill_signals"):
            with contextlib.suppress(Exception):
                rows = client.query(f"SELECT count() FROM {settings.store_database}.{table} FINAL")
                out[table] = int(rows.result_rows[0][0])
        return out
    finally:
        with contextlib.suppress(Exception):
            client.close()


def _summary(console: Console, seen: Seen, stored: dict[str, int], elapsed: float) -> None:
    m = seen.metrics
    t = Table(title=f"agentwatch demo: {elapsed:.0f}s", show_header=True)
    t.add_column("")
    t.add_column("count", justify="right")
    t.add_row("events processed", f"{m.get('agentwatch_events_consumed_total', 0):,.0f}")
    t.add_row("records dead-lettered", f"{m.get('agentwatch_events_rejected_total', 0):,.0f}")
    t.add_row("alerts (distinct)", f"{len(seen.alerts)}")
    for rule, n in seen.by_rule.most_common():
        t.add_row(f"  {rule}", f"{n}")
    t.add_row("kill signals verified", f"{seen.kills_verified}")
    t.add_row("kill signals failing verification", f"{seen.kills_invalid}")
    t.add_row("sessions revoked", f"{len(seen.killed_sessions)}")
    if seen.first_kill_after_s is not None:
        t.add_row("first kill signal after start", f"{seen.first_kill_after_s:.1f}s")
    for table, n in stored.items():
        t.add_row(f"ClickHouse {table} rows", f"{n:,}")
    console.print(t)


def run_demo(
    *,
    duration: float | None,
    rate: float,
    attack_ratio: float,
    seed: int,
    workdir: Path,
    console: Console | None = None,
) -> int:
    """Run the demo; return the exit code (0 on a clean stop)."""
    console = console or Console()
    started = time.monotonic()
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    procs: list[subprocess.Popen[bytes]] = []
    broker = EmbeddedBroker(log_path=workdir / "broker.log")

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    seen = Seen()
    settings: Settings | None = None
    code = 0
    try:
        with console.status("starting the embedded broker (Tansu)…"):
            broker.start()
        settings = Settings.from_env(
            {},
            profile="embedded",
            broker=broker.url,
            datadir=(workdir / "worker").resolve(),
            store_url=f"chdb://{(workdir / 'clickhouse').resolve()}",
            web_port=free_port(),
        )
        ensure_topics(broker.bootstrap, settings)
        url = f"http://127.0.0.1:{settings.web_port}"
        env = _env(settings)
        with console.status("starting the worker (joins the group, restores partitions)…"):
            worker = _child([sys.executable, "-m", "monitor.cli", "worker"], env,
                            workdir / "worker.log")  # fmt: skip
            procs.append(worker)
            _wait_ready(url, worker, workdir / "worker.log", 120.0)
        verifier = RevocationVerifier(
            url + "/.well-known/jwks.json", issuer=settings.issuer,
            audience=settings.audience[0], max_age_s=600,
        )  # fmt: skip
        sim_cmd = [sys.executable, "-m", "monitor.cli", "simulate", "--rate", str(rate),
                   "--bootstrap", broker.bootstrap, "--attack-ratio", str(attack_ratio),
                   "--seed", str(seed)]  # fmt: skip
        procs.append(_child(sim_cmd, env, workdir / "simulator.log"))
        console.print(
            f"[bold]broker[/] {broker.bootstrap} · [bold]worker[/] {url} "
            f"(/metrics, /.well-known/jwks.json) · [bold]ClickHouse[/] {workdir / 'clickhouse'}"
            f" · logs in {workdir}/ · [bold]Ctrl-C[/] stops everything"
        )
        code = _watch(console, seen, settings, verifier, url, procs, started, duration)
    except KeyboardInterrupt:
        console.print("[bold]stopping…[/]")
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip cleanup
        for proc in reversed(procs):
            stop_process(proc, 30.0)
        broker.stop()
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    stored: dict[str, int] = {}
    if settings is not None and settings.store_url.startswith("chdb://"):
        with contextlib.suppress(Exception):
            stored = _stored(settings)
    _summary(console, seen, stored, time.monotonic() - started)
    if seen.kills_invalid:
        code = code or 1
    return code


def _watch(
    console: Console,
    seen: Seen,
    settings: Settings,
    verifier: RevocationVerifier,
    url: str,
    procs: list[subprocess.Popen[bytes]],
    started: float,
    duration: float | None,
) -> int:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap, fetch_max_wait_ms=20)
    tps = [TopicPartition(t, p) for t in (settings.topic_alerts, settings.topic_revocations)
           for p in range(settings.topic_partitions)]  # fmt: skip
    consumer.assign(tps)
    consumer.seek_to_beginning()
    where = f"worker {url}"
    scraped = 0.0
    try:
        with Live(_view(seen, started, where), console=console, refresh_per_second=4) as live:
            while duration is None or time.monotonic() - started < duration:
                for tp, records in consumer.poll(timeout_ms=200).items():
                    for r in records:
                        if r.value is None:
                            continue
                        if tp.topic == settings.topic_alerts:
                            _on_alert(seen, r.value)
                        else:
                            _on_kill(console, seen, verifier, r.value, started)
                if time.monotonic() - scraped > 1.0:
                    scraped = time.monotonic()
                    with contextlib.suppress(OSError, ValueError):
                        seen.metrics = _scrape(url)
                    if procs[0].poll() is not None:
                        console.print(f"[red]the worker exited with {procs[0].returncode}[/]")
                        return 1
                live.update(_view(seen, started, where))
        return 0
    finally:
        with contextlib.suppress(OSError, ValueError):
            seen.metrics = _scrape(url)  # the final numbers, before the worker stops
        consumer.close()
