"""The sink's Prometheus metrics, read from ``Sink.stats()`` when Prometheus scrapes.

A custom collector costs nothing on the hot path: the numbers are the sink's own counters,
turned into metrics only at scrape time. Register it in the worker's registry:
``registry.register(SinkCollector(sink))``. The worker itself exports
``agentwatch_sink_buffered_rows``, ``agentwatch_sink_oldest_unflushed_age_seconds`` and
``agentwatch_sink_errors_total``; this adds the rest.

>>> from prometheus_client import CollectorRegistry, generate_latest
>>> from monitor.sinks.base import NullSink
>>> reg = CollectorRegistry()
>>> reg.register(SinkCollector(NullSink()))
>>> b"agentwatch_sink_spooled_rows 0.0" in generate_latest(reg)
True
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

#: every metric name this collector exports (the Grafana dashboard test reads it)
METRIC_NAMES = (
    "agentwatch_sink_rows_inserted_total",
    "agentwatch_sink_inserts_total",
    "agentwatch_sink_spooled_rows",
    "agentwatch_sink_spilled_rows_total",
    "agentwatch_sink_last_insert_duration_seconds",
    "agentwatch_sink_redacted_values_total",
    "agentwatch_sink_degraded",
)


class SinkCollector(Collector):
    """Exports a sink's ``stats()`` (see :class:`~monitor.sinks.base.SinkStats`)."""

    def __init__(self, sink: Any) -> None:
        self.sink = sink

    def collect(self) -> Iterator[Any]:
        st = self.sink.stats()
        rows = CounterMetricFamily(
            "agentwatch_sink_rows_inserted",
            "Rows inserted into ClickHouse, by table.",
            labels=["table"],
        )
        for table, n in sorted(st.rows_inserted.items()):
            rows.add_metric([table], n)
        yield rows
        yield CounterMetricFamily(
            "agentwatch_sink_inserts", "INSERT statements that succeeded.", value=st.inserts
        )
        yield GaugeMetricFamily(
            "agentwatch_sink_spooled_rows",
            "Rows spilled to the local disk spool, waiting for ClickHouse.",
            value=st.spooled_rows,
        )
        yield CounterMetricFamily(
            "agentwatch_sink_spilled_rows",
            "Rows written to the disk spool because ClickHouse was behind.",
            value=st.spilled_rows_total,
        )
        yield GaugeMetricFamily(
            "agentwatch_sink_last_insert_duration_seconds",
            "Duration of the last successful insert of a batch.",
            value=st.last_insert_duration_s,
        )
        yield CounterMetricFamily(
            "agentwatch_sink_redacted_values",
            "Values masked by redaction before storage.",
            value=st.values_masked,
        )
        yield GaugeMetricFamily(
            "agentwatch_sink_degraded",
            "1 while inserts into ClickHouse fail, else 0.",
            value=1.0 if st.degraded else 0.0,
        )
