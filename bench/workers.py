"""What the worker benchmarks share: traffic, the embedded broker, workers and their cost.

``bench.throughput``, ``bench.latency`` and ``bench.scaleout`` start real processes against
the embedded Tansu broker: a faust pass-through agent (the yardstick: consume and decode,
nothing else), ``agentwatch worker`` processes (with or without the event
store), and read the workers' progress from their ``/metrics``. CPU is read from ``/proc``
(user + system time of the worker and of its children: the event store's process), so a
busy machine changes wall-clock rates more than it changes CPU per event.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaProducer

from monitor.processes import die_with_parent, free_port, stop_process
from monitor.settings import Settings

ROOT = Path(__file__).resolve().parent.parent

#: metrics that count records the worker is done with
DONE_METRICS = ("agentwatch_events_consumed_total", "agentwatch_events_rejected_total")

PASSTHROUGH = r"""
import sys, time
import orjson
from monitor.app import create_app
from monitor.settings import Settings
n_expected = int(sys.argv[1])
settings = Settings.from_env(web_port=int(sys.argv[2]))
# orjson: raw records, each value decoded by orjson.loads (the tightest loop that decodes);
# raw: not decoded; faust-json: decoded by faust's own JSON codec as the stream reads it
mode = sys.argv[3]
app = create_app(settings)
actions = app.topic(
    settings.topic_actions, acks=False, key_type=bytes, key_serializer="raw",
    value_serializer="json" if mode == "faust-json" else "raw",
    partitions=settings.topic_partitions,
)
seen = [0, 0.0, 0.0]
@app.agent(actions)
async def passthrough(stream):
    decode = orjson.loads if mode == "orjson" else None
    async for event in stream.events():
        value = decode(event.value) if decode is not None else event.value
        if seen[0] == 0:
            if mode != "raw" and not isinstance(value, dict):
                raise SystemExit(f"pass-through: a value decoded to {type(value)}")
            seen[1] = time.perf_counter()
            seen[2] = time.process_time()
        seen[0] += 1
        if seen[0] == n_expected:
            wall = time.perf_counter() - seen[1]
            cpu = time.process_time() - seen[2]
            print(f"RESULT {n_expected} {wall:.6f} {cpu:.6f}", flush=True)
from monitor.worker import faust_worker_class
worker = faust_worker_class()(app, loglevel="WARNING", quiet=True, redirect_stdouts=False)
worker.execute_from_commandline()
"""


# -- traffic -------------------------------------------------------------------------------
def simulated_events(
    n: int, attack_ratio: float = 0.05, seed: int = 7
) -> list[tuple[bytes, bytes]]:
    """``n`` (key, value) records of simulated traffic (deterministic), keyed by root session."""
    from monitor.simulator import generate

    out = []
    for ev in generate(seed, sessions=None, attack_ratio=attack_ratio):
        root = ev["session"].get("root_id") or ev["session"]["id"]
        out.append((root.encode(), orjson.dumps(ev)))
        if len(out) >= n:
            break
    return out


def dataset_events(n: int, path: Path) -> list[tuple[bytes, bytes]]:
    """``n`` (key, value) records: a labelled data set replicated with fresh ids."""
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
    """Produce ``records`` to ``topic`` (partitioned by key, as agents' SDKs do)."""
    p = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=10, batch_size=256 * 1024)
    for key, value in records:
        p.send(topic, key=key, value=value)
    p.flush()
    p.close()


# -- processes -----------------------------------------------------------------------------
def env_for(settings: Settings, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, "AGENTWATCH_PROFILE": "embedded", "AGENTWATCH_LOG_LEVEL": "warning"}
    names = ["broker", "app_id", "topic_partitions", "datadir"]
    names += [n for n in type(settings).model_fields if n.startswith("topic_")]
    for name in names:
        value = getattr(settings, name)
        if value != "":
            env["AGENTWATCH_" + name.upper()] = str(value)
    env.update(extra or {})
    return env


