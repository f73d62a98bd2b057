"""What the store's process costs per event at a steady rate, as a worker feeds it.

    python -m bench.sink_rate [--rate 2000] [--seconds 20] [--events 40000]

Simulated traffic (5% attack sessions, as docker-compose) goes through the default engine
once, offline, to get what a worker hands to its sink: every event (with its capabilities),
the alerts and the privileged-action records it led to, in order. A
:class:`~monitor.sinks.process.ProcessSink` on the embedded chdb store (the demo's setup:
the sink in its own process, the settings' batching) is then fed that sequence at ``--rate``
events/s for ``--seconds``, paced in 10 ms steps, then flushed. Reported: the sink process's
CPU per event and its share of a core while fed (chdb's own threads included), and what
handing the records over cost the feeding process per event (its CPU minus the same pacing
loop with no sink: the event loop's appends plus the sender thread's pickling). The
throughput bench measures the store behind a draining worker, where batch sizes follow the
worker's speed; here the rate is fixed, so two checkouts compare on equal terms. Results:
``bench/results/sink_rate.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console

from detectors.engine import AlertDecision
from detectors.registry import build_engine
from monitor.decisions import alert_finding
from monitor.pipeline import Pipeline, PipelineSettings
from monitor.settings import Settings
from monitor.simulator import Simulator
from monitor.sinks import open_sink
from monitor.sinks.process import ProcessSink
from schemas.events import parse_event
from schemas.privileged import PrivilegedAction

ROOT = Path(__file__).resolve().parent.parent
TCK = os.sysconf("SC_CLK_TCK")


def cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TCK


#: one sink call: ("e", raw, event, partition, offset, caps), ("a", finding) or ("p", record)
Call = tuple[Any, ...]


class _NoSink:
    """Takes the calls and does nothing (the pacing loop's own cost)."""

    def add_event(self, *a: Any, **k: Any) -> None:
        pass

    def add_alert(self, *a: Any) -> None:
        pass

    def add_privileged(self, *a: Any) -> None:
        pass


def handoffs(n: int) -> list[Call]:
    """The sink calls a worker makes for ``n`` simulated events (kill signals aside: they
    need the signing key), in order."""
    pipe = Pipeline(build_engine(), PipelineSettings())
    calls: list[Call] = []
    sim = Simulator(seed=11, sessions=None, attack_ratio=0.05)
    for i, doc in enumerate(sim.events()):
        if i >= n:
            break
        raw = orjson.dumps(doc)
        ev = parse_event(raw)
        for out in pipe.process(ev, now=ev.ts):
            if isinstance(out, AlertDecision):
                calls.append(("a", alert_finding(out)))
            elif isinstance(out, PrivilegedAction):
                calls.append(("p", out))
        calls.append(("e", raw, ev, i % 4, i, pipe.engine.context(ev).caps))
    return calls


def feed(sink: Any, calls: list[Call], events: int, rate: float) -> float:
    """Make the calls for ``events`` events at ``rate``/s; returns the seconds it took."""
    t0 = time.perf_counter()
    done, k = 0, 0
    while done < events:
        due = min(events, int((time.perf_counter() - t0) * rate))
        while done < due:
            call = calls[k % len(calls)]
            k += 1
            if call[0] == "e":
                _, raw, ev, part, off, caps = call
                sink.add_event(raw, ev, partition=part, offset=off, caps=caps)
                done += 1
            elif call[0] == "a":
                sink.add_alert(call[1])
            else:
                sink.add_privileged(call[1])
        time.sleep(0.01)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=float, default=2000.0)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--events", type=int, default=40_000, help="distinct events to cycle over")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args(argv)
    console = Console()
    with console.status("running the engine over simulated traffic"):
        calls = handoffs(args.events)
    n = int(args.rate * args.seconds)
    tmp = Path(tempfile.mkdtemp(prefix="aw-sink-rate-"))
    try:
        settings = Settings(store_url=f"chdb://{tmp / 'store'}", datadir=tmp / "data")
        sink = open_sink(settings)
        assert isinstance(sink, ProcessSink), "the store's process is what is measured"
        sink.start()
        child = sink._proc.pid  # noqa: SLF001 (the bench measures that process)
        # the pacing loop alone, for the feeding side's baseline
        me0 = time.process_time()
        feed(_NoSink(), calls, n, args.rate)
        idle_cpu = time.process_time() - me0
        with console.status(f"feeding {n:,} events at {args.rate:,.0f}/s"):
            c0, me0 = cpu_of(child), time.process_time()
            elapsed = feed(sink, calls, n, args.rate)
            assert sink.flush(timeout=300), "the store did not take everything"
            c1, me1 = cpu_of(child), time.process_time()
            stored = sink.stats().rows_inserted
        sink.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result = {
        "rate": args.rate,
        "events": n,
        "rows_inserted": stored,
        "store_cpu_us_per_event": round(1e6 * (c1 - c0) / n, 1),
        "store_cpu_share": round((c1 - c0) / elapsed, 3),
        "handoff_cpu_us_per_event": round(1e6 * ((me1 - me0) - idle_cpu) / n, 2),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    console.print(result)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sink_rate.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
