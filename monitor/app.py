"""The faust application, configured from :class:`~monitor.settings.Settings`.

Nothing else lives here: topics are in ``monitor.topics``, the agent in ``monitor.agents``,
the per-record work in ``monitor.runtime``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import faust
from faust.types import TP

from monitor.outputs import KeyPartitioner
from monitor.settings import Settings
from monitor.transport import BatchHandler, ResumeHook, Transport


class AgentwatchApp(faust.App):
    """A ``faust.App`` on :class:`monitor.transport.Transport`.

    ``fetch_max_wait_ms`` is read by the transport when it builds the consumer;
    ``on_streams_resume`` is awaited after every rebalance, before records flow again;
    ``before_stop`` is awaited on shutdown before faust stops the consumer.
    """

    fetch_max_wait_ms: int | None = None
    on_streams_resume: ResumeHook | None = None
    #: the source topic's records, a fetch at a time (``monitor.transport.Consumer``)
    on_source_batch: BatchHandler | None = None
    source_topic: str | None = None
    #: awaited when the worker stops, while the consumer and producer still run
    before_stop: Callable[[], Awaitable[None]] | None = None

    def _new_transport(self) -> Transport:
        return Transport(self.conf.broker_consumer, self)

    async def on_stop(self) -> None:
        if self.before_stop is not None:
            try:
                await self.before_stop()
            except Exception:
                logging.getLogger("agentwatch.worker").exception("final checkpoint failed")
        await super().on_stop()

    async def commit_offsets(self, offsets: Mapping[TP, int]) -> bool:
        """Commit source offsets (the checkpointer's durable positions)."""
        consumer: Any = self.consumer
        return bool(await consumer.commit_offsets(offsets))


def create_app(settings: Settings) -> AgentwatchApp:
    """The faust app for ``settings`` (not started)."""
    settings.datadir.mkdir(parents=True, exist_ok=True)  # faust creates only the last level
    app = AgentwatchApp(
        settings.app_id,
        broker=settings.broker,
        store="memory://",
        datadir=str(settings.datadir / "faust"),
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        topic_allow_declare=True,
        broker_rebalance_timeout=settings.broker_rebalance_timeout_s,
        broker_session_timeout=settings.broker_session_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.broker_session_timeout_s / 3),
        broker_request_timeout=max(90.0, settings.broker_session_timeout_s + 5),
        producer_linger_ms=settings.producer_linger_ms,
        producer_request_timeout=settings.producer_request_timeout_s,
        producer_max_request_size=settings.producer_max_request_size,
        producer_max_batch_size=settings.producer_max_batch_size,
        broker_max_poll_records=settings.max_poll_records or None,  # 0: no cap
        producer_partitioner=KeyPartitioner(),  # the default's partitions, hashed once a key
        consumer_auto_offset_reset="earliest",
        # The action topic is declared acks=False: no message waits to be acked on shutdown
        # or rebalance; the checkpointer flushes and commits instead (monitor.checkpoint).
        stream_wait_empty=False,
        stream_recovery_delay=0.0,
        web_enabled=True,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_in_thread=False,
        autodiscover=False,
    )
    app.fetch_max_wait_ms = settings.fetch_max_wait_ms
    return app