def cpu_seconds(pid: int, *, children: bool = False) -> float:
    """User + system CPU time of a process (and, with ``children``, of its live descendants)."""
    total = 0.0
    pids = [pid]
    while pids:
        p = pids.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        if children:
            for task in Path(f"/proc/{p}/task").glob("*/children"):
                try:
                    pids += [int(c) for c in task.read_text().split()]
                except OSError:
                    pass
    return total


def scrape(url: str) -> str:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:
        return resp.read().decode()


def metric(text: str, name: str, label: str = "") -> float:
    """Sum of the samples of ``name`` (with ``label``, e.g. ``table="events"``, if given)."""
    return sum(
        float(line.rpartition(" ")[2])
        for line in text.splitlines()
        if not line.startswith("#")
        and line.partition("{")[0].partition(" ")[0] == name
        and label in line
    )


@dataclass
class Worker:
    """An ``agentwatch worker`` process started for a benchmark."""

    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    def progress(self) -> tuple[float, float]:
        """Records done with, and event rows stored (inserted into ClickHouse)."""
        text = scrape(self.url)
        stored = metric(text, "agentwatch_sink_rows_inserted_total", 'table="events"')
        return sum(metric(text, m) for m in DONE_METRICS), stored

    def value(self, name: str) -> float:
        return metric(scrape(self.url), name)

    def stop(self) -> None:
        stop_process(self.proc, 30)


def start_worker(
    settings: Settings,
    log: Path,
    *,
    store: str = "none",
    extra: dict[str, str] | None = None,
    ready_timeout: float = 120.0,
    cwd: Path | None = None,
) -> Worker:
    """Start ``agentwatch worker`` and wait until it is ready (partitions restored).

    ``cwd``: a checkout whose ``monitor``, ``detectors`` and ``schemas`` the worker runs
    (``python -m`` imports from its working directory first), e.g. a baseline to compare with;
    this checkout by default."""
    port = free_port()
    env = env_for(
        settings,
        {"AGENTWATCH_WEB_PORT": str(port), "AGENTWATCH_STORE_URL": store, **(extra or {})},
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", "worker"],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        cwd=cwd or ROOT,
        preexec_fn=die_with_parent,
    )
    worker = Worker(proc, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited with {proc.returncode}; see {log}")
        try:
            with urllib.request.urlopen(worker.url + "/readyz", timeout=1) as resp:
                if json.loads(resp.read())["ready"]:
                    return worker
        except OSError:
            time.sleep(0.05)
    worker.stop()
    raise TimeoutError(f"worker not ready in {ready_timeout:.0f}s; see {log}")


@dataclass
class Drain:
    """How fast something drained a backlog: events/s and CPU µs per event."""

    events: int
    events_per_s: float
    cpu_us: float
    #: CPU of the worker's children (the event store's process), µs per event
    child_cpu_us: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def run_passthrough(
    settings: Settings, n: int, log: Path, timeout: float = 600, *, decode: str = "orjson"
) -> Drain:
    """A faust agent drains ``n`` events and does nothing else with them.

    ``decode``: ``orjson`` (the yardstick, the issue's "plain pass-through loop (consume,
    decode, nothing else)": raw records, each value decoded with ``orjson.loads``, the
    cheapest decoding there is), ``raw`` (consumed, not decoded) or ``faust-json`` (decoded
    by faust's own JSON codec as the stream reads it, as a faust app with
    ``value_serializer="json"`` would)."""
    env = env_for(settings)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", PASSTHROUGH, str(n), str(free_port()), decode],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            preexec_fn=die_with_parent,
        )
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            found = re.search(r"RESULT (\d+) ([0-9.]+) ([0-9.]+)", log.read_text(errors="replace"))
            if found:
                count, wall, cpu = int(found.group(1)), float(found.group(2)), float(found.group(3))
                return Drain(count, count / wall, 1e6 * cpu / count)
            time.sleep(0.2)
        raise RuntimeError(f"pass-through agent gave no result; see {log}")
    finally:
        stop_process(proc, 20)


