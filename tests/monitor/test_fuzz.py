"""Fuzzed records (random bytes, wrong types, huge fields, deep nesting, invalid UTF-8, absurd
timestamps, odd headers, tombstones) with valid sessions in between: nothing crashes, every
rejected record is dead-lettered unchanged with its reason, every accepted one is stored once,
and the clean sessions' combinations are still detected and killed once.

Two runs of the same corpus builder (``tests/monitor/fuzz.py``):

* in-process, through the worker's own record path (``Monitor.on_record``: ingest, pipeline,
  detectors, dead-letter routing) into the real ClickHouse sink on chdb: 100,000 records in
  CI (about 5,000 distinct hypothesis draws, copied with fresh ids);
* through a real worker process on the embedded broker: 3,000 records in CI, 100,000 with
  ``AGENTWATCH_FAULT_SCALE=33``.
"""

from __future__ import annotations

import collections
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer

from monitor.broker import EmbeddedBroker
from monitor.ingest import H_CODE, H_OFFSET, H_PARTITION, H_REASON
from monitor.runtime import Monitor
from monitor.settings import Settings
from tests.monitor.faults import is_attack, scaled, sessions, wait_until
from tests.monitor.fuzz import Rec, draw_corpus, number, replicate, with_clean
from tests.monitor.harness import Collector, Worker, topic_env

pytestmark = [pytest.mark.clickhouse, pytest.mark.slow]


def corpus(prefix: str, distinct: int, total: int, seed: int) -> list[Rec]:
    fuzz = number(replicate(draw_corpus(distinct, seed), total, seed), prefix)
    return with_clean(fuzz, sessions(prefix, attacks=10, benigns=10), seed)


def run_in_process(recs: list[Rec], sink: Any, datadir: Path) -> dict[str, Any]:
    """Every record through ``Monitor.on_record`` (partition 0, offset = index)."""
    settings = Settings.from_env({"AGENTWATCH_DATADIR": str(datadir)})
    monitor = Monitor(settings, sink=sink)
    monitor.partitions[0] = monitor.new_partition(0, 0)
    dlq: dict[int, Any] = {}
    kills: list[Any] = []
    started = time.perf_counter()
    for offset, r in enumerate(recs):
        monitor.on_record(0, offset, r.key, r.value, r.headers)
        while monitor.outbox:
            send = monitor.outbox.popleft()
            if send.kind == "dlq":
                assert offset not in dlq
                dlq[offset] = send.record
            elif send.kind == "kill":
                kills.append(send.record)
    # the clock runs on: held-back fuzzed events are released and evaluated too
    outputs = monitor.partitions[0].pipeline.tick(time.monotonic() + 3600)
    monitor.handle(outputs)
    kills += [s.record for s in monitor.outbox if s.kind == "kill"]
    elapsed = time.perf_counter() - started
    return {"dlq": dlq, "kills": kills, "elapsed": elapsed, "monitor": monitor}


def check(
    recs: list[Rec], dlq: dict[int, Any], stored: dict[str, int], offsets: list[int] | None = None
) -> collections.Counter[tuple[str, str]]:
    """Each record dead-lettered (unchanged, with a reason) or stored once, never both.

    ``dlq`` and ``stored`` (``event_id -> index``, as users read the store) are keyed by the
    record's index in ``recs``; ``offsets`` are the records' source offsets (default: the
    index), which the dead letters' headers must give."""
    outcome: collections.Counter[tuple[str, str]] = collections.Counter()
    stored_offsets = collections.Counter(stored.values())
    assert all(n == 1 for n in stored_offsets.values())
    assert all(0 <= i < len(recs) for i in stored_offsets), "stored events nobody sent"
    for offset, r in enumerate(recs):
        d = dlq.get(offset)
        kept = offset in stored_offsets
        where = f"record {offset} ({r.family}, {r.expect})"
        assert (d is not None) != kept, f"{where}: dead-lettered {d is not None}, stored {kept}"
        if d is not None:
            headers = dict(d.headers)
            assert d.value == r.value and d.key == r.key, f"{where}: changed in the DLQ"
            source = offset if offsets is None else offsets[offset]
            assert headers[H_REASON] and headers[H_OFFSET] == str(source).encode()
            code = headers[H_CODE].decode()
            assert code != "processing_error", f"{where}: {headers[H_REASON]!r}"
            assert r.expect != "valid", f"{where}: rejected, {headers[H_REASON]!r}"
            if r.code is not None:
                assert code == r.code, f"{where}: {code} {headers[H_REASON]!r}"
            outcome[(r.family, code)] += 1
        else:
            assert r.expect != "invalid", f"{where}: accepted"
            assert r.event_id is None or r.event_id in stored
            outcome[(r.family, "stored")] += 1
    return outcome


