"""The worker's Prometheus metrics, in their own registry, served at ``/metrics``.

Names follow Prometheus practice (reference/ecosystem.md §7, §10.5): the ``agentwatch_``
prefix, base units (seconds), ``_total`` on counters, no unbounded label values (never a
session id, jti or event id). Label children used on the hot path are created once.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from monitor.ingest import REASON_CODES
from schemas.events import EVENT_KINDS

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

_FAST = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
_SLOW = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class Metrics:
    """Every metric the worker exports."""

    def __init__(self, version: str = "0.1.0") -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        #: agentwatch_events_consumed_total and agentwatch_event_processing_duration_seconds
        self.records = RecordMetrics()
        r.register(self.records)
        self.rejected = Counter(
            "agentwatch_events_rejected_total",
            "Records sent to the dead-letter topic, by reason code.",
            ["reason"],
            registry=r,
        )
        self.rejected_by_code = {c: self.rejected.labels(c) for c in REASON_CODES}
        self.late = Counter(
            "agentwatch_events_late_total",
            "Events that arrived after later events of their session (processed within the "
            "grace window, dropped beyond it).",
            ["outcome"],
            registry=r,
        )
        self.late_processed = self.late.labels("processed")
        self.late_dropped = self.late.labels("dropped")
        self.duplicates = Counter(
            "agentwatch_events_duplicate_total",
            "Events seen before (same event_id), skipped.",
            registry=r,
        )
        self.alerts = Counter(
            "agentwatch_alerts_emitted_total",
            "Alerts emitted (created or updated).",
            ["rule_id", "mode"],
            registry=r,
        )
        self.kills = Counter(
            "agentwatch_kill_decisions_total",
            "Kill decisions, by rule and mode (shadow decisions are reported, not enforced).",
            ["rule_id", "mode"],
            registry=r,
        )
        self.kill_signals = Counter(
            "agentwatch_kill_signals_published_total",
            "Signed kill signals published.",
            ["event_type"],
            registry=r,
        ).labels("session-revoked")
        self.kill_replayed = Counter(
            "agentwatch_kill_signals_suppressed_total",
            "Kill decisions re-taken after a restart whose signal was already published.",
            registry=r,
        )
        self.decision_latency = Histogram(
            "agentwatch_event_decision_latency_seconds",
            "Event time to decision (alert or kill), wall clock.",
            ["decision"],
            buckets=_SLOW,
            registry=r,
        )
        self.decision_alert = self.decision_latency.labels("alert")
        self.decision_kill = self.decision_latency.labels("kill")
        self.signal_publish = Histogram(
            "agentwatch_signal_publish_duration_seconds",
            "Decision to kill signal acknowledged by the broker.",
            buckets=_FAST,
            registry=r,
        )
        self.active_sessions = Gauge(
            "agentwatch_active_sessions", "Root sessions held in memory.", registry=r
        )
        self.evicted = Counter(
            "agentwatch_sessions_evicted_total",
            "Root sessions evicted, by reason.",
            ["reason"],
            registry=r,
        )
        self.sink_errors = Counter(
            "agentwatch_sink_errors_total",
            "Rows the event store refused or could not take.",
            registry=r,
        )
        self.sink_buffered = Gauge(
            "agentwatch_sink_buffered_rows",
            "Rows waiting to be written to the event store.",
            registry=r,
        )
        self.sink_oldest = Gauge(
            "agentwatch_sink_oldest_unflushed_age_seconds",
            "Age of the oldest row not yet written to the event store.",
            registry=r,
        )
        self.consumer_lag = Gauge(
            "agentwatch_consumer_lag_records",
            "Records in the action topic not yet processed, per partition.",
            ["partition"],
            registry=r,
        )
        self.fetch_records = Histogram(
            "agentwatch_fetch_records",
            "Records one fetch handed to the scoring loop (at most AGENTWATCH_MAX_POLL_RECORDS).",
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000),
            registry=r,
        )
        self.checkpoint = Histogram(
            "agentwatch_checkpoint_duration_seconds",
            "Time to write one checkpoint (flush outputs, session records, marker, commit).",
            buckets=_SLOW,
            registry=r,
        )
        self.checkpoint_records = Counter(
            "agentwatch_checkpoint_records_total",
            "Session records written to the checkpoint topic (including tombstones).",
            registry=r,
        )
        self.checkpoint_resume = Gauge(
            "agentwatch_checkpoint_resume_offset",
            "Source offset the last checkpoint lets a restart resume from, per partition "
            "(everything before it is durable).",
            ["partition"],
            registry=r,
        )
        self.checkpoints = Counter(
            "agentwatch_checkpoints_total", "Checkpoint markers written.", registry=r
        )
        self.restore = Histogram(
            "agentwatch_restore_duration_seconds",
            "Time to restore one partition's sessions from its checkpoint.",
            buckets=_SLOW,
            registry=r,
        )
        self.restored_sessions = Counter(
            "agentwatch_restored_sessions_total",
            "Sessions restored from checkpoints.",
            registry=r,
        )
        self.publish_errors = Counter(
            "agentwatch_publish_errors_total",
            "Records the broker did not acknowledge.",
            ["topic"],
            registry=r,
        )
        Gauge("agentwatch_build_info", "Build information.", ["version"], registry=r).labels(
            version
        ).set(1)

    def exposition(self) -> bytes:
        """The text format for a scrape."""
        return generate_latest(self.registry)


class RecordMetrics(Collector):
    """The two metrics every record updates, kept in plain integers and exported at scrape.

    A prometheus-client ``Counter.inc`` or ``Histogram.observe`` takes a lock each time
    (~0.5-1 µs with the label lookup); the worker updates these two per record, on the event
    loop, which is also where scrapes are served: no lock is needed.

    >>> m = RecordMetrics()
    >>> m.record("tool_call", 0.0003); m.record(None, 0.002)
    >>> reg = CollectorRegistry(); reg.register(m)
    >>> text = generate_latest(reg).decode()
    >>> 'agentwatch_events_consumed_total{kind="tool_call"} 1.0' in text
    True
    >>> 'agentwatch_event_processing_duration_seconds_bucket{le="0.0005"} 1.0' in text
    True
    """

    def __init__(self, buckets: tuple[float, ...] = _FAST) -> None:
        self.kinds: dict[str, int] = dict.fromkeys(EVENT_KINDS, 0)
        self.bounds = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0

    def record(self, kind: str | None, seconds: float) -> None:
        """One record processed: a valid event of ``kind`` (None: dead-lettered)."""
        if kind is not None:
            self.kinds[kind] = self.kinds.get(kind, 0) + 1
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.sum += seconds

    def collect(self) -> Iterator[Metric]:
        events = CounterMetricFamily(
            "agentwatch_events_consumed", "Valid action events consumed, by kind.", labels=["kind"]
        )
        for kind, n in self.kinds.items():
            events.add_metric([kind], n)
        yield events
        cumulative, buckets = 0, []
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            cumulative += n
            buckets.append((floatToGoString(bound), cumulative))  # type: ignore[no-untyped-call]
        hist = HistogramMetricFamily(
            "agentwatch_event_processing_duration_seconds",
            "Worker time per record (parse, session, detection, sink hand-off).",
        )
        hist.add_metric([], buckets, sum_value=self.sum)
        yield hist
