"""The embedded broker's own CPU as its topic grows, with no agentwatch in the loop.

    python -m bench.broker_growth [--rate 2000] [--seconds 45] [--waits 5,20] [--every 5]

Why it exists: ``bench.latency`` run for 1,000 sessions instead of 200 showed kill latency
rising with the length of the run (p50 ~14 ms in the first 10 s, ~90 ms after 60 s, seconds
after 90 s), the worker falling behind, and the Tansu broker's CPU climbing from ~0.2 to
~0.7 of a core while the worker's stayed flat. This bench shows that the climb is the
broker's, whatever reads from it: each phase starts a fresh embedded Tansu broker, creates a
4-partition topic and feeds it simulated agent traffic at ``--rate`` events/s (the same load
generator as ``bench.latency``, in its own process) for ``--seconds``; the first phase with
nobody reading, then one phase per fetch wait in ``--waits`` (ms) with a plain kafka-python
consumer tailing all four partitions (no group, no processing: it only keeps up).

Reported: one row every ``--every`` seconds with the records in the topic and the broker's
share of a core in each phase, the consumer's records behind at the end of each phase, and
``bench/results/broker_growth.json``. Apache Kafka serves a fetch from an offset index, so
its cost does not depend on how long the log is; this bench has no Apache Kafka to compare
with (these machines cannot install one).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from bench.workers import ROOT, cpu_seconds, start_load
from monitor.broker import EmbeddedBroker
from monitor.processes import stop_process

TOPIC = "growth.actions"
PARTITIONS = 4


class Tail:
    """A plain consumer that reads every partition of the topic as records arrive."""

    def __init__(self, bootstrap: str, wait_ms: int) -> None:
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, fetch_max_wait_ms=wait_ms)
        self.tps = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
        self.consumer.assign(self.tps)
        self.consumer.seek_to_beginning()
        self.behind: int | None = None  # None until every partition has answered a fetch
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.consumer.poll(timeout_ms=5)
            self.behind = self._behind()

    def _behind(self) -> int | None:
        """Records between the consumer's positions and the high watermarks of its last
        fetches: both from the same consumer, so never negative. (Counting the records read
        against ListOffsets is not: on Tansu ListOffsets answers the last batch's base offset
        plus one, behind what a fetch already returns; see docs/worker.md.)"""
        total = 0
        for tp in self.tps:
            hw = self.consumer.highwater(tp)
            if hw is None:
                return None
            total += hw - self.consumer.position(tp)
        return total

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.consumer.close()


def topic_records(bootstrap: str) -> int:
    """Records in the topic (the sum of its partitions' ListOffsets answers: on Tansu, low by
    less than one producer batch per partition)."""
    probe = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        ends = probe.end_offsets([TopicPartition(TOPIC, p) for p in range(PARTITIONS)])
        return int(sum(ends.values()))
    finally:
        probe.close()


def phase(
    name: str, wait_ms: int | None, rate: float, seconds: float, every: float, work: Path,
    progress: Progress,
) -> dict[str, Any]:  # fmt: skip
    """One fresh broker fed at ``rate`` for ``seconds``: the broker's CPU share and the
    topic's length every ``every`` seconds (and, with a consumer, how far behind it ended)."""
    rows: list[dict[str, Any]] = []
    with EmbeddedBroker(log_path=work / f"tansu-{name}.log") as broker:
        assert broker.proc is not None
        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
        admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])
        admin.close()
        tail = Tail(broker.bootstrap, wait_ms) if wait_ms is not None else None
        if tail is not None:
            tail.start()
        load = start_load(broker.bootstrap, TOPIC, rate, work / f"load-{name}.log")
        task = progress.add_task(name, total=seconds)
        try:
            # the clock starts with the load, not with the load generator's imports
            deadline = time.monotonic() + 60
            while topic_records(broker.bootstrap) == 0:
                if load.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the load generator sent nothing, see {work}")
                time.sleep(0.1)
            start = last_t = time.perf_counter()
            last_cpu = cpu_seconds(broker.proc.pid)
            while (now := time.perf_counter()) - start < seconds:
                time.sleep(min(every, seconds - (now - start)))
                now, cpu = time.perf_counter(), cpu_seconds(broker.proc.pid)
                records = topic_records(broker.bootstrap)
                rows.append(
                    {
                        "t_s": round(now - start, 1),
                        "records": records,
                        "broker_cores": round((cpu - last_cpu) / (now - last_t), 3),
                        "consumer_behind": tail.behind if tail is not None else None,
                    }
                )
                last_t, last_cpu = now, cpu
                progress.update(task, completed=now - start)
            behind = rows[-1]["consumer_behind"]
        finally:
            stop_process(load, 10)
            if tail is not None:
                tail.stop()
    return {"phase": name, "fetch_wait_ms": wait_ms, "rows": rows, "consumer_behind": behind}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=float, default=2000.0, help="events/s produced")
    ap.add_argument("--seconds", type=float, default=45.0, help="length of each phase")
    ap.add_argument("--waits", default="5,20", help="fetch waits (ms) of the consumer phases")
    ap.add_argument("--every", type=float, default=5.0, help="seconds between samples")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args(argv)
    waits = [int(w) for w in args.waits.split(",") if w.strip()]
    console = Console(width=max(100, Console().width))
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.out / "broker-growth-run"
    work.mkdir(exist_ok=True)
    plan: list[tuple[str, int | None]] = [("nobody reading", None)]
    plan += [(f"consumer, {w} ms wait", w) for w in waits]
    with Progress(console=console, transient=True) as progress:
        phases = [
            phase(name, wait, args.rate, args.seconds, args.every, work, progress)
            for name, wait in plan
        ]
    result = {
        "rate": args.rate,
        "seconds": args.seconds,
        "partitions": PARTITIONS,
        "cores": os.cpu_count(),
        "phases": phases,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    table = Table(
        title=f"Tansu's share of a core while a {PARTITIONS}-partition topic grows at "
        f"{args.rate:,.0f} events/s (a fresh broker per column)"
    )
    table.add_column("s", justify="right")
    table.add_column("records (first column's run)", justify="right")
    for p in phases:
        table.add_column(p["phase"], justify="right")
    for i, row in enumerate(phases[0]["rows"]):
        cells = [f"{row['t_s']:.0f}", f"{row['records']:,}"]
        for p in phases:
            cells.append(f"{p['rows'][i]['broker_cores']:.2f}" if i < len(p["rows"]) else "")
        table.add_row(*cells)
    behind = ["", "consumer behind at the end"] + [
        "" if p["consumer_behind"] is None else f"{p['consumer_behind']:,}" for p in phases
    ]
    table.add_row(*behind, style="dim")
    console.print(table)
    out = args.out / "broker_growth.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
