"""Benchmark of the ClickHouse sink on the embedded engine (chdb): what storage costs.

Stages, each on the same simulated traffic (``monitor.simulator``, attack ratio 0.2):

* ``add_event`` — what the worker pays on its event loop per event (buffer append);
* ``redact`` — :meth:`Redactor.event_doc` on the decoded event (µs/event);
* ``row build`` — the full ``events`` row: decode, redact, typed columns, JSON (µs/row);
* ``insert`` — ``client.insert`` of pre-built rows, per batch size (rows/s, µs/row);
* ``sink end-to-end`` — ``add_event`` of every event then ``flush()``: rows/s through the
  flusher threads (build + redaction + insert), per batch size;
* ``loop`` — what the sink costs a worker: a loop that parses each record and hands it to the
  sink, events/s without a sink, with the sink in threads of the same process (they share its
  GIL, and chdb holds the GIL while it executes), and with the sink in a child process.

Run: ``.venv/bin/python bench/sink.py [--events 50000] [--repeat 3]``; prints a table and
writes ``bench/results/sink.json``. Medians of ``--repeat`` runs; the machine is shared, so
compare runs made together, not with numbers from another day.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.redaction import Redactor  # noqa: E402
from monitor.settings import Settings  # noqa: E402
from monitor.simulator import Simulator  # noqa: E402
from monitor.sinks import open_sink  # noqa: E402
from monitor.sinks.base import NullSink  # noqa: E402
from monitor.sinks.clickhouse import ClickHouseSink  # noqa: E402
from monitor.sinks.rows import event_row  # noqa: E402
from monitor.sinks.schema import EVENT_COLUMNS, ddl  # noqa: E402
from schemas.events import parse_event  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "sink.json"
#: the shared folder sits beside the repository (CI, the lead's checkout) or one level up
RECORDED = tuple(
    p / "shared/data/agentdojo-dev/events.jsonl" for p in Path(__file__).resolve().parents[2:4]
)


def corpus(n: int) -> list[tuple[bytes, Any]]:
    sim = Simulator(seed=42, sessions=None, attack_ratio=0.2)
    out = []
    for doc in sim.events():
        raw = orjson.dumps(doc)
        out.append((raw, parse_event(raw)))
        if len(out) >= n:
            break
    return out


def median_of(runs: list[float]) -> dict[str, float]:
    return {"median": statistics.median(runs), "min": min(runs), "max": max(runs)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--batches", default="1000,10000,50000")
    ap.add_argument(
        "--real-events",
        default=next((str(p) for p in RECORDED if p.exists()), str(RECORDED[0])),
        help="recorded events (JSON lines) to time redaction on, if the file exists",
    )
    args = ap.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    console = Console()
    events = corpus(args.events)
    # The corpus is long-lived, like a worker's sessions: move it out of the young GC
    # generations, or every collection rescans it and the numbers measure the GC.
    gc.collect()
    gc.freeze()
    avg_bytes = sum(len(r) for r, _ in events) / len(events)
    s = Settings()
    redactor = Redactor(
        b"bench-key-0123456789abcdef", s.redact_fields, max_output_chars=s.max_stored_output_chars
    )
    results: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "events": len(events),
        "avg_event_bytes": round(avg_bytes, 1),
        "stages": {},
    }
    stages = results["stages"]
    tmp = Path(tempfile.mkdtemp(prefix="aw-bench-sink-"))
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("benchmarking", total=5 + 2 * len(batches))

        docs = [orjson.loads(r) for r, _ in events]
        runs = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            for d in docs:
                redactor.event_doc(d)
            runs.append((time.perf_counter() - t) / len(docs) * 1e6)
        stages["redact_us_per_event"] = median_of(runs)
        real = Path(args.real_events)
        if real.exists():  # recorded agent sessions with long tool outputs (up to 4,000 chars)
            rdocs = [orjson.loads(line) for line in real.read_bytes().splitlines()]
            runs = []
            for _ in range(args.repeat):
                t = time.perf_counter()
                for d in rdocs:
                    redactor.event_doc(d)
                runs.append((time.perf_counter() - t) / len(rdocs) * 1e6)
            stages["redact_us_per_event_recorded"] = median_of(runs)
            results["recorded_events"] = {"path": str(real), "events": len(rdocs)}
        progress.advance(task)

        now = datetime.now(UTC)
        runs = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            rows = [event_row(redactor, r, e, 0, i, None, now) for i, (r, e) in enumerate(events)]
            runs.append((time.perf_counter() - t) / len(events) * 1e6)
        stages["row_build_us_per_row"] = median_of(runs)
        progress.advance(task)

        import clickhouse_connect

        client = clickhouse_connect.get_client(dsn=f"chdb://{tmp / 'insert'}")
        for stmt in ddl("bench"):
            client.command(stmt)
        for size in batches:
            runs = []
            for _ in range(args.repeat):
                client.command("TRUNCATE TABLE bench.events")
                t = time.perf_counter()
                for i in range(0, len(rows), size):
                    client.insert(
                        "bench.events", rows[i : i + size], column_names=list(EVENT_COLUMNS)
                    )
                runs.append(len(rows) / (time.perf_counter() - t))
            stages[f"insert_rows_per_s_batch_{size}"] = median_of(runs)
            progress.advance(task)
        client.close()

        for size in batches:
            runs, add_us = [], []
            for rep in range(args.repeat):
                sink = ClickHouseSink(
                    f"chdb://{tmp / 'sink'}",
                    database=f"b{size}_{rep}",
                    datadir=tmp / "data",
                    redactor=redactor,
                    batch_rows=size,
                    flush_interval_s=0.5,
                    max_buffer_rows=max(200_000, 2 * size),
                )
                sink.start()
                t = time.perf_counter()
                for i, (r, e) in enumerate(events):
                    sink.add_event(r, e, partition=i % 4, offset=i, caps=None)
                added = time.perf_counter() - t
                assert sink.flush(timeout=600), "the sink did not drain"
                runs.append(len(events) / (time.perf_counter() - t))
                add_us.append(added / len(events) * 1e6)
                assert sink.stats().rows_inserted["events"] == len(events)
                sink.close()
            stages[f"sink_rows_per_s_batch_{size}"] = median_of(runs)
            stages[f"add_event_us_batch_{size}"] = median_of(add_us)
            progress.advance(task)

        # What the sink costs a worker: a loop that parses each record (as the worker does)
        # and hands it to the sink, with no sink vs the chdb sink (its threads share the GIL).
        raws = [r for r, _ in events]
        for label, kind in (
            ("loop_no_sink_events_per_s", "none"),
            ("loop_thread_sink_events_per_s", "thread"),
            ("loop_process_sink_events_per_s", "process"),
        ):
            runs = []
            for rep in range(args.repeat):
                sink: Any = NullSink()
                if kind == "thread":
                    sink = ClickHouseSink(
                        f"chdb://{tmp / 'loop'}",
                        database=f"loop_{rep}",
                        datadir=tmp / "data",
                        redactor=redactor,
                    )
                elif kind == "process":
                    sink = open_sink(
                        Settings(
                            store_url=f"chdb://{tmp / 'loop-child'}",
                            store_database=f"loop_{rep}",
                            datadir=tmp / "data",
                        )
                    )
                sink.start()
                t = time.perf_counter()
                for i, raw in enumerate(raws):
                    ev = parse_event(raw)
                    sink.add_event(raw, ev, partition=i % 4, offset=i, caps=None)
                runs.append(len(raws) / (time.perf_counter() - t))
                assert sink.flush(timeout=600)
                sink.close()
            stages[label] = median_of(runs)
        progress.advance(task)

    table = Table(
        title=f"sink benchmark: {len(events):,} simulated events, "
        f"{avg_bytes:.0f} B average, median of {args.repeat}"
    )
    table.add_column("stage")
    table.add_column("median", justify="right")
    table.add_column("min–max", justify="right")
    table.add_column("µs/row", justify="right")
    for name, v in stages.items():
        per_row = v["median"] if "_us_" in name else 1e6 / v["median"]
        fmt = "{:,.2f}" if "_us_" in name else "{:,.0f}"
        table.add_row(
            name,
            fmt.format(v["median"]),
            f"{fmt.format(v['min'])}–{fmt.format(v['max'])}",
            f"{per_row:.2f}",
        )
    console.print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    console.print(f"results written to {RESULTS}")


if __name__ == "__main__":
    main()
