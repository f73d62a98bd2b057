"""Detection cost: µs per event for each detector and for the whole pure pipeline.

    python -m bench.detectors [--data ../shared/data/agentdojo-dev] [--sim EVENTS.jsonl]
                              [--sim-sessions 3000] [--repeat 5] [--compare OLD.json]

Two traffic mixes: the labelled dev set (real AgentDojo sessions, long tool outputs) and
realistic simulated traffic (``monitor.simulator`` when it is installed, else a JSONL file
given with ``--sim``). For each, it measures, as the stream worker runs it (one event at a
time: ``parse_event`` then ``Pipeline.process``, the clock ticked every 256 events):

* ``whole`` - parse + pipeline with every default detector;
* ``floor`` - parse + pipeline with no detector (engine bookkeeping, sessions, dedup);
* ``parse`` - ``parse_event`` alone;
* each detector's own time: ``process`` and, for learners, ``on_session_close`` (timed in a
  separate run; the rest of ``whole`` is the engine's bookkeeping of findings and alerts).

Times are CPU time of this process (``time.process_time``), the minimum of ``--repeat`` runs:
the machine is shared, and the minimum is the least disturbed run. A calibration figure (stdlib
``json.loads`` of a 560-byte event, 3.74 µs on the reference machine of
``shared/reference/perf_baselines.md``) is reported so runs on busy or other machines can be
compared. Results go to ``bench/results/detectors.json``; ``--compare`` prints an earlier
result beside this one.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from bench.detection import DEFAULT_DATA, ROOT
from detectors.registry import build_engine, default_detectors
from monitor.pipeline import Pipeline
from schemas.events import parse_event

TICK_EVERY = 256
_CALIBRATION_EVENT = json.dumps(
    {
        "event_id": "0f6b1c1e-4c1d-4a57-9a2e-7d1f6f7a9e10",
        "time": "2026-07-01T12:00:00.123Z",
        "kind": "tool_call",
        "tenant": "acme",
        "session": {"id": "sess-3c9d2f", "root_id": "sess-3c9d2f", "seq": 17},
        "actor": {"agent_id": "billing-agent", "on_behalf_of": "user:u_812"},
        "tool": {
            "name": "stripe.list_charges",
            "call_id": "call_8d2f1a",
            "arguments": {"customer": "cus_4421", "limit": 20, "status": "succeeded"},
            "outcome": "success",
            "output": "20 charges, total 1,204.50 EUR",
        },
        "otel": {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7"},
    }
)


def calibration(n: int = 20_000) -> float:
    """µs for one stdlib ``json.loads`` of a realistic event on this machine, now."""
    best = math.inf
    for _ in range(5):
        t = time.process_time()
        for _ in range(n):
            json.loads(_CALIBRATION_EVENT)
        best = min(best, (time.process_time() - t) / n * 1e6)
    return best


def sim_lines(path: Path | None, sessions: int, seed: int = 1) -> tuple[list[bytes], str]:
    """Simulated traffic: from ``monitor.simulator`` if installed, else from ``path``."""
    try:
        import orjson

        from monitor.simulator import Simulator  # type: ignore[import-not-found,unused-ignore]

        sim = Simulator(seed=seed, sessions=sessions, attack_ratio=0.05)
        return [orjson.dumps(ev) for ev in sim.events()], f"monitor.simulator seed={seed}"
    except ImportError:
        if path is None:
            return [], "monitor.simulator not installed and no --sim file"
        return [ln for ln in path.read_bytes().splitlines() if ln.strip()], str(path)


def _run(lines: list[bytes], detectors: list[Any] | None) -> tuple[float, dict[str, int]]:
    """One pass as the worker does it; CPU seconds and per-detector nanoseconds (if timed)."""
    engine = build_engine(detectors=detectors)
    spent: dict[str, int] = {}
    if detectors:
        for det in engine.detectors:
            spent[det.name] = 0
            det.process = _timed(det.process, det.name, spent)  # type: ignore[method-assign]
            close = getattr(det, "on_session_close", None)
            if close is not None:  # learning at session close is the detector's cost too
                det.on_session_close = _timed_close(close, det.name, spent)  # type: ignore[attr-defined]
    pipe = Pipeline(engine)
    now = -math.inf
    t0 = time.process_time()
    for i, line in enumerate(lines, 1):
        ev = parse_event(line)
        if ev.ts > now:
            now = ev.ts
        pipe.process(ev, now=now)
        if i % TICK_EVERY == 0:
            pipe.tick(now)
    pipe.tick(now + 10 * 365 * 86400.0)
    return time.process_time() - t0, spent


def _timed(fn: Callable[..., Any], name: str, spent: dict[str, int]) -> Callable[..., Any]:
    clock = time.perf_counter_ns

    def wrapper(ctx: Any, session: Any) -> Any:
        t = clock()
        out = fn(ctx, session)
        spent[name] += clock() - t
        return out

    return wrapper


def _timed_close(fn: Callable[..., Any], name: str, spent: dict[str, int]) -> Callable[..., Any]:
    clock = time.perf_counter_ns

    def wrapper(session: Any, *, flagged: bool) -> Any:
        t = clock()
        out = fn(session, flagged=flagged)
        spent[name] += clock() - t
        return out

    return wrapper


def _parse_only(lines: list[bytes]) -> float:
    t0 = time.process_time()
    for line in lines:
        parse_event(line)
    return time.process_time() - t0


def measure(lines: list[bytes], repeat: int, progress: Progress, label: str) -> dict[str, Any]:
    """µs/event of the whole pipeline, its floor, parsing and each detector."""
    n = len(lines)
    task = progress.add_task(label, total=repeat * 4)
    whole, floor, parse = [], [], []
    per: dict[str, list[float]] = {}
    for _ in range(repeat):
        # the floor first: detectors' module-level caches make later runs' heaps bigger
        floor.append(_run(lines, [])[0] / n * 1e6)
        progress.advance(task)
        parse.append(_parse_only(lines) / n * 1e6)
        progress.advance(task)
        whole.append(_run(lines, None)[0] / n * 1e6)
        progress.advance(task)
        _, spent = _run(lines, default_detectors())
        for name, ns in spent.items():
            per.setdefault(name, []).append(ns / n / 1e3)
        progress.advance(task)
    return {
        "events": n,
        "whole_us": {"min": round(min(whole), 2), "median": round(statistics.median(whole), 2)},
        "floor_us": round(min(floor), 2),
        "parse_us": round(min(parse), 2),
        "detectors_us": {k: round(min(v), 2) for k, v in per.items()},
        "detectors_sum_us": round(sum(min(v) for v in per.values()), 2),
    }


def print_result(console: Console, result: dict[str, Any], old: dict[str, Any] | None) -> None:
    for name, r in result["sets"].items():
        o = (old or {}).get("sets", {}).get(name)
        table = Table(title=f"{name}: {r['events']} events ({r['source']}) - µs per event")
        table.add_column("stage", justify="left")
        if o:
            table.add_column("before", justify="right")
        table.add_column("now", justify="right")
        rows: list[tuple[str, Any, Any]] = [
            ("whole pipeline (parse + process, all detectors)", r["whole_us"]["min"], None),
            ("  floor: parse + pipeline without detectors", r["floor_us"], None),
            ("  parse_event", r["parse_us"], None),
            ("  all detectors (sum)", r["detectors_sum_us"], None),
        ]
        rows += [(f"    {k}", v, None) for k, v in r["detectors_us"].items()]
        for label, now, _ in rows:
            cells = [label]
            if o:
                cells.append(str(_lookup(o, label) or "-"))
            cells.append(f"{now}")
            table.add_row(*cells, style="bold" if label.startswith("whole") else None)
        console.print(table)
    cal = result["calibration_us"]
    console.print(
        f"calibration: json.loads of a 560-byte event = {cal:.2f} µs here "
        f"(3.74 µs on the reference machine); whole-pipeline figures in json.loads units: "
        + ", ".join(f"{k} {v['whole_us']['min'] / cal:.1f}" for k, v in result["sets"].items())
    )


def _lookup(r: dict[str, Any], label: str) -> float | None:
    label = label.strip()
    if label.startswith("whole"):
        return float(r["whole_us"]["min"])
    if label.startswith("floor"):
        return float(r["floor_us"])
    if label == "parse_event":
        return float(r["parse_us"])
    if label.startswith("all detectors"):
        return float(r["detectors_sum_us"])
    v = r["detectors_us"].get(label)
    return None if v is None else float(v)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--sim", type=Path, default=None, help="simulated events (JSONL)")
    ap.add_argument("--sim-sessions", type=int, default=3000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    ap.add_argument("--compare", type=Path, default=None, help="an earlier detectors.json")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    console = Console(width=max(110, Console().width))
    sets: dict[str, tuple[list[bytes], str]] = {}
    dev = args.data / "events.jsonl"
    if dev.exists():
        sets["dev"] = ([ln for ln in dev.read_bytes().splitlines() if ln.strip()], str(dev))
    sim, source = sim_lines(args.sim, args.sim_sessions)
    if sim:
        sets["sim"] = (sim, source)
    else:
        console.print(f"[yellow]no simulated traffic: {source}[/]")
    result: dict[str, Any] = {"calibration_us": round(calibration(), 3), "sets": {}}
    with Progress(disable=args.no_progress, transient=True) as progress:
        for name, (lines, src) in sets.items():
            r = measure(lines, args.repeat, progress, f"timing {name}")
            result["sets"][name] = {"source": src, **r}
    old = json.loads(args.compare.read_text()) if args.compare else None
    print_result(console, result, old)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "detectors.json").write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"wrote {args.out / 'detectors.json'}")
    return result


if __name__ == "__main__":
    main()
