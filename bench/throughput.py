"""Worker throughput and kill latency on the embedded broker.

    python -m bench.throughput [--events 60000] [--sessions 200] [--out bench/results]

1. **Throughput.** The action topic (4 partitions) is filled with ``--events`` events, then
   drained
   twice: by a plain faust pass-through agent (``async for event in stream.events()``, same
   app and transport settings; the ceiling a faust worker can reach here) and by the
   agentwatch worker (parse, sessions, every default detector, decisions, checkpoints; the
   ``none`` store, so the number is the worker's, not ClickHouse's). Events/s from the first
   record to the last, and CPU µs per event (less sensitive to a busy machine); the ratio to
   the pass-through is the one TEAM.md sets at >= 0.6. ``--source simulator`` (default):
   the simulator's traffic, 5% attack sessions as in docker-compose; ``--source agentdojo``:
   the AgentDojo dev set replicated with fresh ids (mostly attacks: an alert every ~4 events,
   long tool outputs).
2. **Kill latency.** With the worker idle, ``--sessions`` attack sessions are played one at a
   time: the first steps, then the final step is produced and the clock runs until a
   consumer (fetch wait 1 ms) receives the session's kill signal. p50/p90/p99/max.

Results: a table on the terminal and ``bench/results/throughput.json``. On Tansu, fetches
are held until the fetch wait expires (5 ms in the embedded profile), which is part of the
latency measured here; Apache Kafka answers as soon as data arrives.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from rich.console import Console
from rich.table import Table

from bench.detection import default_data
from monitor.broker import EmbeddedBroker
from monitor.processes import die_with_parent, free_port, stop_process
from monitor.settings import Settings
from monitor.topics import ensure_topics

ROOT = Path(__file__).resolve().parent.parent
DATA = default_data() / "events.jsonl"

PASSTHROUGH = r"""
import sys, time
from monitor.app import create_app
from monitor.settings import Settings
from monitor.topics import declare_topics
n_expected = int(sys.argv[1])
settings = Settings.from_env(web_port=int(sys.argv[2]))
app = create_app(settings)
topics = declare_topics(app, settings)
seen = [0, 0.0]
@app.agent(topics.actions)
async def passthrough(stream):
    async for event in stream.events():
        if seen[0] == 0:
            seen[1] = time.perf_counter()
            seen.append(time.process_time())
        seen[0] += 1
        if seen[0] == n_expected:
            wall = time.perf_counter() - seen[1]
            cpu = time.process_time() - seen[2]
            print(f"RESULT {n_expected} {wall:.6f} {cpu:.6f}", flush=True)
