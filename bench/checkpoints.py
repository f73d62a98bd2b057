"""What checkpoints cost the worker in CPU at a moderate rate, without Kafka.

    python -m bench.checkpoints [--rate 2000] [--seconds 60] [--interval 1] [--repeat 3]

The latency bench's background traffic (simulated, ~8 events a session, ``rate / 8`` sessions
starting a second, event times on the clock) goes through ``Pipeline.process`` at ``--rate``
events/s of processing time; every ``--interval`` seconds of it, a checkpoint takes the
dirty sessions and pickles each (``Pipeline.snapshot``, what ``Durability._slices`` does),
and every ``4 x`` as many records as sessions and tombstones, a full snapshot pickles them
all (as ``Durability._snapshot`` decides). Measured in CPU time (``time.process_time``, so
other processes on the machine matter less than on a wall clock), the cyclic collector off
as the worker keeps it off its hot path:

* **µs per pickled record** (sessions and tombstones) and bytes per record;
* **checkpoint µs per event**: all the pickling divided by the events processed, the share
  of a worker's CPU per event that checkpoints take at this rate (a worker at 2,000 events/s
  spends 2,000 x that per second on them);
* processing µs per event, for scale.

The median of ``--repeat`` runs (each in this process, after a warm-up) is reported; results
in ``bench/results/checkpoints.json``.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent


def run(rate: float, seconds: float, interval: float, seed: int) -> dict[str, float]:
    """One run: process ``rate * seconds`` events, checkpointing every ``interval``."""
    from detectors.registry import build_engine
    from monitor.pipeline import Pipeline
    from monitor.simulator import generate
    from schemas.events import parse_event

    start = datetime(2026, 7, 1, tzinfo=UTC)
    docs = generate(seed, sessions=None, attack_ratio=0.05, start=start, session_rate=rate / 8)
    raws = [orjson.dumps(next(docs)) for _ in range(int(rate * seconds))]
    pipe = Pipeline(build_engine())
    clock = time.process_time
    processing = pickling = 0.0
    records = size = since_base = 0
    next_at = interval
    gc.collect()
    gc.disable()
    try:
        for i, raw in enumerate(raws):
            now = i / rate
            t0 = clock()
            pipe.process(parse_event(raw), now=now)
            t1 = clock()
            processing += t1 - t0
            if now >= next_at:
                next_at += interval
                pipe.tick(now)
                dirty = pipe.take_dirty()
                buried = pipe.tombstones
                full = since_base >= max(1000, 4 * (len(pipe) + len(buried)))
                roots = [*pipe.sessions, *buried] if full else dirty
                t2 = clock()
                for root in roots:
                    blob = pipe.snapshot(root)
                    size += 0 if blob is None else len(blob)
                pickling += clock() - t2
                records += len(roots)
                since_base = len(roots) + 1 if full else since_base + len(roots) + 1
    finally:
        gc.enable()
    events = len(raws)
    return {
        "us_per_record": pickling / max(1, records) * 1e6,
        "bytes_per_record": size / max(1, records),
        "records_per_event": records / events,
        "checkpoint_us_per_event": pickling / events * 1e6,
        "process_us_per_event": processing / events * 1e6,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=float, default=2000.0, help="events/s of processing time")
    ap.add_argument("--seconds", type=float, default=60.0, help="of processing time per run")
    ap.add_argument("--interval", type=float, default=1.0, help="checkpoint interval (s)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args()
    console = Console()
    run(args.rate, 5.0, args.interval, seed=1)  # warm-up: imports, caches, learned models
    runs = []
    with console.status("checkpointing simulated traffic") as status:
        for n in range(args.repeat):
            status.update(f"run {n + 1} of {args.repeat}")
            runs.append(run(args.rate, args.seconds, args.interval, seed=11))
    result: dict[str, Any] = {k: round(statistics.median(r[k] for r in runs), 3) for k in runs[0]}
    result.update(
        rate=args.rate,
        seconds=args.seconds,
        interval_s=args.interval,
        repeat=args.repeat,
        runs=[{k: round(v, 3) for k, v in r.items()} for r in runs],
        when=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    table = Table(title=f"checkpoints at {args.rate:,.0f} events/s, every {args.interval:g} s")
    table.add_column("measure")
    table.add_column("median", justify="right")
    table.add_column("runs", justify="right")
    for k in runs[0]:
        table.add_row(k, f"{result[k]:,.2f}", " ".join(f"{r[k]:.2f}" for r in runs))
    console.print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "checkpoints.json").write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"written to {args.out / 'checkpoints.json'}")


if __name__ == "__main__":
    main()
