"""Where a worker's time per event goes: CPU µs per stage of ``Monitor.on_record``, and beyond.

    python -m bench.stages [--events 40000] [--repeat 3] [--store none|chdb]

The worker's own per-record code (``monitor.runtime.Monitor.on_record``: decode, session
pipeline, detectors, decisions to records, audit records, sink hand-off, metrics) runs
in-process over simulated traffic (the same records as ``bench.throughput``), without Kafka
or faust: records are spread over 4 partitions by key as the broker would, the clock is
ticked (``Monitor.tick``) every 1,000 records, queued outputs are dropped and the garbage
collector settled as the worker does (``monitor.collector``). The whole is
measured unwrapped (CPU time, the minimum of ``--repeat`` runs); in another run each stage is
timed by wrapping it (``time.perf_counter_ns``; stages nested in another, and the measured
cost of timing them, are subtracted from it) and its share of that run is applied to the
whole, so the rows add up to it (a busy machine stretches every stage alike).

What ``on_record`` does not include (faust's consumer, handing records to Kafka producers,
checkpoints, timers, the web server) is the worker's CPU per event measured by
``bench.throughput`` minus this whole: the table shows it when
``bench/results/throughput-simulator.json`` exists, with the pass-through loop's CPU per event
beside it (faust's floor). Results: a table and ``bench/results/stages.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

import monitor.pipeline as pipeline_module
import monitor.runtime as runtime_module
from bench.workers import simulated_events
from monitor.runtime import Monitor
from monitor.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
PARTITIONS = 4
TICK_EVERY = 1000


class Stopwatch:
    """Inclusive and exclusive (nested stages subtracted) nanoseconds per stage."""

    def __init__(self, overhead_ns: float = 0.0) -> None:
        self.total: dict[str, int] = {}
        self.inner: dict[str, int] = {}
        self.calls: dict[str, int] = {}
        #: what one timed call costs its caller outside the stage's own clock readings
        self.overhead_ns = overhead_ns
        self._stack: list[str] = []

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        clock = time.perf_counter_ns
        total, inner, calls, stack = self.total, self.inner, self.calls, self._stack
        overhead = int(self.overhead_ns)
        total.setdefault(name, 0)
        inner.setdefault(name, 0)
        calls.setdefault(name, 0)

        def timed(*args: Any, **kwargs: Any) -> Any:
            stack.append(name)
            t = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                spent = clock() - t
                stack.pop()
                total[name] += spent
                calls[name] += 1
                if stack:  # the caller did not spend this (nor the timing of it)
                    inner[stack[-1]] += spent + overhead

        return timed

    def exclusive(self) -> dict[str, int]:
        """Time in each stage itself (nested stages and the timing of them subtracted)."""
        return {k: max(0, self.total[k] - self.inner[k]) for k in self.total}


def timing_overhead(n: int = 200_000) -> float:
    """Nanoseconds one timed call adds to its caller (outside the callee's clock readings)."""
    watch = Stopwatch()
    inner = watch.wrap("inner", lambda: None)

    def outer() -> None:
        for _ in range(n):
            inner()

    bare_inner = lambda: None  # noqa: E731

    def bare() -> None:
        for _ in range(n):
            bare_inner()

    t = time.perf_counter_ns()
    bare()
    base = time.perf_counter_ns() - t
    timed_outer = watch.wrap("outer", outer)
    timed_outer()
    return max(0.0, (watch.exclusive()["outer"] - base) / n)


def build(settings: Settings, watch: Stopwatch | None) -> Monitor:
    """A worker's Monitor with its partitions assigned (and its stages wrapped, if timed)."""
    monitor = Monitor(settings)
    for p in range(PARTITIONS):
        monitor.partitions[p] = monitor.new_partition(p, 0)
    if watch is None:
        return monitor
    w = watch.wrap
    monitor.on_record = w("on_record (other)", monitor.on_record)  # type: ignore[method-assign]
    monitor.handle = w("decisions -> records", monitor.handle)  # type: ignore[method-assign]
    monitor.sink.add_event = w("sink hand-off", monitor.sink.add_event)  # type: ignore[method-assign]
    monitor.metrics.records.record = w("metrics", monitor.metrics.records.record)  # type: ignore[method-assign]
    runtime_module.decode_record = w("decode + validate", runtime_module.decode_record)  # type: ignore[assignment]
    pipeline_module.privileged_action = w(  # type: ignore[assignment]
        "privileged audit record", pipeline_module.privileged_action
    )
    for ps in monitor.partitions.values():
        pl = ps.pipeline
        engine = pl.engine
        pl.process = w("sessions (pipeline)", pl.process)  # type: ignore[method-assign]
        engine.context = w("classify (tool catalog)", engine.context)  # type: ignore[method-assign]
        engine._before = w("engine bookkeeping", engine._before)  # type: ignore[method-assign]  # noqa: SLF001
        engine._after = w("engine bookkeeping", engine._after)  # type: ignore[method-assign]  # noqa: SLF001
        engine._decide = w("engine: fuse + decide", engine._decide)  # type: ignore[method-assign]  # noqa: SLF001
        for det in engine.detectors:
            det.process = w(f"detector {det.name}", det.process)  # type: ignore[method-assign]
    return monitor


def drive(monitor: Monitor, records: list[tuple[bytes, bytes]]) -> float:
    """Every record through ``on_record``; CPU seconds spent."""
    offsets = [0] * PARTITIONS
    on_record = monitor.on_record
    outbox = monitor.outbox
    t0 = time.process_time()
    for i, (key, value) in enumerate(records, 1):
        p = zlib.crc32(key) % PARTITIONS
        on_record(p, offsets[p], key, value, None)
        offsets[p] += 1
        if i % TICK_EVERY == 0:
            monitor.tick()
            outbox.clear()
            # the worker's collector policy (it settles after every checkpoint): without it,
            # CPython's full collections land on whichever stage allocates at that moment
            monitor.collector.settle()
    monitor.tick()
    outbox.clear()
    return time.process_time() - t0


def restore_modules() -> None:
    from detectors.privileged import privileged_action
    from monitor.ingest import decode_record

    runtime_module.decode_record = decode_record
    pipeline_module.privileged_action = privileged_action


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=40_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--store", choices=("none", "chdb"), default="none")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args(argv)
    console = Console(width=max(100, Console().width))
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.out / "stages-run"
    records = simulated_events(args.events)
    n = len(records)
    whole: list[float] = []
    best: dict[str, int] | None = None
    overhead = min(timing_overhead() for _ in range(3))
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("on_record over simulated traffic", total=2 * args.repeat)
        for r in range(args.repeat):
            for timed in (False, True):
                shutil.rmtree(work, ignore_errors=True)
                store = f"chdb://{(work / 'store').resolve()}" if args.store == "chdb" else "none"
                settings = Settings.from_env(
                    {}, profile="embedded", datadir=work / "data", store_url=store,
                    topic_partitions=PARTITIONS, app_id=f"stages-{r}",
                )  # fmt: skip
                watch = Stopwatch(overhead) if timed else None
                monitor = build(settings, watch)
                monitor.sink.start()
                try:
                    spent = drive(monitor, records)
                finally:
                    monitor.sink.close(30.0)
                    restore_modules()
                if watch is None:
                    whole.append(1e6 * spent / n)
                else:
                    ex = watch.exclusive()
                    if best is None or sum(ex.values()) < sum(best.values()):
                        best = ex
                progress.advance(task)
    shutil.rmtree(work, ignore_errors=True)
    assert best is not None
    # wall-clock shares of the timed run, applied to the untimed run's CPU time: a busy
    # machine stretches every stage alike, and a CPU clock per call would cost ~1 µs
    timed_ns = sum(best.values())
    on_record = min(whole)
    stages = {
        k: round(on_record * v / timed_ns, 2)
        for k, v in sorted(best.items(), key=lambda kv: -kv[1])
    }
    result: dict[str, Any] = {
        "events": n,
        "store": args.store,
        "on_record_us": round(on_record, 1),
        "on_record_timed_wall_us": round(timed_ns / n / 1e3, 1),
        "timing_overhead_ns_per_call": round(overhead),
        "stages_us": stages,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    tp_path = args.out / "throughput-simulator.json"
    if tp_path.exists():
        tp = json.loads(tp_path.read_text())["summary"]
        variant = "worker+store" if args.store == "chdb" else "worker"
        result["throughput_run"] = {
            "worker_cpu_us": tp[variant]["cpu_us_per_event"],
            "passthrough_cpu_us": tp["passthrough"]["cpu_us_per_event"],
            "outside_on_record_us": round(
                tp[variant]["cpu_us_per_event"] - result["on_record_us"], 1
            ),
        }
    print_table(console, result)
    out = args.out / "stages.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"wrote {out}")
    return result


def print_table(console: Console, result: dict[str, Any]) -> None:
    table = Table(
        title=f"CPU µs per event by stage, {result['events']:,} simulated events "
        f"(store: {result['store']})"
    )
    table.add_column("stage")
    table.add_column("µs/event", justify="right")
    table.add_column("share of on_record", justify="right")
    whole = result["on_record_us"]
    for name, us in result["stages_us"].items():
        table.add_row(name, f"{us:.1f}", f"{100 * us / whole:.0f}%")
    table.add_row("[b]on_record (CPU, untimed run)[/]", f"[b]{whole:.1f}[/]", "100%")
    run = result.get("throughput_run")
    if run:
        table.add_row(
            "faust, Kafka I/O, checkpoints, timers (worker CPU in bench.throughput - on_record)",
            f"{run['outside_on_record_us']:.1f}",
            "",
        )
        table.add_row(
            "[b]worker CPU per event in bench.throughput[/]", f"{run['worker_cpu_us']}", ""
        )
        table.add_row("faust pass-through loop, same run (the yardstick)",
                      f"{run['passthrough_cpu_us']}", "")  # fmt: skip
    console.print(table)


if __name__ == "__main__":
    main()
