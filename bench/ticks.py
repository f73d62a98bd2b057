"""What a worker's tick costs with many sessions idling: agents that stopped without a
``session_end``.

    python -m bench.ticks [--sessions 10000 50000] [--ticks 40] [--out bench/results]

The worker ticks each partition's pipeline four times a second (timers, held-back events,
eviction), on its event loop: whatever a tick costs is CPU and, for every record waiting
behind it, latency. With the production TTLs an ended session goes after 300 s and a running
one after an hour idle (``AGENTWATCH_ENDED_TTL_S``, ``AGENTWATCH_IDLE_TTL_S``), so a worker
can hold tens of thousands of running sessions that stopped minutes ago and will not go for
most of an hour. Here: ``--sessions`` in-flight simulated sessions (every default detector,
the worker's parse and pipeline path, as ``bench.memory`` builds them) are left idle 400 s,
between the two TTLs, with 1% more that ended as long ago; then ``--ticks`` ticks a quarter
of a second apart are timed. The first of them evicts the ended ones and is reported apart;
the others are what every tick costs while the idle sessions wait for their hour.

Results: a table and ``bench/results/ticks.json``. A tick that walks every idle session costs
with their number (before the ended sessions got a scan of their own: 1.7 ms a tick at 10,000,
26 ms at 50,000, docs/performance.md, twelfth round); one that does not costs about the same
at every size (0.01 ms).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.memory import traffic

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def measure(sessions: int, ticks: int, seed: int) -> dict[str, Any]:
    from detectors.registry import build_engine
    from monitor.pipeline import Pipeline
    from schemas.events import parse_event

    pipe = Pipeline(build_engine())  # the production TTLs
    now = 0.0
    for i, raw in enumerate(traffic(sessions, seed)):
        pipe.process(parse_event(raw), now=now)
        if i % 1024 == 0:
            pipe.tick(now)
    pipe.tick(now + pipe.settings.reorder_wait_s)
    for raw in traffic(max(1, sessions // 100), seed + 1, in_flight=False):
        pipe.process(parse_event(raw), now=now)
    ended = sum(1 for s in pipe if s.ended)
    held = len(pipe)
    t = now + 400.0  # past the ended TTL (300 s), far from the idle one (3,600 s)
    times = []
    evicted = 0
    for _ in range(ticks):
        t0 = time.perf_counter()
        evicted += len(pipe.tick(t))
        times.append(time.perf_counter() - t0)
        t += 0.25
    steady = sorted(times[1:])
    return {
        "sessions": held,
        "running_idle": len(pipe),
        "ended": ended,
        "first_tick_ms": round(1000 * times[0], 3),
        "tick_median_ms": round(1000 * statistics.median(steady), 3),
        "tick_max_ms": round(1000 * steady[-1], 3),
        "cpu_share_at_4_per_s": round(4 * statistics.median(steady), 4),
        "outputs": evicted,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, nargs="+", default=[10_000, 50_000])
    ap.add_argument("--ticks", type=int, default=40)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    console = Console()
    rows = []
    for n in args.sessions:
        with console.status(f"{n:,} sessions, then {args.ticks} ticks"):
            rows.append(measure(n, args.ticks, args.seed))
    table = Table(title="a tick's cost with running sessions idle 400 s (production TTLs)")
    for col in ("sessions", "running, idle", "ended", "first tick ms", "tick ms (median)",
                "tick ms (max)", "share of a core at 4 ticks/s"):  # fmt: skip
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            f"{r['sessions']:,}",
            f"{r['running_idle']:,}",
            f"{r['ended']:,}",
            f"{r['first_tick_ms']:.2f}",
            f"{r['tick_median_ms']:.3f}",
            f"{r['tick_max_ms']:.3f}",
            f"{100 * r['cpu_share_at_4_per_s']:.2f}%",
        )
    console.print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ticks.json").write_text(json.dumps({"runs": rows}, indent=2) + "\n")
    console.print(f"wrote {args.out / 'ticks.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
