"""Worker memory per live session: 100,000 sessions mid-flight, every default detector on.

    python -m bench.memory [--sessions 100000] [--trace-sessions 20000] [--out bench/results]

Simulated traffic (six agent types, 5% attacks, sub-agents and delegation included) is cut so
that every root session stays open with a handful of events (3 to 8 per session of the tree,
no ``session_end``): the state a worker holds for sessions in flight. The events go through
the worker's own path (JSON bytes -> ``parse_event`` -> ``Pipeline.process`` with the default
engine), one at a time, after a warm-up of 2,000 complete sessions (so imports, learned
models and caches exist before the baseline). Measured in a fresh process each:

* **RSS**: the process's resident memory after the sessions, minus before, per live session
  (what the operating system is asked for: state, allocator overhead, detector caches);
* **traced**: the same with ``tracemalloc`` (Python allocations still alive), and where they
  were made (file), on ``--trace-sessions`` sessions (tracing is slow);
* **checkpoint**: the pickled session (``Pipeline.snapshot``) size per session.

Results: a table and ``bench/results/memory.json``. Target: <= 4 KiB per session.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
TARGET = 4096
WARMUP_SESSIONS = 2000


def _cut(root: str) -> int:
    """How many events each session of the tree ``root`` keeps (3 to 8, stable)."""
    return 3 + zlib.crc32(root.encode()) % 6


def traffic(sessions: int, seed: int, *, in_flight: bool = True) -> Iterator[bytes]:
    """Simulated events as JSON bytes; with ``in_flight`` every session is left open."""
    from monitor.simulator import Simulator

    sim = Simulator(seed=seed, sessions=sessions, attack_ratio=0.05)
    for i, doc in enumerate(sim.events()):
        if i % 4096 == 0:  # the simulator's ground truth is not the worker's memory
            sim.labels.clear()
            sim.secrets.clear()
            sim.harm_roots.clear()
        if in_flight:
            s = doc["session"]
            if doc["kind"] == "session_end" or (s.get("seq") or 0) >= _cut(
                s.get("root_id") or s["id"]
            ):
                continue
        yield orjson.dumps(doc)


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(sessions: int, seed: int, trace: bool) -> dict[str, Any]:
    """In this process: warm up, then hold ``sessions`` live sessions; what they cost."""
    from detectors.registry import build_engine
    from monitor.pipeline import Pipeline
    from schemas.events import parse_event

    pipe = Pipeline(build_engine())
    for raw in traffic(WARMUP_SESSIONS, seed + 1, in_flight=False):
        pipe.process(parse_event(raw), now=0.0)
    pipe.tick(1e12)  # every warm-up session ends or idles out: learners learn, state goes
    pipe.take_dirty()
    gc.collect()
    if trace:
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
    rss0 = rss_bytes()
    t0 = time.perf_counter()
    events = 0
    now = 1.0
    for raw in traffic(sessions, seed):
        pipe.process(parse_event(raw), now=now)
        events += 1
        now += 0.001  # 1,000 events/s of processing time: nothing idles out
        if events % 1024 == 0:
            pipe.tick(now)  # releases events held back for reordering, as the worker does
    pipe.tick(now + pipe.settings.reorder_wait_s)
    elapsed = time.perf_counter() - t0
    pipe.take_dirty()  # a checkpoint empties it
    gc.collect()
    rss1 = rss_bytes()
    live = len(pipe)
    out: dict[str, Any] = {
        "sessions": live,
        "events": events,
        "events_per_session": round(events / live, 2),
        "rss_per_session": round((rss1 - rss0) / live),
        "seconds": round(elapsed, 1),
    }
    if trace:
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        stats = after.compare_to(before, "filename")
        total = sum(s.size_diff for s in stats)
        out["traced_per_session"] = round(total / live)
        top: dict[str, int] = {}
        for s in stats:
            name = s.traceback[0].filename
            name = name.split("site-packages/")[-1] if "site-packages" in name else name
            name = name.replace(str(ROOT) + "/", "")
            top[name] = top.get(name, 0) + s.size_diff
        out["traced_by_file"] = {
            k: round(v / live) for k, v in sorted(top.items(), key=lambda kv: -kv[1])[:12]
        }
    else:
        sizes = [len(pipe.snapshot(r) or b"") for r in pipe.sessions]
        out["checkpoint_per_session"] = round(sum(sizes) / len(sizes))
        out["checkpoint_max"] = max(sizes)
    return out


def _child(sessions: int, seed: int, trace: bool) -> dict[str, Any]:
    """Run :func:`measure` in a fresh interpreter (memory numbers need a clean process)."""
    code = (
        "import json, sys; from bench.memory import measure; "
        f"print(json.dumps(measure({sessions}, {seed}, {trace})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"measurement failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sessions", type=int, default=100_000)
    ap.add_argument("--trace-sessions", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    console = Console()
    with console.status(f"{args.sessions:,} live sessions (RSS, checkpoint size)"):
        rss = _child(args.sessions, args.seed, trace=False)
    with console.status(f"{args.trace_sessions:,} live sessions (tracemalloc)"):
        traced = _child(args.trace_sessions, args.seed, trace=True)
    result = {"rss_run": rss, "trace_run": traced, "target_per_session": TARGET}
    table = Table(title="worker memory per live session (bytes)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("live sessions (RSS run)", f"{rss['sessions']:,}")
    table.add_row("events held (per session)", f"{rss['events']:,} ({rss['events_per_session']})")
    ok = rss["rss_per_session"] <= TARGET
    style = "green" if ok else "red"
    table.add_row("RSS per session", f"[{style}]{rss['rss_per_session']:,}[/]")
    table.add_row(
        f"traced per session ({traced['sessions']:,} sessions)",
        f"{traced['traced_per_session']:,}",
    )
    table.add_row("checkpoint per session (pickled)", f"{rss['checkpoint_per_session']:,}")
    table.add_row("largest checkpointed session", f"{rss['checkpoint_max']:,}")
    for name, size in traced["traced_by_file"].items():
        table.add_row(f"  traced: {name}", f"{size:,}")
    console.print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "memory.json").write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"target <= {TARGET:,} B/session: {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
