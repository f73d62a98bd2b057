"""The stream worker: records in, one session pipeline per partition, decisions out.

:class:`Monitor` owns the faust app and everything the worker does with a record:

1. **ingest** (``monitor.ingest``): size limit and validation; an invalid record goes to the
   dead-letter topic unchanged, with the reason in its headers, and the worker goes on;
2. **sessions and detection**: one :class:`~monitor.pipeline.Pipeline` per assigned source
   partition, each with its own engine and detectors, so what is detected depends only on the
   partition's records and never on which worker holds it, and learned state moves with it;
3. **decisions** (``monitor.decisions``): alerts to ``monitor.alerts``, signed kill signals to
   ``agent.revocations`` at once (not batched: the kill latency target is p99 <= 50 ms);
4. **audit and storage**: privileged actions to ``agent.privileged``; every valid event,
   alert and signal to the sink (non-blocking);
5. **durability** (``monitor.durability``): periodic checkpoints and restore on assignment.

Processing a record is synchronous; only the sends are awaited, by the agent right after the
record (``monitor.outputs``), so a checkpoint's snapshot sees a consistent state.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from detectors.engine import AlertDecision, Engine, KillDecision
from detectors.registry import rule_detector
from monitor.app import AgentwatchApp, create_app
from monitor.checkpoint import claims_of
from monitor.collector import CollectorMetrics, CollectorPolicy
from monitor.decisions import (
    Record,
    alert_finding,
    alert_record,
    privileged_record,
    signed_kill,
)
from monitor.detection import engine_from_settings, watcher_from_settings
from monitor.heap import HeapMetrics, HeapTrimmer, fix_mmap_threshold
from monitor.ingest import Headers, dead_letter_headers, decode_record, reason_of
from monitor.metrics import Metrics
from monitor.outputs import Outputs, Send
from monitor.pipeline import Evicted, LateEvent, Output, Pipeline, PipelineSettings
from monitor.rule_metrics import RuleMetrics
from monitor.settings import Settings
from monitor.signals import Signer
from monitor.sinks import Sink, open_sink
from monitor.sinks.metrics import SinkCollector
from monitor.topics import Topics, declare_topics
from schemas.errors import InvalidEvent
from schemas.privileged import PrivilegedAction
from schemas.signals import SessionRevokedClaims

log = logging.getLogger("agentwatch.worker")


@dataclass
class PartitionState:
    """One assigned source partition: its sessions and where its checkpoint stands."""

    partition: int
    pipeline: Pipeline
    #: next source offset to process
    position: int
    #: the resume offset of the last checkpoint marker written (or restored)
    resume: int
    #: checkpoint-topic offset where the latest full snapshot begins, and records since then
    base: int = 0
    since_base: int = 0
    learned_at: float = 0.0
    stats: dict[str, int] = field(default_factory=dict)


class Monitor:
    """The agentwatch stream worker (build it, then run ``app`` with a faust Worker)."""

    def __init__(self, settings: Settings, *, sink: Sink | None = None) -> None:
        self.settings = settings
        self.app: AgentwatchApp = create_app(settings)
        self.topics: Topics = declare_topics(self.app, settings)
        self.metrics = Metrics()
        self.signer = Signer.load_or_create(
            settings.signing_key_path, settings.datadir, settings.signing_kid
        )
        self.sink: Sink = sink if sink is not None else open_sink(settings)
        self.metrics.registry.register(SinkCollector(self.sink))
        self.partitions: dict[int, PartitionState] = {}
        #: kill signals already on the topic when partitions were restored (jti -> JWS)
        self.published: dict[str, bytes] = {}
        self.ready = False
        fix_mmap_threshold(settings.malloc_mmap_threshold)
        self.heap = HeapTrimmer(settings.heap_trim_interval_s)
        self.metrics.registry.register(HeapMetrics(self.heap))
        self.collector = CollectorPolicy(settings.gc_full_interval_s, trimmer=self.heap)
        self.metrics.registry.register(CollectorMetrics(self.collector))
        self.outputs = Outputs(self.app, settings, self.metrics)
        #: records queued while a record is processed (handed to producers right after)
        self.outbox = self.outputs.outbox
        #: partitions with decisions taken outside a record (held-back events released by the
        #: clock): the sink stores rows in order, and a decision taken while processing a record
        #: is handed over before that record's event, so the sink's durable offset covers it;
        #: these are not, so the next checkpoint flushes the sink before it moves on
        self.unanchored: set[int] = set()
        # Built once at start: a wrong rule or catalog file stops the worker here, with every
        # error and its file:line; its rule detector is the one the watcher reloads first.
        template = engine_from_settings(settings)
        self.rules = watcher_from_settings(settings, template)
        if self.rules is not None:
            self.metrics.registry.register(RuleMetrics(self.rules.detector, self.rules))
        self._pipeline_settings = PipelineSettings(
            reorder_wait_s=settings.reorder_wait_s,
            grace_s=settings.grace_s,
            ended_ttl_s=settings.ended_ttl_s,
            ended_min_idle_s=settings.ended_min_idle_s,
            idle_ttl_s=settings.idle_ttl_s,
            max_sessions=settings.max_sessions,
            tombstone_ttl_s=settings.tombstone_ttl_s,
            max_tombstones=settings.max_tombstones,
        )
        from monitor import web
        from monitor.agents import score, timers
        from monitor.durability import Durability

        self.durability = Durability(self)
        score.register(self)
        timers.register(self)
        web.register(self)

    # -- engines --------------------------------------------------------------------------
    def new_engine(self) -> Engine:
        """A fresh engine (own detector instances) for one partition.

        Its rule detector follows the rules watcher (hot reload) and counts into the same
        rule statistics as every other partition's, so rule metrics add up across partitions.
        """
        engine = engine_from_settings(self.settings)
        det = rule_detector(engine)
        if det is not None and self.rules is not None:
            det.stats = self.rules.detector.stats
            self.rules.attach(det, engine)
        return engine

    def drop_partition(self, partition: int) -> None:
        """Forget a partition's state (after its final checkpoint, or when it was not ours)."""
        ps = self.partitions.pop(partition, None)
        if ps is not None and self.rules is not None:
            engine = ps.pipeline.engine
            det = rule_detector(engine)
            self.rules.detectors = [d for d in self.rules.detectors if d is not det]
            self.rules.engines = [e for e in self.rules.engines if e is not engine]

    def new_partition(self, partition: int, position: int) -> PartitionState:
        pipeline = Pipeline(self.new_engine(), self._pipeline_settings)
        return PartitionState(partition, pipeline, position=position, resume=position)

    # -- per record (synchronous) -----------------------------------------------------------
    def on_record(
        self,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None,
    ) -> None:
        """Process one record of the action topic. Never raises."""
        t0 = time.perf_counter()
        ps = self.partitions.get(partition)
        if ps is None:  # delivered across a rebalance for a partition no longer held
            return
        kind = None
        try:
            decoded = decode_record(value, headers, self.settings.max_event_bytes)
        except InvalidEvent as exc:
            self.dead_letter(partition, offset, key, value, headers, exc)
        except Exception as exc:  # a validator bug must not stop the partition
            log.exception("unexpected error decoding record %s:%d", partition, offset)
            self.dead_letter(partition, offset, key, value, headers, exc)
        else:
            event = decoded.event
            kind = event.kind
            pipeline = ps.pipeline
            try:
                outputs = pipeline.process(
                    event, now=time.monotonic(), partition=partition, offset=offset
                )
            except Exception as exc:
                log.exception(
                    "detection failed on event %s (partition %d offset %d)",
                    event.event_id,
                    partition,
                    offset,
                )
                self.dead_letter(partition, offset, key, value, headers, exc)
                outputs = []
            if outputs:
                self.handle(outputs)
            # Stored after its decisions: once the sink says this offset is durable, the
            # alerts and signals it led to are stored too (the sink writes in order).
            self.sink.add_event(
                decoded.body,
                event,
                partition=partition,
                offset=offset,
                caps=pipeline.engine.context(event).caps,
            )
        if offset >= ps.position:
            ps.position = offset + 1
        self.metrics.records.record(kind, time.perf_counter() - t0)

    def dead_letter(
        self,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None,
        exc: BaseException,
    ) -> None:
        code, reason = reason_of(exc)
        counter = self.metrics.rejected_by_code.get(code) or self.metrics.rejected.labels(code)
        counter.inc()
        hdrs = dead_letter_headers(
            headers,
            code=code,
            reason=reason,
            topic=self.settings.topic_actions,
            partition=partition,
            offset=offset,
            failed_at_ms=int(time.time() * 1000),
        )
        self.outbox.append(Send(self.settings.topic_dlq, Record(key, value, hdrs), "dlq"))

    def handle(self, outputs: Sequence[Output]) -> None:
        """Turn pipeline outputs into records, sink rows and metrics."""
        m, s = self.metrics, self.settings
        now = time.time()
        for out in outputs:
            if isinstance(out, AlertDecision):
                finding = alert_finding(out)
                self.outbox.append(Send(s.topic_alerts, alert_record(finding, s), "alert"))
                self.sink.add_alert(finding)
                a = out.alert
                m.alerts.labels(a.detector, a.mode).inc()
                m.decision_alert.observe(max(0.0, now - a.modified_ts))
                if a.response == "kill_session" and a.mode == "shadow" and a.version == 1:
                    m.kills.labels(a.detector, "shadow").inc()
            elif isinstance(out, KillDecision):
                self.kill(out, now)
            elif isinstance(out, LateEvent):
                m.late_dropped.inc()
                ev = out.event
                self.outbox.append(
                    Send(
                        s.topic_late,
                        Record(
                            ev.root_session_id.encode(),
                            ev.model_dump_json(exclude_unset=True).encode(),
                            [("agentwatch-lateness-s", f"{out.lateness_s:.3f}".encode())],
                        ),
                        "late",
                    )
                )
            elif isinstance(out, PrivilegedAction):
                rec = privileged_record(out, s)
                self.outbox.append(Send(s.topic_privileged, rec, "privileged"))
                self.sink.add_privileged(out)
            elif isinstance(out, Evicted):
                m.evicted.labels(out.reason).inc()

    def kill(self, decision: KillDecision, now: float) -> None:
        m, s = self.metrics, self.settings
        if s.mode == "shadow":
            m.kills.labels(decision.detector, "shadow").inc()
            return
        m.kills.labels(decision.detector, "enforce").inc()
        m.decision_kill.observe(max(0.0, now - decision.event_ts))
        root = decision.who.root_session_id
        published = self.published.get(decision.jti)
        if published is not None:
            # Re-taken while replaying after a restart: the signal is already on the topic.
            m.kill_replayed.inc()
            claims = SessionRevokedClaims.model_validate(claims_of(published))
            self.sink.add_signal(decision.jti, published.decode(), claims, root_session_id=root)
            return
        signed = signed_kill(decision, s, self.signer, now)
        self.outbox.append(Send(s.topic_revocations, signed.record, "kill", time.perf_counter()))
        self.outputs.urgent = True
        self.sink.add_signal(signed.claims.jti, signed.compact, signed.claims, root_session_id=root)

    # -- timers ---------------------------------------------------------------------------
    def reload_rules(self) -> None:
        """Pick up changed rule files or catalog (between two records; errors are logged)."""
        if self.rules is not None:
            result = self.rules.poll()
            if result is not None and result.ok:
                log.info("reloaded %s: %s (%d rules)", result.what, result.version, result.rules)

    def tick(self) -> None:
        """Release held-back events, evict idle sessions, refresh gauges."""
        now, wall = time.monotonic(), time.time()
        active = 0
        for ps in list(self.partitions.values()):
            try:
                outputs = ps.pipeline.tick(now, wall=wall)
            except Exception:
                log.exception("session housekeeping failed on partition %d", ps.partition)
                continue
            if outputs:
                self.handle(outputs)
                if any(isinstance(o, AlertDecision | KillDecision) for o in outputs):
                    self.unanchored.add(ps.partition)
            active += len(ps.pipeline)
            self._sync_stats(ps)
        self.metrics.active_sessions.set(active)
        self._sync_sink_gauges()
        self._sync_lag()

    def _sync_stats(self, ps: PartitionState) -> None:
        st = ps.pipeline.stats
        for name, counter in (
            ("duplicates", self.metrics.duplicates),
            ("late_processed", self.metrics.late_processed),
        ):
            value = getattr(st, name)
            delta = value - ps.stats.get(name, 0)
            if delta > 0:
                counter.inc(delta)
            ps.stats[name] = value

    def _sync_sink_gauges(self) -> None:
        stats = getattr(self.sink, "stats", None)
        if not callable(stats):
            return
        try:
            st = stats()
        except Exception:
            return
        self.metrics.sink_buffered.set(float(st.get("buffered_rows", 0)))
        self.metrics.sink_oldest.set(float(st.get("oldest_unflushed_age_s", 0.0)))
        errors = float(st.get("errors", 0))
        seen = getattr(self, "_sink_errors_seen", 0.0)
        if errors > seen:
            self.metrics.sink_errors.inc(errors - seen)
            self._sink_errors_seen = errors

    def _sync_lag(self) -> None:
        consumer: Any = self.app._consumer  # noqa: SLF001 (None until the worker has started)
        if consumer is None:
            return
        from faust.types import TP

        for p, ps in self.partitions.items():
            try:
                hw = consumer.highwater(TP(self.settings.topic_actions, p))
            except Exception:
                return
            if hw is not None:
                self.metrics.consumer_lag.labels(str(p)).set(max(0, int(hw) - ps.position))
