"""Kill latency under load: from producing the deciding event to the kill signal on the topic.

    python -m bench.latency [--rate 2000] [--sessions 200] [--store chdb|none] [--window 10]

An ``agentwatch worker`` (every default detector; by default the embedded chdb store as in
the demo) runs on an embedded Tansu broker while another process produces simulated traffic
to the action topic at ``--rate`` events/s (the background load). Meanwhile ``--sessions``
attack sessions are played one after the other: the first three steps of the secret +
production write + export combination (AW-COMBO-001), a pause (``--gap``), then the
deciding step; the clock starts just before that step is produced and stops when a consumer
of ``agent.revocations`` (fetch wait 1 ms) has received the session's kill signal.

Reported: p50/p90/p99/max (nearest rank) of the sessions whose signal arrived, where that time
went (produce and broker ack, worker until the kill signal record is stamped, delivery to the
probe; from wall-clock stamps and the signal record's timestamp), how many did not within
``--timeout``, and the background rate the worker actually consumed while the clock ran (from
its ``agentwatch_events_consumed_total``), the share of a core the worker, its store process,
this process (the probe) and the whole machine used meanwhile (the rest is the broker, the load
generator and whatever else runs on the machine), and each session's stamps (``samples`` in the
JSON: produced, acknowledged, the signal record's timestamp, received; to line up with a
worker-side trace). TEAM.md's target: p99 <= 50 ms at 2,000 events/s. On Tansu every fetch is
held until its fetch wait expires (the worker's is 5 ms in the embedded profile), which is part
of what is measured; Apache Kafka answers a fetch as soon as data arrives. The probe is a
revocation consumer as one would run it against Kafka: it reads at once what was published (a 1
ms fetch wait: on Kafka a fetch returns as soon as a record arrives, ``fetch.min.bytes=1``,
whatever the wait; on Tansu, which holds every fetch for its whole wait, a longer one would add
Tansu's hold, not the worker's time). It uses ~12-15% of a core here. With the default 200
sessions, p99 is the 2nd-slowest signal; it moves by 10-20 ms between runs of the same code.

``--broker kafka://host:port`` measures against a running broker instead (Apache Kafka: the
worker with the production profile, on topics and a consumer group named for the run; no broker
CPU is sampled then). The run takes ~10 s of load after the warm-up. Longer runs (``--sessions
1000``) measure the embedded broker more than the worker: Tansu's CPU per record read grows
with the length of the topic (``bench.broker_growth`` shows it with a plain consumer and no
agentwatch), so at 2,000 events/s the broker's share of a core climbs from ~0.2 to ~0.7 within
a minute, and kill latency with it, while the worker's share does not rise (it waits for the
broker). The over-time table (one row per ``--window`` seconds: latency, the worker's lag, the
broker's and the worker's share of a core) shows which regime a run was in. Results: a table
and ``bench/results/latency.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import sys
import threading
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from bench.workers import Worker, cpu_seconds, start_load, start_worker
from monitor.broker import EmbeddedBroker
from monitor.processes import stop_process
from monitor.settings import Settings
from monitor.topics import ensure_topics

ROOT = Path(__file__).resolve().parent.parent


def attack(sid: str) -> list[dict[str, Any]]:
    """The four steps of an attack session; the last one decides the kill (AW-COMBO-001)."""

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


class LagSampler(threading.Thread):
    """Samples the worker's consumer lag (records behind, all partitions) while the clock
    runs: a worker that does not keep up with the background load shows here. Each sample is
    also stamped with the worker's CPU seconds and, with ``broker_pid``, the broker's
    (``ticks``: wall time, lag, broker CPU or None, worker CPU), for :func:`windows`."""

    def __init__(self, worker: Worker, every: float = 0.5, broker_pid: int | None = None) -> None:
        super().__init__(daemon=True)
        self.worker, self.every, self.broker_pid = worker, every, broker_pid
        self.ticks: list[tuple[float, float, float | None, float]] = []
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(self.every):
            try:
                lag = self.worker.value("agentwatch_consumer_lag_records")
            except OSError:
                continue
            broker = cpu_seconds(self.broker_pid) if self.broker_pid is not None else None
            self.ticks.append((time.time(), lag, broker, cpu_seconds(self.worker.proc.pid)))

    def stop(self) -> None:
        self._done.set()
        self.join()

    @property
    def mean(self) -> float:
        lags = [t[1] for t in self.ticks]
        return sum(lags) / len(lags) if lags else math.nan

    @property
    def max(self) -> float:
        return max((t[1] for t in self.ticks), default=math.nan)


def windows(
    samples: list[dict[str, Any]],
    ticks: list[tuple[float, float, float | None, float]],
    width: float,
) -> list[dict[str, Any]]:
    """Kill latency and what the machine did, per ``width`` seconds of the run: the sessions
    whose deciding event was produced in the window (p50/p99/max ms), the worker's largest lag
    sampled in it, and the broker's and the worker's share of a core over it (from ``ticks``:
    wall time, lag, broker CPU s or None, worker CPU s). A run whose latency climbs while the
    broker's share climbs and the worker's does not is measuring the broker."""
    if not samples:
        return []
    t0 = samples[0]["produced"]
    out: list[dict[str, Any]] = []
    start = t0
    end_all = max(s["produced"] for s in samples)
    while start <= end_all:
        end = start + width
        lat = sorted(
            1000 * (s["received"] - s["produced"]) for s in samples if start <= s["produced"] < end
        )
        inside = [t for t in ticks if start <= t[0] < end]
        row: dict[str, Any] = {
            "from_s": round(start - t0, 1),
            "sessions": len(lat),
            "p50_ms": round(percentile(lat, 50), 1) if lat else None,
            "p99_ms": round(percentile(lat, 99), 1) if lat else None,
            "max_ms": round(lat[-1], 1) if lat else None,
            "lag_max": max((t[1] for t in inside), default=None),
            "broker_cores": None,
            "worker_cores": None,
        }
        if len(inside) >= 2:
            span = inside[-1][0] - inside[0][0]
            first, last = inside[0], inside[-1]
            if span > 0:
                if first[2] is not None and last[2] is not None:
                    row["broker_cores"] = round((last[2] - first[2]) / span, 2)
                row["worker_cores"] = round((last[3] - first[3]) / span, 2)
        out.append(row)
        start = end
    return out


#: where a kill signal's time goes, from ``measure``'s wall-clock stamps
SEGMENTS = (
    ("produce", "deciding event produced, until the broker acknowledged it"),
    ("worker", "acknowledged, until the worker handed the kill signal to its producer "
               "(the signal record's timestamp: fetch wait, queueing, detection, signing)"),
    ("deliver", "signal record timestamp, until the probe consumer read it"),
)  # fmt: skip


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile (never above the maximum)."""
    if not sorted_values:
        return math.nan
    return sorted_values[max(0, math.ceil(q / 100 * len(sorted_values)) - 1)]


