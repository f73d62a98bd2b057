"""``agentwatch demo``: the whole system on this machine, watched live.

Starts, as child processes: the embedded Kafka-protocol broker (Tansu) on a free loopback
port, the worker (``agentwatch worker``, embedded ClickHouse under ``var/demo/``, the simulated
organisation's domains as internal domains, ``--rules`` files loaded after the built-in pack),
and the simulator (``agentwatch simulate``: several agent types, mostly benign sessions, some
attacks, sub-agents) behind a simulated gateway that honours kill signals: it follows
``agent.revocations``, verifies every signal against the worker's JWKS, and refuses the rest
of a revoked session (a few sessions go through a gateway that ignores kills, so activity
after a kill shows up too). The demo follows ``monitor.alerts`` and ``agent.revocations``
itself (verifying every kill signal, as a revocation consumer would) and shows them live.
Ctrl-C (or ``--duration``) stops the simulator, then the worker (which writes a final
checkpoint and flushes ClickHouse), then the broker, and prints a summary
(:mod:`monitor.demo_view`). Every child also dies with the demo if the demo is killed
(``PR_SET_PDEATHSIG``).
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
from pathlib import Path
from types import FrameType
from typing import Any

from rich.console import Console
from rich.live import Live

from monitor.broker import EmbeddedBroker
from monitor.demo_view import Seen, live_view, parse_metrics, summary
from monitor.processes import die_with_parent, free_port, stop_process
from monitor.revocations import RevocationVerifier
from monitor.settings import Settings
from monitor.topics import ensure_topics


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


#: the simulated organisation's own domains (monitor.scenarios.INTERNAL), as a deployment
#: would configure its own
DEMO_DOMAINS = ("acme.com", "acme.internal")
#: share of simulated sessions whose gateway ignores kill signals (AW-REVOKE-002 finds them)
IGNORE_SHARE = 0.1


def _env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTWATCH_")}
    env["AGENTWATCH_PROFILE"] = "embedded"
    for name in ("broker", "datadir", "store_url", "web_port", "app_id", "topic_partitions"):
        env["AGENTWATCH_" + name.upper()] = str(getattr(settings, name))
    env["AGENTWATCH_INTERNAL_DOMAINS"] = ",".join(settings.internal_domains)
    if settings.rules_paths:
        env["AGENTWATCH_RULES_PATHS"] = ",".join(str(p) for p in settings.rules_paths)
    return env


def _get_json(url: str, timeout: float = 2.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


def _scrape(url: str, seen: Seen) -> None:
    with urllib.request.urlopen(url + "/metrics", timeout=2) as resp:
        parse_metrics(resp.read().decode(), seen)


def _read_simulator(path: Path, seen: Seen) -> None:
    with contextlib.suppress(OSError, ValueError):
        seen.simulator = json.loads(path.read_bytes())


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


def _on_alert(console: Console, seen: Seen, alert: dict[str, Any]) -> None:
    new = alert["finding_info"]["uid"] not in seen.alerts
    row = seen.on_alert(alert)
    if new and row[4] in seen.user_rules:  # the engineer's own rule: one line each time
        console.print(
            f"{row[0]} [bold magenta]YOUR RULE {row[4]}[/] fired on session [bold]{row[3]}[/]"
            f" ({row[2]}): {alert.get('message', '')}"
        )


def _on_kill(
    console: Console, seen: Seen, verifier: RevocationVerifier, value: bytes, started: float
) -> None:
    r = verifier.receive(value)
    if r.outcome == "duplicate":
        seen.kills_duplicate += 1
        return
    if r.outcome == "invalid" or r.claims is None:
        seen.kills_invalid += 1
        row = [time.strftime("%H:%M:%S"), "[bold red]KILL SIGNAL[/]", "", "?", "?",
               f"[red]signature/claims INVALID: {r.reason}[/]"]  # fmt: skip
        seen.recent.append(row)
    else:
        kid = verifier.jwks["keys"][0]["kid"][:10]
        detail = f"[green]signature verified[/] (kid {kid}…) · jti {(r.jti or '')[:13]}…"
        row = seen.on_kill(r.claims, detail, started)
    # one line per kill signal above the live view (and in logs, where the view is not drawn)
    console.print(
        f"{row[0]} [bold red]KILL[/] session [bold]{row[3]}[/] ({row[2]}) by {row[4]}: {row[5]}"
    )


def _stored(settings: Settings) -> dict[str, int]:
    """Row counts in the embedded ClickHouse (the worker has stopped and released it)."""
    import clickhouse_connect

    path = settings.store_url.removeprefix("chdb://")
    client = clickhouse_connect.get_client(dsn=f"chdb://{path}")
    try:
        out = {}
        for table in ("events", "alerts", "kill_signals", "privileged_actions"):
            with contextlib.suppress(Exception):
                rows = client.query(f"SELECT count() FROM {settings.store_database}.{table} FINAL")
                out[table] = int(rows.result_rows[0][0])
        return out
    finally:
        with contextlib.suppress(Exception):
            client.close()


def run_demo(
    *,
    duration: float | None,
    rate: float,
    attack_ratio: float,
    seed: int,
    workdir: Path,
    rules_paths: list[Path] | None = None,
    console: Console | None = None,
) -> int:
    """Run the demo; return the exit code (0 on a clean stop). ``rules_paths``: rule files
    or directories the worker loads after the built-in pack (checked before anything starts)."""
    console = console or Console()
    rules = [p.resolve() for p in rules_paths or ()]
    yours: set[str] = set()
    if rules:
        from detectors.rules.loader import load_rules

        # a bad file fails here, with every error and its file:line, before anything starts
        yours = set(load_rules(rules).rules) - set(load_rules([]).rules)
    started = time.monotonic()
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    procs: list[subprocess.Popen[bytes]] = []
    broker = EmbeddedBroker(log_path=workdir / "broker.log")

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    # Ctrl-C stops everything even when the demo was started with SIGINT ignored (a background
    # job of a non-interactive shell: Python then installs no handler, the children inherit
    # the ignore, and nothing would ever stop)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    seen = Seen(user_rules=yours)
    files = _Files(workdir / "simulator-stats.json", workdir / "labels.jsonl")
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
            internal_domains=list(DEMO_DOMAINS),
            rules_paths=rules,
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
                   "--seed", str(seed), "--jwks", url + "/.well-known/jwks.json",
                   "--ignore-revocations", str(IGNORE_SHARE),
                   "--stats", str(files.stats), "--labels", str(files.labels)]  # fmt: skip
        procs.append(_child(sim_cmd, env, workdir / "simulator.log"))
        console.print(
            f"[bold]broker[/] {broker.bootstrap} · [bold]worker[/] {url} "
            f"(/metrics, /.well-known/jwks.json) · [bold]ClickHouse[/] {workdir / 'clickhouse'}"
            + (f" · [bold]rules[/] {', '.join(map(str, rules))}" if rules else "")
            + f" · logs in {workdir}/ · [bold]Ctrl-C[/] stops everything"
        )
        code = _watch(console, seen, settings, verifier, url, procs, started, duration, files)
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
    _read_simulator(files.stats, seen)  # its last totals, written as it stopped
    console.print()
    console.print(summary(seen, stored, time.monotonic() - started, files.labels))
    if seen.kills_invalid:
        code = code or 1
    return code


class _Files:
    """Where the simulator writes its running totals and its labels for the demo."""

    def __init__(self, stats: Path, labels: Path) -> None:
        self.stats, self.labels = stats, labels


def _watch(
    console: Console,
    seen: Seen,
    settings: Settings,
    verifier: RevocationVerifier,
    url: str,
    procs: list[subprocess.Popen[bytes]],
    started: float,
    duration: float | None,
    files: _Files,
) -> int:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap, fetch_max_wait_ms=20)
    tps = [TopicPartition(t, p) for t in (settings.topic_alerts, settings.topic_revocations)
           for p in range(settings.topic_partitions)]  # fmt: skip
    consumer.assign(tps)
    consumer.seek_to_beginning()
    where = f"worker {url}"
    scraped = 0.0

    def view() -> Any:
        return live_view(seen, started, where, console.width)

    try:
        with Live(view(), console=console, refresh_per_second=4) as live:
            while duration is None or time.monotonic() - started < duration:
                for tp, records in consumer.poll(timeout_ms=200).items():
                    for r in records:
                        if r.value is None:
                            continue
                        if tp.topic == settings.topic_alerts:
                            with contextlib.suppress(ValueError, KeyError):
                                _on_alert(console, seen, json.loads(r.value))
                        else:
                            _on_kill(console, seen, verifier, r.value, started)
                if time.monotonic() - scraped > 1.0:
                    scraped = time.monotonic()
                    with contextlib.suppress(OSError, ValueError):
                        _scrape(url, seen)
                    _read_simulator(files.stats, seen)
                    if procs[0].poll() is not None:
                        console.print(f"[red]the worker exited with {procs[0].returncode}[/]")
                        return 1
                live.update(view())
        return 0
    finally:
        with contextlib.suppress(OSError, ValueError):
            _scrape(url, seen)  # the final numbers, before the worker stops
        consumer.close()
