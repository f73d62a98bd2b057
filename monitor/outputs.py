"""Records on their way to Kafka: alerts, kill signals, dead letters, audit records.

Processing a record queues what it produced (``outbox``). A kill signal is handed to its
producer right after the record that decided it (with everything queued before it); alert,
audit and dead-letter records wait in the outbox until ``HANDOVER_EVERY_S`` has passed since
the last hand-over (the agent looks at the end of each fetch, the housekeeping tick and every
checkpoint hand over whatever is queued). At moderate rates a fetch brings a few records
every few milliseconds, and handing each fetch's outputs over as it came made faust's
producer send a produce request about every ``producer_linger_ms``: a request costs the
worker's event loop far more than a record in it (~400 µs of CPU for a one-record request
against ~25 µs a record in a 25-record one, aiokafka on Tansu). Measured at 600 events/s:
55 produce requests/s before, 34 after; at higher rates aiokafka already merges batches
while the previous request waits for its acknowledgement.
Each record is then tracked (``inflight``) until the broker acknowledges it: a checkpoint
waits for all of them before it lets the committed offset move past the records that
produced them.

Acknowledged records leave the tracked list as it grows (``PRUNE_AT``): a checkpoint needs only
the ones not acknowledged yet or failed, and a slow checkpoint (the broker busy) must not keep
every record published in the meantime alive.

Kill signals have a producer of their own that sends at once (``linger_ms=0``, the kill
latency target is p99 <= 50 ms); everything else goes through faust's producer, which
batches for ``producer_linger_ms`` (a produce request per alert or audit record would cost
more than detecting the event that caused it).

Both producers place keyed records with :class:`KeyPartitioner`: aiokafka's default partitioner
(murmur2 of the key, as the Java client), each key's hash computed once rather than for every
record (the pure-Python murmur2 was a fifth of the cost of handing a record over; a root
session's alerts and audit records all share its key).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass
from functools import partial
from typing import Any, cast

import faust
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner, murmur2

from monitor.decisions import Record
from monitor.metrics import Metrics
from monitor.settings import Settings

#: most event-loop turns a flush that handed over a kill signal waits for the kill producer
#: to write it (it needs ~3: the sender task wakes, drains its batch, starts the request)
KILL_WRITE_TURNS = 8

#: longest an alert, audit or dead-letter record waits in the outbox after the previous
#: hand-over, when fetches keep coming (s; the housekeeping tick hands the rest over)
HANDOVER_EVERY_S = 0.025

#: tracked records from which acknowledged ones are dropped (the bound then doubles with what
#: is still unacknowledged, so pruning stays amortised O(1) a record)
PRUNE_AT = 4096


#: keys whose hash :class:`KeyPartitioner` remembers (then it starts again)
KEY_HASHES = 65_536


class KeyPartitioner:
    """aiokafka's :class:`~aiokafka.partitioner.DefaultPartitioner`, remembering each key's hash.

    The same partition for every key (``all_partitions[murmur2(key) & 0x7FFFFFFF % n]``, read
    against the topic's partitions of the moment, so a topic that grows is followed as by the
    default); unkeyed records go to a random available partition, as there. At most
    ``size`` hashes are kept: past that the memory starts again (keys are root session ids,
    which come and go).

    >>> from aiokafka.partitioner import DefaultPartitioner
    >>> KeyPartitioner()(b"session-1", [0, 1, 2, 3], [0, 1, 2, 3])
    0
    >>> DefaultPartitioner()(b"session-1", [0, 1, 2, 3], [0, 1, 2, 3])
    0
    """

    def __init__(self, size: int = KEY_HASHES) -> None:
        self.size = size
        self._hashes: dict[bytes, int] = {}
        self._default = DefaultPartitioner()

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return int(self._default(key, all_partitions, available))
        hashes = self._hashes
        h = hashes.get(key)
        if h is None:
            if len(hashes) >= self.size:
                hashes.clear()
            h = hashes[key] = murmur2(key) & 0x7FFFFFFF
        return all_partitions[h % len(all_partitions)]


@dataclass
class Send:
    """A record waiting for (or handed to) a producer."""

    topic: str
    record: Record
    kind: str  # alert | kill | dlq | late | privileged
    #: perf_counter() of the decision (kill signals: for the publish-duration histogram)
    decided_at: float = 0.0


class Outputs:
    """The outbox, the kill-signal producer and the records not yet acknowledged."""

    def __init__(self, app: faust.App, settings: Settings, metrics: Metrics) -> None:
        self.app = app
        self.settings = settings
        self.metrics = metrics
        self.outbox: deque[Send] = deque()
        #: (resolved when the broker has it, the record) for everything handed over
        self.inflight: list[tuple[asyncio.Future[Any], Send]] = []
        self._prune_at = PRUNE_AT
        self.kill_producer: AIOKafkaProducer | None = None
        #: a kill signal is queued: hand the outbox over now, not at the end of the fetch
        self.urgent = False
        #: held while a flush hands records over: a record taken from the outbox is in
        #: neither list until its producer has it, so a second flush (a checkpoint's) waits
        self._handing = asyncio.Lock()
        #: ``time.perf_counter()`` from which the outbox is due to be handed over
        self.handover_at = 0.0

    def due(self, now: float) -> bool:
        """Whether the agent should hand the outbox over now (a kill signal waits in it, or
        the previous hand-over was ``HANDOVER_EVERY_S`` ago)."""
        return bool(self.outbox) and (self.urgent or now >= self.handover_at)

    async def start(self) -> None:
        """Start the kill-signal producer (before records flow)."""
        if self.kill_producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.settings.bootstrap,
                client_id=f"{self.settings.app_id}-kill-signals",
                acks="all",
                linger_ms=0,
                partitioner=KeyPartitioner(),
                max_request_size=self.settings.producer_max_request_size,
            )
            await producer.start()
            self.kill_producer = producer

    async def stop(self) -> None:
        if self.kill_producer is not None:
            await self.kill_producer.stop()
            self.kill_producer = None

    def _producer(self, item: Send) -> AIOKafkaProducer:
        """The aiokafka producer for this record: the kill-signal producer's for kill signals,
        else faust's own (used directly: faust's wrapper adds a coroutine, signals and
        header conversions per record, and the worker's records need none of them)."""
        if item.kind == "kill" and self.kill_producer is not None:
            return self.kill_producer
        return cast(AIOKafkaProducer, self.app.producer._ensure_producer())  # type: ignore[attr-defined]  # noqa: SLF001

    async def send(self, item: Send) -> asyncio.Future[Any]:
        """Hand one record to its producer; the future resolves when the broker has it."""
        rec = item.record
        fut = await self._producer(item).send(
            item.topic, rec.value, key=rec.key, headers=rec.headers
        )
        return cast(asyncio.Future[Any], fut)

    async def flush(self) -> None:
        """Hand every queued record to a producer.

        Each record is tracked by the future its producer returns (a record the producer
        refused at once, by a future failed with why), watched by :meth:`_settled` for the
        metrics. A flush started while another is handing records over (aiokafka's send waits
        while its buffer is full) waits for it: when it returns, every record queued before it
        is tracked, which is what a checkpoint relies on."""
        async with self._handing:
            await self._flush()

    async def _flush(self) -> None:
        self.urgent = False
        self.handover_at = time.perf_counter() + HANDOVER_EVERY_S
        outbox, send = self.outbox, self.send
        kill = False
        # self.inflight read at each record: a checkpoint may take it while a send waits
        while outbox:
            item = outbox.popleft()
            kill = kill or item.kind == "kill"
            try:
                fut = await send(item)
            except asyncio.CancelledError:  # not handed over (aiokafka): still to send
                outbox.appendleft(item)
                raise
            except Exception as exc:
                failed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
                failed.set_exception(exc)
                self.inflight.append((failed, item))
                continue
            self.inflight.append((fut, item))
            fut.add_done_callback(partial(self._settled, item=item))
        if kill:
            await self._kill_written()
        if len(self.inflight) >= self._prune_at:
            self.inflight = [(fut, item) for fut, item in self.inflight if not _acked(fut)]
            self._prune_at = max(PRUNE_AT, 2 * len(self.inflight))

    async def _kill_written(self) -> None:
        """Let the kill producer write what it was handed before the caller goes on.

        Its sender is a task of this event loop: it needs a few turns of the loop to drain
        the batch and start the produce request, and the scoring loop that called ``flush``
        would otherwise go on for up to a slice of records (``monitor.agents.score``) at each
        of those turns, adding milliseconds to the kill latency (after the signal's record
        timestamp). Waiting for the broker's acknowledgement instead would idle scoring for a
        round trip per kill; while an earlier request is unanswered (a burst of kills) the
        producer holds the batch until its ack anyway, so there is nothing to wait for."""
        producer = self.kill_producer
        pending = getattr(getattr(producer, "_message_accumulator", None), "_batches", None)
        in_flight = getattr(getattr(producer, "_sender", None), "_in_flight", None)
        if pending is None or in_flight is None:
            return
        for _ in range(KILL_WRITE_TURNS):
            if not pending:  # drained: the produce request's task runs at the next turn
                await asyncio.sleep(0)
                return
            if in_flight:  # a previous request is unanswered: this one goes after its ack
                return
            await asyncio.sleep(0)

    def take_inflight(self) -> list[tuple[asyncio.Future[Any], Send]]:
        """Everything handed over so far (a checkpoint waits for these)."""
        inflight, self.inflight = self.inflight, []
        return inflight

    def _settled(self, fut: asyncio.Future[Any], *, item: Send) -> None:
        if fut.cancelled():
            return
        if fut.exception() is not None:
            self.metrics.publish_errors.labels(item.topic).inc()
        elif item.kind == "kill":
            self.metrics.kill_signals.inc()
            self.metrics.signal_publish.observe(time.perf_counter() - item.decided_at)


def _acked(fut: asyncio.Future[Any]) -> bool:
    """The broker has the record (nothing left for a checkpoint to wait for or resend)."""
    return fut.done() and not fut.cancelled() and fut.exception() is None
