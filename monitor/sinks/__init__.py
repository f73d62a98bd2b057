"""Storage sinks, chosen by URL scheme (as faust chooses table stores).

* ``http://host:8123`` / ``https://...`` — a ClickHouse server (clickhouse-connect);
* ``chdb:///abs/path`` — embedded ClickHouse (chdb) in the worker process; only one process
  may open a path, so other tools read through the worker's API or when it is stopped;
* ``none`` — store nothing.

By default (``sink_process``) the ClickHouse sink runs in a child process
(:class:`~monitor.sinks.process.ProcessSink`), so that its Python work and chdb's execution
do not take the worker's GIL; ``AGENTWATCH_SINK_PROCESS=false`` runs it in threads of the
worker's process (:class:`~monitor.sinks.clickhouse.ClickHouseSink`).

>>> from monitor.settings import Settings
>>> type(open_sink(Settings(store_url="none"))).__name__
'NullSink'
"""

from __future__ import annotations

from monitor.redaction import Redactor, load_key
from monitor.settings import Settings
from monitor.sinks.base import NullSink, Sink, SinkStats
from monitor.sinks.clickhouse import ClickHouseSink
from monitor.sinks.process import ProcessSink
from schemas.errors import ConfigError

__all__ = [
    "ClickHouseSink",
    "NullSink",
    "ProcessSink",
    "Sink",
    "SinkStats",
    "open_sink",
    "redactor_for",
]


def redactor_for(settings: Settings) -> Redactor:
    """The deployment's redactor (fields, size bounds and fingerprint key from settings)."""
    key = load_key(settings.redaction_key_path, settings.datadir)
    return Redactor(
        key,
        settings.redact_fields,
        max_output_chars=settings.max_stored_output_chars,
    )


def open_sink(settings: Settings) -> Sink:
    """The sink ``settings.store_url`` names (not started: call ``start()``)."""
    url = settings.store_url.strip()
    scheme = url.split(":", 1)[0].lower() if ":" in url else url.lower()
    if scheme in ("none", ""):
        return NullSink()
    if scheme == "chdb":
        if not url.startswith("chdb:///") and url != "chdb://memory":
            raise ConfigError(
                f"store_url {url!r} must be chdb:///absolute/path (the embedded store's directory)"
            )
    elif scheme not in ("http", "https"):
        raise ConfigError(
            f"store_url {url!r} has an unknown scheme {scheme!r} (use http(s)://, chdb:///, none)"
        )
    if settings.sink_process:
        return ProcessSink(
            {
                "url": url,
                "database": settings.store_database,
                "datadir": str(settings.datadir),
                "redaction_key": load_key(settings.redaction_key_path, settings.datadir),
                "redact_fields": list(settings.redact_fields),
                "max_output_chars": settings.max_stored_output_chars,
                "batch_rows": settings.sink_batch_rows,
                "flush_interval_s": settings.sink_flush_interval_s,
                "max_buffer_rows": settings.sink_max_buffer_rows,
                "log_level": settings.log_level,
                "nice": settings.sink_nice,
                "mmap_threshold": settings.malloc_mmap_threshold,
                "extra": {"spill_after_s": settings.sink_spill_after_s},
            }
        )
    return ClickHouseSink(
        url,
        database=settings.store_database,
        datadir=settings.datadir,
        redactor=redactor_for(settings),
        batch_rows=settings.sink_batch_rows,
        flush_interval_s=settings.sink_flush_interval_s,
        max_buffer_rows=settings.sink_max_buffer_rows,
        spill_after_s=settings.sink_spill_after_s,
    )