from monitor.worker import faust_worker_class
worker = faust_worker_class()(app, loglevel="WARNING", quiet=True, redirect_stdouts=False)
worker.execute_from_commandline()
"""


def simulated_events(n: int, attack_ratio: float = 0.05) -> list[tuple[bytes, bytes]]:
    """``n`` (key, value) records of simulated traffic (deterministic)."""
    from monitor.simulator import generate

    out = []
    for ev in generate(7, sessions=None, attack_ratio=attack_ratio):
        root = ev["session"].get("root_id") or ev["session"]["id"]
        out.append((root.encode(), orjson.dumps(ev)))
        if len(out) >= n:
            break
    return out


def load_events(n: int, path: Path) -> list[tuple[bytes, bytes]]:
    """``n`` (key, value) records: the data set replicated with fresh ids."""
    base = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
    out: list[tuple[bytes, bytes]] = []
    copy = 0
    while len(out) < n:
        for ev in base:
            if len(out) >= n:
                break
            sess = ev["session"]
            doc = dict(ev, event_id=f"{ev['event_id']}-{copy}")
            doc["session"] = dict(
                sess,
                id=f"{sess['id']}-{copy}",
                root_id=f"{sess.get('root_id') or sess['id']}-{copy}",
                **({"parent_id": f"{sess['parent_id']}-{copy}"} if sess.get("parent_id") else {}),
            )
            out.append((doc["session"]["root_id"].encode(), orjson.dumps(doc)))
        copy += 1
    return out


def fill(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    p = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=10, batch_size=256 * 1024)
    for key, value in records:
        p.send(topic, key=key, value=value)
    p.flush()
    p.close()


def env_for(settings: Settings, extra: dict[str, str]) -> dict[str, str]:
    env = {**os.environ, "AGENTWATCH_PROFILE": "embedded", "AGENTWATCH_LOG_LEVEL": "warning"}
    for name in ("broker", "app_id", "topic_actions", "topic_partitions", "datadir"):
        env["AGENTWATCH_" + name.upper()] = str(getattr(settings, name))
    env.update(extra)
    return env


def run_passthrough(settings: Settings, n: int, log: Path) -> tuple[float, float]:
    """Events/s and CPU µs/event of a faust agent that does nothing with its events."""
    env = env_for(settings, {"AGENTWATCH_APP_ID": settings.app_id + "-passthrough"})
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", PASSTHROUGH, str(n), str(free_port())],
            env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, preexec_fn=die_with_parent,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and proc.poll() is None:
            found = re.search(r"RESULT (\d+) ([0-9.]+) ([0-9.]+)", log.read_text(errors="replace"))
            if found:
                count, wall, cpu = int(found.group(1)), float(found.group(2)), float(found.group(3))
                return count / wall, 1e6 * cpu / count
            time.sleep(0.2)
        raise RuntimeError(f"pass-through worker gave no result; see {log}")
    finally:
        stop_process(proc, 20)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def metric(url: str, name: str) -> float:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return sum(
        float(line.rpartition(" ")[2])
        for line in text.splitlines()
        if line.startswith(name) and not line.startswith("#")
        and line.partition("{")[0].partition(" ")[0] == name
    )  # fmt: skip


def start_worker(settings: Settings, port: int, log: Path, extra: dict[str, str]) -> Any:
    env = env_for(settings, {"AGENTWATCH_WEB_PORT": str(port), "AGENTWATCH_STORE_URL": "none",
                             **extra})  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", "worker"], env=env, stdout=log.open("ab"),
        stderr=subprocess.STDOUT, cwd=ROOT, preexec_fn=die_with_parent,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=1) as resp:
                if json.loads(resp.read())["ready"]:
                    return proc, url
        except OSError:
            time.sleep(0.05)
    stop_process(proc)
    raise TimeoutError(f"worker not ready; see {log}")


def run_worker(settings: Settings, n: int, log: Path) -> tuple[float, float, dict[str, float]]:
    """Events/s and CPU µs/event of the worker draining ``n`` events."""
    proc, url = start_worker(settings, free_port(), log, {})
    try:
        names = ("agentwatch_events_consumed_total", "agentwatch_events_rejected_total")
        first = last = None
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            done = sum(metric(url, m) for m in names)
            now = time.perf_counter()
            if first is None and done > 0:
                first = (now, done, cpu_seconds(proc.pid))
            if done >= n:
                last = (now, done, cpu_seconds(proc.pid))
                break
            time.sleep(0.1)
        if first is None or last is None:
            raise TimeoutError("the worker did not drain the topic in 10 minutes")
        counts = {
            "alerts": metric(url, "agentwatch_alerts_emitted_total"),
            "kills": metric(url, "agentwatch_kill_decisions_total"),
            "rejected": metric(url, "agentwatch_events_rejected_total"),
        }
        drained = last[1] - first[1]
        cpu_us = 1e6 * (last[2] - first[2]) / drained
        return drained / (last[0] - first[0]), cpu_us, counts
    finally:
        stop_process(proc, 30)


def attack(sid: str) -> list[dict[str, Any]]:
    def ev(seq: int, kind: str, **extra: Any) -> dict[str, Any]:
        now = time.time()
        stamp = (
            time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
        )
        return {"event_id": f"{sid}-{seq}", "time": stamp, "kind": kind,
                "session": {"id": sid, "seq": seq}, "actor": {"agent_id": "billing-agent"},
                **extra}  # fmt: skip

    return [
        ev(0, "session_start"),
        ev(1, "tool_call", tool={"name": "vault.read_secret"}),
        ev(2, "tool_call", tool={"name": "db.update_rows"},
           resources=[{"type": "table", "environment": "prod"}]),
        ev(3, "tool_call", tool={"name": "http.post"},
           transfer={"destination": "https://paste.example.net/x", "external": True}),
    ]  # fmt: skip


def kill_latency(settings: Settings, sessions: int, log: Path) -> list[float]:
    proc, _ = start_worker(settings, free_port(), log, {})
    bootstrap = ",".join(settings.bootstrap)
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, fetch_max_wait_ms=1)
    tps = [TopicPartition(settings.topic_revocations, p) for p in range(settings.topic_partitions)]
    consumer.assign(tps)
    consumer.seek_to_end()
    consumer.poll(timeout_ms=100)
    out = []
    try:
        for i in range(sessions):
            sid = f"lat-{i}-{time.time_ns()}"
            steps = attack(sid)
            for e in steps[:3]:
                producer.send(settings.topic_actions, key=sid.encode(), value=orjson.dumps(e))
            producer.flush()
            time.sleep(0.02)
            t0 = time.perf_counter()
            producer.send(settings.topic_actions, key=sid.encode(), value=orjson.dumps(steps[3]))
            producer.flush()
            got = False
            deadline = t0 + 10
            while not got and time.perf_counter() < deadline:
                for records in consumer.poll(timeout_ms=5).values():
                    if any(r.key == sid.encode() for r in records):
                        got = True
            if got:
                out.append(time.perf_counter() - t0)
    finally:
        producer.close()
        consumer.close()
        stop_process(proc, 30)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=60_000)
    ap.add_argument("--sessions", type=int, default=200, help="attack sessions for latency")
    ap.add_argument("--source", choices=("simulator", "agentdojo"), default="simulator")
    ap.add_argument("--data", type=Path, default=DATA, help="with --source agentdojo")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args()
    console = Console()
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.out / "throughput-run"
    work.mkdir(exist_ok=True)
    if args.source == "agentdojo":
        records = load_events(args.events, args.data)
    else:
        records = simulated_events(args.events)
    with EmbeddedBroker(log_path=work / "tansu.log") as broker:
        settings = Settings.from_env(
            {}, profile="embedded", broker=broker.url, topic_partitions=4, datadir=work / "data",
            app_id="bench", topic_actions="bench.actions",
        )  # fmt: skip
        ensure_topics(broker.bootstrap, settings)
        with console.status(f"filling {settings.topic_actions} with {len(records):,} events"):
            fill(broker.bootstrap, settings.topic_actions, records)
        with console.status("faust pass-through agent draining the topic"):
            ceiling, ceiling_cpu = run_passthrough(settings, len(records), work / "passthrough.log")
        with console.status("agentwatch worker draining the topic"):
            rate, cpu, counts = run_worker(settings, len(records), work / "worker.log")
        with console.status(f"kill latency over {args.sessions} attack sessions"):
            lat = kill_latency(settings, args.sessions, work / "latency.log")
    q = statistics.quantiles(lat, n=100) if len(lat) >= 2 else [float("nan")] * 99
    result = {
        "source": args.source,
        "events": len(records),
        "passthrough_events_per_s": round(ceiling),
        "worker_events_per_s": round(rate),
        "ratio": round(rate / ceiling, 3),
        "passthrough_cpu_us_per_event": round(ceiling_cpu, 1),
        "worker_cpu_us_per_event": round(cpu, 1),
        "cpu_ratio": round(ceiling_cpu / cpu, 3),
        "decisions": counts,
        "kill_latency_ms": {
            "n": len(lat), "p50": round(1000 * q[49], 2), "p90": round(1000 * q[89], 2),
            "p99": round(1000 * q[98], 2), "max": round(1000 * max(lat, default=float("nan")), 2),
        },
    }  # fmt: skip
    table = Table(title=f"agentwatch worker on the embedded broker ({args.source} traffic)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("faust pass-through (events/s)", f"{ceiling:,.0f}")
    table.add_row("agentwatch worker (events/s)", f"{rate:,.0f}")
    table.add_row("ratio (target >= 0.6)", f"{rate / ceiling:.2f}")
    table.add_row("CPU µs/event: pass-through / worker", f"{ceiling_cpu:.0f} / {cpu:.0f}")
    table.add_row("ratio by CPU (less sensitive to a busy machine)", f"{ceiling_cpu / cpu:.2f}")
    table.add_row(
        "alerts / kill decisions / rejected",
        "{alerts:.0f} / {kills:.0f} / {rejected:.0f}".format(**counts),
    )
    k = result["kill_latency_ms"]
    table.add_row(f"kill latency, {k['n']} sessions (ms)",
                  f"p50 {k['p50']} · p90 {k['p90']} · p99 {k['p99']} · max {k['max']}")  # fmt: skip
    console.print(table)
    out = args.out / f"throughput-{args.source}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
