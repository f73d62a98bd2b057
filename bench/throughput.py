"""Worker throughput against the plain faust loop, measured in the same run.

    python -m bench.throughput [--events 60000] [--repeat 3] [--source simulator|agentdojo]

The action topic (4 partitions) of an embedded Tansu broker is filled with ``--events``
events, then drained, in each of ``--repeat`` rounds, by:

1. **faust pass-through**: a faust agent that consumes and decodes its events and does
   nothing else (``async for event in stream.events()``, each value through
   ``orjson.loads``, the worker's own app and transport settings): the yardstick, the
   issue's "plain pass-through loop (consume, decode, nothing else)" with the cheapest
   decoding there is. For reference (``--variants``): the same loop without decoding
   (``passthrough-raw``; the table then also gives each worker's ratio to it) and with
   faust's own JSON codec (``passthrough-faust-json``, ``value_serializer="json"``);
2. **worker, no store**: ``agentwatch worker`` with every default detector, decisions,
   kill signals, alerts, audit records and checkpoints, ``AGENTWATCH_STORE_URL=none``;
3. **worker + chdb store**: the same with the embedded ClickHouse store as in the demo
   (``chdb://...``, the sink in its own process); here a drain ends when the store holds
   every event, so a store that falls behind counts against the worker.

Each drain has its own consumer group and reads the same records. Reported: events/s, CPU
µs per event of the worker process (and of the store's process), and the ratio of each
worker's events/s to the yardstick's *of the same round* (the target: >= 0.6),
median over the rounds. CPU per event moves less than events/s on a busy machine.
``--source simulator`` (default): the simulator's traffic, 5% attack sessions as in
docker-compose; ``--source agentdojo``: the AgentDojo dev set replicated with fresh ids
(mostly attacks, long tool outputs). Results: a table, and
``bench/results/throughput-<source>.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.detection import default_data
from bench.workers import (
    Drain,
    dataset_events,
    fill,
    measure_drain,
    run_passthrough,
    simulated_events,
    start_worker,
)
from monitor.broker import EmbeddedBroker
from monitor.settings import Settings
from monitor.topics import ensure_topics

ROOT = Path(__file__).resolve().parent.parent
#: the pass-through loops (the yardstick, then the two for reference) and how each decodes
PASSTHROUGHS = {
    "passthrough": "orjson",
    "passthrough-raw": "raw",
    "passthrough-faust-json": "faust-json",
}
VARIANTS = (*PASSTHROUGHS, "worker", "baseline", "worker+store")


def drain_worker(
    settings: Settings, n: int, work: Path, store: bool, tag: str, cwd: Path | None = None
) -> tuple[Drain, dict[str, float]]:
    """One worker (own consumer group) drains the topic; its rate and what it decided
    (``cwd``: run another checkout's code, see ``--baseline``)."""
    url = f"chdb://{(work / f'store-{tag}').resolve()}" if store else "none"
    worker = start_worker(settings, work / f"worker-{tag}.log", store=url, cwd=cwd)
    try:
        drain = measure_drain([worker], n, stored=store)
        decisions = {
            "alerts": worker.value("agentwatch_alerts_emitted_total"),
            "kills": worker.value("agentwatch_kill_decisions_total"),
            "rejected": worker.value("agentwatch_events_rejected_total"),
        }
    finally:
        worker.stop()
        shutil.rmtree(work / f"store-{tag}", ignore_errors=True)
    return drain, decisions


def summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for v in (v for v in VARIANTS if v in rounds[0]):
        runs = [r[v] for r in rounds]
        rates = [d["events_per_s"] for d in runs]
        out[v] = {
            "events_per_s": round(statistics.median(rates)),
            "events_per_s_range": [round(min(rates)), round(max(rates))],
            "cpu_us_per_event": round(statistics.median(d["cpu_us"] for d in runs), 1),
            "store_cpu_us_per_event": round(statistics.median(d["child_cpu_us"] for d in runs), 1),
        }
        if v != "passthrough":
            ratios = [r[v]["events_per_s"] / r["passthrough"]["events_per_s"] for r in rounds]
            cpu = [r["passthrough"]["cpu_us"] / r[v]["cpu_us"] for r in rounds]
            out[v]["ratio"] = round(statistics.median(ratios), 3)
            out[v]["ratios"] = [round(x, 3) for x in ratios]
            out[v]["cpu_ratio"] = round(statistics.median(cpu), 3)
        if v not in PASSTHROUGHS and "passthrough-raw" in rounds[0]:
            raw = [r[v]["events_per_s"] / r["passthrough-raw"]["events_per_s"] for r in rounds]
            out[v]["ratio_to_raw"] = round(statistics.median(raw), 3)
    return out


def print_table(console: Console, result: dict[str, Any]) -> None:
    s = result["summary"]
    table = Table(
        title=f"agentwatch worker vs the faust pass-through loop, {result['events']:,} "
        f"{result['source']} events, median of {result['repeat']} rounds"
    )
    for col in ("drained by", "events/s", "range", "ratio (>= 0.6)", "CPU µs/event",
                "store CPU µs/event", "CPU ratio", "ratio to consume-only"):  # fmt: skip
        table.add_column(col, justify="left" if col == "drained by" else "right")
    labels = {
        "passthrough": "faust pass-through: consume + orjson decode (yardstick)",
        "passthrough-raw": "faust pass-through: consume only (no decode)",
        "passthrough-faust-json": "faust pass-through: consume + faust's JSON codec",
        "worker": "worker, every detector, no store",
        "worker+store": "worker + chdb store (as the demo)",
        "baseline": f"baseline worker ({result.get('baseline')}), no store",
    }
    for v in (v for v in VARIANTS if v in s):
        r = s[v]
        table.add_row(
            labels[v],
            f"{r['events_per_s']:,}",
            "{:,}-{:,}".format(*r["events_per_s_range"]),
            f"{r['ratio']:.2f}" if "ratio" in r else "1",
            f"{r['cpu_us_per_event']:.0f}",
            f"{r['store_cpu_us_per_event']:.0f}" if v == "worker+store" else "-",
            f"{r['cpu_ratio']:.2f}" if "cpu_ratio" in r else "1",
            f"{r['ratio_to_raw']:.2f}" if "ratio_to_raw" in r else "-",
        )
    console.print(table)
    d = result["decisions"]
    console.print(
        f"decisions per worker run (identical every run): {d[0]['alerts']:.0f} alert records, "
        f"{d[0]['kills']:.0f} kill decisions, {d[0]['rejected']:.0f} rejected"
        + ("" if all(x == d[0] for x in d) else " [red]- NOT identical across runs[/]")
    )
    b = result.get("baseline_decisions") or []
    if b:
        console.print(
            "the baseline's decisions: "
            + ("the same" if all(x == d[0] for x in b) else f"[red]different: {b[0]}[/]")
        )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=60_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--source", choices=("simulator", "agentdojo"), default="simulator")
    ap.add_argument("--data", type=Path, default=None, help="with --source agentdojo")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    ap.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help="comma-separated subset of passthrough, passthrough-raw, passthrough-faust-json, "
        "worker, worker+store (passthrough, the yardstick, always runs)",
    )
    ap.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="another checkout (e.g. `git worktree add /tmp/base main`): its worker, no store, "
        "also drains the topic in every round, right after this one's, for a comparison in "
        "the same time window",
    )
    args = ap.parse_args(argv)
    wanted = set(args.variants.split(",")) - {"baseline"}
    if args.baseline:
        wanted.add("baseline")
    variants = ["passthrough", *(v for v in VARIANTS[1:] if v in wanted)]
    console = Console(width=max(120, Console().width))
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.out / "throughput-run"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    if args.source == "agentdojo":
        records = dataset_events(args.events, (args.data or default_data()) / "events.jsonl")
    else:
        records = simulated_events(args.events)
    rounds: list[dict[str, Any]] = []
    decisions: list[dict[str, float]] = []
    baseline_decisions: list[dict[str, float]] = []
    with EmbeddedBroker(log_path=work / "tansu.log") as broker:
        base = Settings.from_env(
            {}, profile="embedded", broker=broker.url, topic_partitions=4, datadir=work / "data",
            app_id="bench", topic_actions="bench.actions",
        )  # fmt: skip
        ensure_topics(broker.bootstrap, base)
        with console.status(f"filling {base.topic_actions} with {len(records):,} events"):
            fill(broker.bootstrap, base.topic_actions, records)
        for r in range(args.repeat):
            row: dict[str, Any] = {}
            for v in variants:
                tag = f"{v.replace('+', '-')}-{r}"
                settings = base.model_copy(
                    update={"app_id": f"bench-{tag}", "datadir": work / f"data-{tag}"}
                )
                ensure_topics(broker.bootstrap, settings)
                with console.status(f"round {r + 1}/{args.repeat}: {v} draining the topic"):
                    if v in PASSTHROUGHS:
                        drain = run_passthrough(
                            settings, len(records), work / f"{tag}.log", decode=PASSTHROUGHS[v]
                        )
                    else:
                        drain, decided = drain_worker(
                            settings,
                            len(records),
                            work,
                            v == "worker+store",
                            tag,
                            args.baseline.resolve() if v == "baseline" else None,
                        )
                        (baseline_decisions if v == "baseline" else decisions).append(decided)
                row[v] = {
                    "events_per_s": drain.events_per_s,
                    "cpu_us": drain.cpu_us,
                    "child_cpu_us": drain.child_cpu_us,
                }
                console.print(
                    f"round {r + 1} {v}: {drain.events_per_s:,.0f} events/s, "
                    f"{drain.cpu_us:.0f} µs CPU/event"
                    + (f" (+{drain.child_cpu_us:.0f} in the store)" if drain.child_cpu_us else "")
                )
                shutil.rmtree(work / f"data-{tag}", ignore_errors=True)
            rounds.append(row)
    result = {
        "source": args.source,
        "events": len(records),
        "repeat": args.repeat,
        "baseline": str(args.baseline) if args.baseline else None,
        "machine": f"{platform.machine()} {platform.python_version()}",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "summary": summary(rounds),
        "rounds": rounds,
        "decisions": decisions,
        "baseline_decisions": baseline_decisions,
    }
    print_table(console, result)
    out = args.out / f"throughput-{args.source}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