def measure(
    settings: Settings,
    sessions: int,
    gap: float,
    timeout: float,
    progress: Progress,
    budget_s: float = math.inf,
    parts: list[tuple[float, float, float]] | None = None,
    samples: list[dict[str, Any]] | None = None,
) -> tuple[list[float], int]:
    """Latencies (s) of the sessions whose kill signal arrived, and how many never did
    (sessions not started within ``budget_s`` count as neither). ``parts`` receives, per
    arrived signal, where its time went (s, wall clock of this machine, see ``SEGMENTS``)."""
    bootstrap = ",".join(settings.bootstrap)
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, fetch_max_wait_ms=1)
    tps = [TopicPartition(settings.topic_revocations, p) for p in range(settings.topic_partitions)]
    consumer.assign(tps)
    consumer.seek_to_end()
    consumer.poll(timeout_ms=100)
    out: list[float] = []
    missed = 0
    task = progress.add_task("attack sessions", total=sessions)
    stop_at = time.perf_counter() + budget_s
    try:
        for i in range(sessions):
            if time.perf_counter() > stop_at:
                break
            sid = f"lat-{i}-{time.time_ns()}"
            key = sid.encode()
            steps = attack(sid)
            for e in steps[:3]:
                producer.send(settings.topic_actions, key=key, value=orjson.dumps(e))
            producer.flush()
            time.sleep(gap)
            last = orjson.dumps(steps[3])
            t0 = time.perf_counter()
            wall0 = time.time()
            producer.send(settings.topic_actions, key=key, value=last)
            producer.flush()
            acked = time.time()
            got = None
            signal_ts = 0.0
            while got is None and time.perf_counter() - t0 < timeout:
                for records in consumer.poll(timeout_ms=5).values():
                    for r in records:
                        if r.key == key:
                            got = time.perf_counter() - t0
                            signal_ts = r.timestamp / 1000  # set by the worker's producer
            if got is None:
                missed += 1
            else:
                out.append(got)
                if parts is not None:  # ms timestamps: clamp the rounding
                    worker_s = min(max(0.0, signal_ts - acked), got)
                    parts.append(
                        (acked - wall0, worker_s, max(0.0, got - (acked - wall0) - worker_s))
                    )
                if samples is not None:
                    samples.append(
                        {"sid": sid, "produced": wall0, "acked": acked, "signal_ts": signal_ts,
                         "received": wall0 + got}
                    )  # fmt: skip
            progress.advance(task)
    finally:
        producer.close()
        consumer.close()
    return out, missed


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=float, default=2000.0, help="background events/s")
    ap.add_argument("--sessions", type=int, default=200)
    ap.add_argument("--gap", type=float, default=0.03, help="pause before the deciding step (s)")
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument(
        "--budget", type=float, default=180.0, help="seconds after which no session is started"
    )
    ap.add_argument("--warmup", type=float, default=5.0, help="seconds of load before measuring")
    ap.add_argument("--store", choices=("chdb", "none"), default="chdb")
    ap.add_argument(
        "--broker",
        help="kafka://host:port of a running broker (Apache Kafka) to measure against instead "
        "of an embedded Tansu; the worker then runs with the production profile, on topics "
        "and a group named for this run",
    )
    ap.add_argument(
        "--profile",
        choices=("embedded", "production"),
        help="the worker's settings profile (default: embedded on the embedded broker, "
        "production with --broker)",
    )
    ap.add_argument(
        "--window", type=float, default=10.0, help="seconds per row of the over-time table"
    )
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args(argv)
    # a SIGTERM unwinds (stops the worker, the load and the broker) instead of orphaning them
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    console = Console(width=max(110, Console().width))
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.out / "latency-run"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    embedded = args.broker is None
    run = "" if embedded else f"-{time.strftime('%Y%m%d%H%M%S')}"  # fresh topics and group
    with EmbeddedBroker(log_path=work / "tansu.log") if embedded else nullcontext() as broker:
        settings = Settings.from_env(
            {}, profile=args.profile or ("embedded" if embedded else "production"),
            broker=broker.url if embedded else args.broker, topic_partitions=4,
            datadir=work / "data", app_id=f"latency{run}",
            topic_actions=f"latency.actions{run.replace('-', '.')}",
        )  # fmt: skip
        bootstrap = ",".join(settings.bootstrap)
        ensure_topics(bootstrap, settings)
        store = f"chdb://{(work / 'store').resolve()}" if args.store == "chdb" else "none"
        with console.status("starting the worker"):
            worker = start_worker(settings, work / "worker.log", store=store)
        load = start_load(bootstrap, settings.topic_actions, args.rate, work / "load.log")
        try:
            with console.status(f"{args.warmup:.0f} s of background load at {args.rate:,.0f}/s"):
                time.sleep(args.warmup)
            consumed0 = worker.value("agentwatch_events_consumed_total")
            cpu0 = (
                cpu_seconds(worker.proc.pid),
                time.process_time(),
                cpu_seconds(worker.proc.pid, children=True),
                machine_busy_s(),
            )
            t0 = time.perf_counter()
            broker_pid = broker.proc.pid if embedded and broker.proc is not None else None
            lags = LagSampler(worker, broker_pid=broker_pid)
            lags.start()
            parts: list[tuple[float, float, float]] = []
            samples: list[dict[str, Any]] = []
            try:
                with Progress(console=console, transient=True) as progress:
                    lat, missed = measure(
                        settings,
                        args.sessions,
                        args.gap,
                        args.timeout,
                        progress,
                        args.budget,
                        parts,
                        samples,
                    )
            finally:
                lags.stop()
            elapsed = time.perf_counter() - t0
            cpu = (
                cpu_seconds(worker.proc.pid) - cpu0[0],
                time.process_time() - cpu0[1],
                cpu_seconds(worker.proc.pid, children=True) - cpu0[2],
                machine_busy_s() - cpu0[3],
            )
            consumed = worker.value("agentwatch_events_consumed_total") - consumed0
            kills = worker.value("agentwatch_kill_signals_published_total")
        finally:
            stop_process(load, 10)
            worker.stop()
    lat.sort()
    probe_events = 4 * (len(lat) + missed)
    result = {
        "broker": "embedded Tansu" if embedded else args.broker,
        "store": args.store,
        "background_rate_requested": args.rate,
        "background_rate_consumed": round((consumed - probe_events) / elapsed),
        "sessions": args.sessions,
        "sessions_run": len(lat) + missed,
        "missed": missed,
        "kill_signals_published": kills,
        "consumer_lag_records": {"mean": round(lags.mean, 1), "max": lags.max},
        # share of one core while the clock ran: the worker's process (without the store's
        # child), the store's process, this process (the probe's producer and consumer, the lag
        # sampler), and every process on the machine (of os.cpu_count() cores)
        "cpu_share": {
            "worker": round(cpu[0] / elapsed, 3),
            "store": round((cpu[2] - cpu[0]) / elapsed, 3),
            "probe": round(cpu[1] / elapsed, 3),
            "machine": round(cpu[3] / elapsed, 3),
        },
        "cores": os.cpu_count(),
        "kill_latency_ms": {
            "n": len(lat),
            "p50": round(1000 * percentile(lat, 50), 2),
            "p90": round(1000 * percentile(lat, 90), 2),
            "p99": round(1000 * percentile(lat, 99), 2),
            "max": round(1000 * (lat[-1] if lat else math.nan), 2),
        },
        "kill_latency_parts_ms": {
            name: _quantiles(sorted(p[i] for p in parts)) for i, (name, _) in enumerate(SEGMENTS)
        },
        "by_time": windows(samples, lags.ticks, args.window),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "samples": samples,
    }
    k = result["kill_latency_ms"]
    table = Table(
        title=f"Kill latency at {result['background_rate_consumed']:,} events/s background "
        f"(requested {args.rate:,.0f}), store: {args.store}, broker: {result['broker']}"
    )
    cols = ("sessions", "missed", "p50 ms", "p90 ms", "p99 ms (<= 50)", "max ms",
            "worker lag mean/max", "cores busy: worker / store / machine")  # fmt: skip
    for col in cols:
        table.add_column(col, justify="right")
    lag = result["consumer_lag_records"]
    table.add_row(
        str(k["n"]), str(missed), f"{k['p50']}", f"{k['p90']}", f"{k['p99']}", f"{k['max']}",
        f"{lag['mean']:,.0f} / {lag['max']:,.0f}",
        "{worker:.2f} / {store:.2f} / {machine:.2f}".format(**result["cpu_share"])
        + f" of {result['cores']}",
    )  # fmt: skip
    console.print(table)
    split = Table(title="where the time went (ms, per segment; quantiles taken separately)")
    for col in ("segment", "p50", "p90", "p99", "max", "from / to"):
        split.add_column(col, justify="left" if col in ("segment", "from / to") else "right")
    for name, what in SEGMENTS:
        q = result["kill_latency_parts_ms"][name]
        split.add_row(name, *(f"{q[c]}" for c in ("p50", "p90", "p99", "max")), what)
    console.print(split)
    if len(result["by_time"]) > 1:
        console.print(_by_time_table(result["by_time"]))
    out = args.out / "latency.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"wrote {out}")
    return result


def _by_time_table(rows: list[dict[str, Any]]) -> Table:
    def cell(v: Any) -> str:
        return "" if v is None else f"{v:,}"

    table = Table(title="over the run (by when the deciding event was produced)")
    for col in ("from s", "sessions", "p50 ms", "p99 ms", "max ms", "worker lag max",
                "broker cores", "worker cores"):  # fmt: skip
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            *(
                cell(r[k])
                for k in (
                    "from_s",
                    "sessions",
                    "p50_ms",
                    "p99_ms",
                    "max_ms",
                    "lag_max",
                    "broker_cores",
                    "worker_cores",
                )
            )
        )
    return table


def machine_busy_s() -> float:
    """CPU seconds every process on the machine has used (``/proc/stat``: all but idle and
    iowait), to show how busy the cores were besides the worker."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    ticks = [int(f) for f in fields[:8]]  # user nice system idle iowait irq softirq steal
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def _quantiles(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(1000 * percentile(values, 50), 2),
        "p90": round(1000 * percentile(values, 90), 2),
        "p99": round(1000 * percentile(values, 99), 2),
        "max": round(1000 * (values[-1] if values else math.nan), 2),
    }


if __name__ == "__main__":
    main()