def stored_events(client: Any, database: str) -> dict[str, int]:
    """``event_id -> source offset``, read as users read it (FINAL, one row per event id)."""
    rows = client.query(
        f"SELECT event_id, source_offset FROM {database}.events FINAL LIMIT 1 BY event_id"
    ).result_rows
    return {str(e): int(o) for e, o in rows}


def test_fuzzed_records_in_process(make_sink: Any, client: Any, tmp_path: Path) -> None:
    prefix = f"fzp-{uuid.uuid4().hex[:6]}"
    recs = corpus(prefix, distinct=scaled(5_000), total=scaled(100_000), seed=11)
    sink = make_sink(batch_rows=5_000)
    sink.start()
    got = run_in_process(recs, sink, tmp_path)
    assert sink.flush(timeout=120)
    stats = sink.stats()
    assert stats.insert_errors == 0 and not stats.degraded
    outcome = check(recs, got["dlq"], stored_events(client, sink.database))
    families = {f for f, _ in outcome}
    assert families >= {"random_bytes", "invalid_utf8", "wrong_types", "huge_fields", "clean"}
    assert families >= {"deep_nesting", "absurd_timestamps", "odd_headers", "tombstone"}
    attacks = sorted(r.root for r in recs if r.family == "clean" and is_attack(r.root or ""))
    kill_keys = sorted(k.key.decode() for k in got["kills"])
    assert kill_keys == sorted(set(attacks)), kill_keys
    print(
        f"\n{len(recs)} records in {got['elapsed']:.1f}s "
        f"({len(recs) / got['elapsed']:.0f}/s), outcomes: {dict(sorted(outcome.items()))}"
    )


def test_fuzzed_records_through_a_worker(broker: EmbeddedBroker, tmp_path: Path) -> None:
    prefix = f"fzw-{uuid.uuid4().hex[:6]}"
    n = scaled(3_000)
    recs = corpus(prefix, distinct=n, total=n, seed=23)
    env = {**topic_env(prefix), "AGENTWATCH_TOPIC_PARTITIONS": "2"}
    worker = Worker(broker.bootstrap, tmp_path / "worker", env).start()
    s = worker.settings
    out = Collector(broker.bootstrap, [s.topic_revocations, s.topic_dlq], 2)
    try:
        started = time.monotonic()
        producer = KafkaProducer(
            bootstrap_servers=broker.bootstrap, max_request_size=4 * 1024 * 1024, linger_ms=5
        )
        futures = [
            producer.send(s.topic_actions, key=r.key, value=r.value, headers=r.headers or None)
            for r in recs
        ]
        producer.flush()
        where = [(m.partition, m.offset) for m in (f.get(30) for f in futures)]
        producer.close()
        index = {pos: i for i, pos in enumerate(where)}

        def seen() -> float:
            return worker.metric("agentwatch_events_consumed_total") + worker.metric(
                "agentwatch_events_rejected_total"
            )

        wait_until(lambda: seen() >= len(recs), timeout=300, what="the worker to read it all")
        elapsed = time.monotonic() - started
        rejected = int(worker.metric("agentwatch_events_rejected_total"))
        got = out.poll(lambda r: len(r[s.topic_dlq]) >= rejected, timeout=60, settle=1.0)
        dlq: dict[int, Any] = {}
        for d in got[s.topic_dlq]:
            h = dict(d.headers)
            i = index[(int(h[H_PARTITION]), int(h[H_OFFSET]))]
            assert i not in dlq, f"record {i} dead-lettered twice"
            dlq[i] = d
        # what must be stored: every record not dead-lettered, under its root session
        want: dict[str, int] = collections.Counter(
            r.root for i, r in enumerate(recs) if i not in dlq and r.root is not None
        )
        ids = {r.event_id: i for i, r in enumerate(recs) if r.event_id is not None}
        stored: dict[str, int] = {}
        for root, count in want.items():
            doc = worker.wait_stored(root, events=count, alerts=0, signals=0, timeout=120)
            for e in doc["events"]:
                assert e["event_id"] not in stored, f"{e['event_id']} read twice"
                stored[e["event_id"]] = ids.get(e["event_id"], -1)
        assert worker.proc is not None and worker.proc.poll() is None, "the worker died"
    finally:
        out.close()
        assert worker.stop() == 0, worker.tail()
    assert all(r.root is not None for i, r in enumerate(recs) if i not in dlq)
    offsets = [off for _, off in where]
    outcome = check(recs, dlq, stored, offsets)
    attacks = sorted({r.root for r in recs if r.family == "clean" and is_attack(r.root or "")})
    assert sorted(x.key.decode() for x in got[s.topic_revocations]) == attacks
    print(
        f"\n{len(recs)} records through the worker in {elapsed:.1f}s "
        f"({len(recs) / elapsed:.0f}/s), outcomes: {dict(sorted(outcome.items()))}"
    )