def measure_drain(
    workers: list[Worker],
    n: int,
    *,
    stored: bool = False,
    timeout: float = 600,
    every: float = 0.25,
) -> Drain:
    """Poll ``workers`` until together they are done with ``n`` records (and, with
    ``stored``, until their event store holds them all).

    Without ``stored``, the rate is taken between the first poll that saw progress and the
    last poll before the end (both inside the drain, so neither start-up nor idle time after
    it counts). With ``stored``, the store inserts in batches (up to 10,000 rows or a second),
    so the window runs from the first poll that saw progress to the first poll that found
    every event stored: a worker whose store falls behind is as slow as its store (and the
    end is late by up to one poll: the figure errs low). Events/s over the window, and CPU
    (workers, then their children) per event over it.
    """
    samples: list[tuple[float, float, float, float, float]] = []
    deadline = time.monotonic() + timeout
    while True:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the workers did not finish {n} records in {timeout:.0f}s")
        now = time.perf_counter()
        counts = [w.progress() for w in workers]
        done = sum(c[0] for c in counts)
        kept = sum(c[1] for c in counts)
        own = sum(cpu_seconds(w.proc.pid) for w in workers)
        everything = sum(cpu_seconds(w.proc.pid, children=True) for w in workers)
        samples.append((now, done, own, everything - own, kept))
        if (kept if stored else done) >= n:
            break
        time.sleep(every)
    started = [s for s in samples if s[1] > 0]
    if stored:
        a, b = started[0], samples[-1]
        if len(started) < 3:
            raise RuntimeError("the drain was too short to measure: give it more events")
    else:
        inside = [s for s in started if s[1] < n]
        if len(inside) < 2:
            raise RuntimeError("the drain was too short to measure: give it more events")
        a, b = inside[0], inside[-1]
    drained = min(b[1], n) - a[1]
    return Drain(
        int(drained),
        drained / (b[0] - a[0]),
        1e6 * (b[2] - a[2]) / drained,
        1e6 * (b[3] - a[3]) / drained,
    )


# -- background load -----------------------------------------------------------------------
LOAD = r"""
import sys
from bench.workers import produce_at_rate
produce_at_rate(sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]))
"""


def produce_at_rate(bootstrap: str, topic: str, rate: float, report_every: float = 10.0) -> None:
    """Produce simulated traffic at ``rate`` events/s (in 10 ms slices) until stopped.

    Event times track the wall clock (~8 events a session, so ``rate / 8`` sessions start
    a second). Events are generated as they are due, so the load starts at once and lasts
    as long as the measurement; a line ``LOAD <sent> <seconds>`` is printed every
    ``report_every`` seconds."""
    from datetime import UTC, datetime

    from monitor.simulator import generate

    events = generate(
        11, sessions=None, attack_ratio=0.05, start=datetime.now(UTC), session_rate=rate / 8
    )
    p = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=2, batch_size=256 * 1024)
    start = time.perf_counter()
    report = start + report_every
    sent = 0
    try:
        while True:
            now = time.perf_counter()
            due = int((now - start) * rate) + 1
            while sent < due:
                ev = next(events)
                root = ev["session"].get("root_id") or ev["session"]["id"]
                p.send(topic, key=root.encode(), value=orjson.dumps(ev))
                sent += 1
            if now >= report:
                print(f"LOAD {sent} {now - start:.3f}", flush=True)
                report += report_every
            time.sleep(0.01)
    finally:
        p.close(timeout=5)


def start_load(
    bootstrap: str, topic: str, rate: float, log: Path, report_every: float = 10.0
) -> Any:
    """:func:`produce_at_rate` in its own process (so it does not share the caller's GIL);
    stop it with ``monitor.processes.stop_process``."""
    return subprocess.Popen(
        [sys.executable, "-c", LOAD, bootstrap, topic, str(rate), str(report_every)],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        preexec_fn=die_with_parent,
    )
