"""Scale-out: one worker against two in one consumer group, on the same input.

    python -m bench.scaleout [--events 40000] [--store none|chdb]

For each configuration (1 worker, then 2 workers sharing the consumer group), the worker(s)
are started on their own topics of an embedded Tansu broker, and once the group has settled
(every worker ready, the 4 partitions of the action topic split between them), the action
topic is filled with the same ``--events`` simulated events (keyed by root session). Then:

* **throughput**: events/s and CPU µs per event of the group (``bench.workers.measure_drain``)
  and the ratio 2 workers / 1 worker;
* **decisions**: after the workers stopped (each writes a final checkpoint and flushes its
  outputs), every alert record, kill signal and privileged-action audit record of the run is
  read back from its topics and the two runs' sets are compared: alert records in full (the
  OCSF finding: uid, version, rule, evidence, risk, ...), kill signals by their claims without
  the signing time (``iat``), audit records in full. Equal sets show that what is detected in
  a session does not depend on which worker held it.

The machine has 2 cores shared by the broker and both workers, so the throughput ratio says
how much a second worker adds here, not what a second machine would. Results: a table and
``bench/results/scaleout.json``.
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaConsumer, TopicPartition
from rich.console import Console
from rich.table import Table

from bench.workers import Drain, Worker, fill, measure_drain, simulated_events, start_worker
from monitor.broker import EmbeddedBroker
from monitor.settings import Settings
from monitor.topics import ensure_topics

ROOT = Path(__file__).resolve().parent.parent


def settled(workers: list[Worker], partitions: int, timeout: float = 120.0) -> None:
    """Wait until every worker is ready and the partitions are split between them."""
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        held: list[int] = []
        ready = True
        for w in workers:
            try:
                with urllib.request.urlopen(w.url + "/readyz", timeout=2) as resp:
                    body = json.loads(resp.read())
            except OSError:
                ready = False
                break
            ready = ready and body["ready"]
            held += body["partitions"]
        if ready and sorted(held) == list(range(partitions)):
            return
        time.sleep(0.2)
    raise TimeoutError("the consumer group did not settle")


def read_topic(bootstrap: str, topic: str, partitions: int, idle_s: float = 3.0) -> list[Any]:
    """Every record of ``topic`` (read until nothing new arrives for ``idle_s``)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, fetch_max_wait_ms=50)
    consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
    consumer.seek_to_beginning()
    out: list[Any] = []
    quiet_since = time.monotonic()
    try:
        while time.monotonic() - quiet_since < idle_s:
            got = consumer.poll(timeout_ms=200)
            for records in got.values():
                out.extend(records)
            if got:
                quiet_since = time.monotonic()
    finally:
        consumer.close()
    return out


def claims_without_iat(jws: bytes) -> str:
    payload = jws.split(b".")[1]
    claims = orjson.loads(base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)))
    claims.pop("iat", None)
    return orjson.dumps(claims, option=orjson.OPT_SORT_KEYS).decode()


def decision_sets(settings: Settings) -> dict[str, Counter[str]]:
    """What a run decided, as multisets of canonical JSON texts."""
    boot = ",".join(settings.bootstrap)
    n = settings.topic_partitions

    def canon(value: bytes) -> str:
        return orjson.dumps(orjson.loads(value), option=orjson.OPT_SORT_KEYS).decode()

    return {
        "alerts": Counter(canon(r.value) for r in read_topic(boot, settings.topic_alerts, n)),
        "kill_signals": Counter(
            claims_without_iat(r.value) for r in read_topic(boot, settings.topic_revocations, n)
        ),
        "privileged": Counter(
            canon(r.value) for r in read_topic(boot, settings.topic_privileged, n)
        ),
    }


def run(
    broker: EmbeddedBroker,
    workers: int,
    records: list[tuple[bytes, bytes]],
    work: Path,
    store: str,
    console: Console,
) -> tuple[Drain, dict[str, Counter[str]]]:
    prefix = f"scale{workers}"
    settings = Settings.from_env(
        {}, profile="embedded", broker=broker.url, topic_partitions=4, datadir=work / prefix,
        app_id=prefix, topic_actions=f"{prefix}.actions", topic_alerts=f"{prefix}.alerts",
        topic_revocations=f"{prefix}.revocations", topic_privileged=f"{prefix}.privileged",
        topic_dlq=f"{prefix}.dlq", topic_late=f"{prefix}.late",
    )  # fmt: skip
    ensure_topics(broker.bootstrap, settings)
    group: list[Worker] = []
    try:
        with console.status(f"{workers} worker(s): starting, waiting for the group to settle"):
            for i in range(workers):
                url = f"chdb://{(work / f'{prefix}-store-{i}').resolve()}" if store else "none"
                extra = {"AGENTWATCH_DATADIR": str(work / f"{prefix}-data-{i}")}
                group.append(
                    start_worker(settings, work / f"{prefix}-{i}.log", store=url, extra=extra)
                )
            settled(group, settings.topic_partitions)
        with console.status(f"{workers} worker(s): draining {len(records):,} events"):
            fill(broker.bootstrap, settings.topic_actions, records)
            drain = measure_drain(group, len(records), stored=bool(store))
    finally:
        for w in group:
            w.stop()
    with console.status(f"{workers} worker(s): reading back what they decided"):
        decided = decision_sets(settings)
    return drain, decided


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=40_000)
    ap.add_argument("--store", choices=("none", "chdb"), default="none")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args(argv)
    # a SIGTERM unwinds (stops the workers and the broker) instead of orphaning them
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    console = Console(width=max(110, Console().width))
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.out / "scaleout-run"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    records = simulated_events(args.events)
    store = args.store == "chdb"
    with EmbeddedBroker(log_path=work / "tansu.log") as broker:
        one, d1 = run(broker, 1, records, work, store, console)
        two, d2 = run(broker, 2, records, work, store, console)
    same = {k: d1[k] == d2[k] for k in d1}
    result = {
        "events": len(records),
        "store": args.store,
        "one_worker": {"events_per_s": round(one.events_per_s), "cpu_us": round(one.cpu_us, 1)},
        "two_workers": {"events_per_s": round(two.events_per_s), "cpu_us": round(two.cpu_us, 1)},
        "throughput_ratio": round(two.events_per_s / one.events_per_s, 3),
        "decisions": {
            k: {
                "one_worker": sum(d1[k].values()),
                "two_workers": sum(d2[k].values()),
                "identical": same[k],
                "only_one_worker": sum((d1[k] - d2[k]).values()),
                "only_two_workers": sum((d2[k] - d1[k]).values()),
            }
            for k in d1
        },
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    table = Table(title=f"1 vs 2 workers in one consumer group, {len(records):,} events")
    for col in ("", "1 worker", "2 workers", "2/1 or identical"):
        table.add_column(col, justify="right")
    table.add_row(
        "events/s",
        f"{one.events_per_s:,.0f}",
        f"{two.events_per_s:,.0f}",
        f"{result['throughput_ratio']:.2f}",
    )
    table.add_row("CPU µs/event (all workers)", f"{one.cpu_us:.0f}", f"{two.cpu_us:.0f}", "")
    for k, v in result["decisions"].items():
        table.add_row(
            f"{k} (records)",
            f"{v['one_worker']:,}",
            f"{v['two_workers']:,}",
            "[green]identical[/]" if v["identical"] else "[red]DIFFERENT[/]",
        )
    console.print(table)
    out = args.out / "scaleout.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
