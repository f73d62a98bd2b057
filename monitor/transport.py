"""faust's aiokafka transport with two changes agentwatch needs.

1. **The consumer fetch wait comes from settings.** faust 0.15 hard-codes
   ``fetch_max_wait_ms=1500`` when it builds the worker's ``AIOKafkaConsumer``
   (``faust/transport/drivers/aiokafka.py``, ``_create_worker_consumer``). Real Kafka answers a
   fetch as soon as data arrives, so the wait costs nothing there; the embedded Tansu broker
   holds every fetch until the wait expires, which would put ~0.4-0.75 s on every kill signal.
   :class:`ConsumerThread` builds the consumer as faust does and then sets the wait from
   ``Settings.fetch_max_wait_ms`` before the consumer starts (aiokafka reads it in ``start()``).
2. **Partition state is restored before streams resume.** After every rebalance faust's
   recovery calls ``Consumer.perform_seek()`` (seek to the committed offsets) and only then
   resumes the flow of records. :class:`Consumer` runs the app's ``on_streams_resume`` hook
   there, which restores each assigned partition's sessions from its checkpoint and returns
   the source offsets to resume from; they are sought before any record is delivered.

3. **A full stream buffer does not stall the fetcher for a second.** When the agent is slower
   than the fetcher (any backlog), faust pauses each partition whose stream buffer is full;
   once every partition is paused, its fetcher sleeps a fixed second
   (``Consumer._wait_next_records``: ``await self.sleep(1)``) before it looks again, although
   the agent drains its buffer in a fraction of that. Measured on a 20,000-event backlog:
   ~860-1,250 events/s with the sleep (the loop idle a third of the time), see
   ``bench/throughput.py`` for the rate without it. :class:`Consumer` polls every
   ``BUFFER_FULL_POLL_S`` instead while partitions are paused only because their buffers are
   full.

4. **The source topic is read a fetch at a time, not a record at a time.** faust hands each
   record to an agent through an asyncio task pair (``wait_first``), the conductor's lock, an
   event object, a channel queue and the stream's iterator: ~60-80 µs of CPU per record here,
   more than half of what a plain pass-through agent costs, whatever the agent does with it.
   When the app sets ``on_source_batch``, :class:`Consumer` hands each fetch's records of
   ``source_topic`` to it as they come from aiokafka (per partition, in offset order); the
   handler processes them synchronously and awaits only to publish. Group membership,
   rebalancing, offsets, seeks and flow control stay faust's: a fetch made while the flow was
   stopped (a rebalance) is dropped as faust's ``getmany`` drops it, and the handler is told
   the consumer generation so it can stop as soon as a rebalance starts.

5. **Behind, the fetch wait is lengthened until the worker has caught up.** On the embedded
   Tansu broker a short fetch wait returns only the few record batches Tansu reads within it,
   and it reads more slowly the longer the topic: a backlog of small batches (agents send
   their events one by one) was read at ~11,000 records/s with a 5 ms wait on a 20,000-record
   topic and at ~140/s on a 40,000-record one, against ~30,000/s with a 20-100 ms wait. A
   worker that fell behind once (a burst, a restart) could then never catch up. While a fetch
   shows the worker more than ``CATCH_UP_LAG`` records behind a partition's high watermark,
   :class:`Consumer` sets the fetch wait to ``CATCH_UP_WAIT_MS`` (if the configured wait is
   shorter) and puts the configured wait back once it is within ``CATCH_UP_LAG`` again, so a
   caught-up worker keeps its kill latency. Measured: one worker drained a 30,000-event
   backlog written in batches of 5 at 1,975 events/s with this, 254/s without. A fetch that
   comes back empty while a partition's high watermark is past what was read lengthens the
   wait too: on a long enough topic Tansu returns nothing at all within a 5 ms wait, and a
   worker that was caught up then never read again (found by ``bench/soak.py``: reading
   stopped after 40,000-140,000 events, at any rate). On a longer topic still, 50 ms is not
   enough either: at ~800,000 records in a partition Tansu answered every fetch near its end
   with nothing within 5 or 50 ms and with the records within 200 or 800 ms, and a soak's
   worker stopped reading at ~3.07M events in 4 partitions. So each fetch that comes back
   empty while records are waiting doubles the wait (from ``CATCH_UP_WAIT_MS`` up to
   ``MAX_CATCH_UP_WAIT_MS``), a fetch with records keeps it while the worker is more than
   ``CATCH_UP_LAG`` behind, and the configured wait comes back once it is within it
   (:func:`next_fetch_wait`). Apache Kafka answers a fetch as soon as data is there, so the
   longer wait costs nothing there either.

The classes are wired in by :class:`monitor.app.AgentwatchApp`; nothing global is patched.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar, cast

import aiokafka
from faust.transport.drivers import aiokafka as driver
from faust.types import TP

from schemas.errors import ConfigError

#: how often the fetcher looks again while every partition's stream buffer is full (s)
BUFFER_FULL_POLL_S = 0.005
#: records behind a partition's high watermark from which the worker is catching up
CATCH_UP_LAG = 2000
#: fetch wait while catching up (ms; only if the configured wait is shorter)
CATCH_UP_WAIT_MS = 50
#: the longest the catch-up doubles the fetch wait to while fetches come back empty (ms)
MAX_CATCH_UP_WAIT_MS = 1600


def next_fetch_wait(base: int, current: int, behind: int, *, empty: bool) -> int:
    """The fetch wait (ms) after a fetch of the source topic (module docstring, point 5).

    ``base`` is the configured wait, ``current`` the one the fetch used, ``behind`` the most
    records a source partition's high watermark is past what was read (after this fetch).

    >>> next_fetch_wait(5, 5, 10, empty=False)  # caught up
    5
    >>> next_fetch_wait(5, 5, 30_000, empty=False)  # far behind
    50
    >>> [next_fetch_wait(5, w, 100, empty=True) for w in (5, 50, 200, 1600)]  # nothing returned
    [50, 100, 400, 1600]
    >>> next_fetch_wait(5, 400, 30_000, empty=False)  # records again, still far behind
    400
    >>> next_fetch_wait(5, 5, 0, empty=True)  # nothing to read
    5
    """
    if base >= CATCH_UP_WAIT_MS:
        return base
    if empty:
        if behind <= 0:
            return current
        return (
            CATCH_UP_WAIT_MS
            if current < CATCH_UP_WAIT_MS
            else min(MAX_CATCH_UP_WAIT_MS, 2 * current)
        )
    return max(current, CATCH_UP_WAIT_MS) if behind > CATCH_UP_LAG else base


#: ``async hook(assigned partitions) -> {source partition: offset to resume from}``
ResumeHook = Callable[[set[TP]], Awaitable[Mapping[TP, int]]]

#: ``async handler(consumer generation, {partition: aiokafka ConsumerRecords in offset order})``
BatchHandler = Callable[[int, Mapping[TP, list[Any]]], Awaitable[None]]


class ConsumerThread(driver.AIOKafkaConsumerThread):
    """faust's consumer thread, with the fetch wait taken from the app's settings."""

    def _create_worker_consumer(self, transport: driver.Transport) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        wait = getattr(self.app, "fetch_max_wait_ms", None)
        if wait is not None:
            if not hasattr(consumer, "_fetch_max_wait_ms"):
                raise ConfigError(
                    "this aiokafka version has no AIOKafkaConsumer._fetch_max_wait_ms; "
                    "monitor/transport.py cannot set the fetch wait"
                )
            consumer._fetch_max_wait_ms = int(wait)
        return consumer


class Consumer(driver.Consumer):
    """faust's aiokafka consumer, with the resume hook and explicit offset commits."""

    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _wait_next_records(self, timeout: float) -> Any:
        if self.flow_active and not self._get_active_partitions() and self._buffered_partitions:
            # Every partition waits for its stream buffer to drain (faust would sleep 1 s).
            await asyncio.sleep(BUFFER_FULL_POLL_S)
            return {}, self._get_active_partitions()
        return await super()._wait_next_records(timeout)

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover (a task)
        handler = cast(BatchHandler | None, getattr(self.app, "on_source_batch", None))
        topic = getattr(self.app, "source_topic", None)
        if handler is None or topic is None:
            await super()._drain_messages(fetcher)
            return
        consumer_stopped = self._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set
        set_read_offset = self._read_offset.__setitem__
        callback = self.callback
        app = self.app
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                records, active = await self._wait_next_records(1.0)
                if self.should_stop:
                    return
                if not records:
                    self._adapt_fetch_wait_idle(topic)
                    await asyncio.sleep(0)
                    continue
                if not self.flow_active:
                    # fetched while a rebalance stopped the flow: faust's getmany drops these
                    # and seeks back; the resume hook will seek each partition again
                    try:
                        await self.perform_seek()
                    except Exception as exc:
                        self.log.warning("seek after a fetch without flow failed: %r", exc)
                    continue
                generation = app.consumer_generation_id
                mine: dict[TP, list[Any]] = {}
                for tp, recs in records.items():
                    if not recs or (active is not None and tp not in active):
                        continue
                    if tp.topic == topic:
                        mine[tp] = recs
                    else:  # another subscribed topic: faust's way, one message at a time
                        for rec in recs:
                            await self.wait_first(
                                callback(self._to_message(tp, rec)), self.suspend_flow.wait()
                            )
                        set_read_offset(tp, recs[-1].offset)
                if mine:
                    self._adapt_fetch_wait(mine)
                    await handler(generation, mine)
                    for tp, recs in mine.items():
                        set_read_offset(tp, recs[-1].offset)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise

    def _adapt_fetch_wait(self, records: Mapping[TP, list[Any]]) -> None:
        """The catch-up fetch wait while far behind, the configured one otherwise (see 5.)."""
        base = getattr(self.app, "fetch_max_wait_ms", None)
        if base is None or base >= CATCH_UP_WAIT_MS:
            return
        behind = 0
        for tp, recs in records.items():
            hw = self.highwater(tp)
            if hw is not None:
                behind = max(behind, int(hw) - recs[-1].offset - 1)
        self._set_fetch_wait(next_fetch_wait(int(base), self._fetch_wait(), behind, empty=False))

    def _adapt_fetch_wait_idle(self, topic: str) -> None:
        """A fetch came back empty: if a source partition's high watermark is past what was
        read, the broker has records it did not return within the wait (Tansu on a long topic):
        lengthen the wait, or the worker never reads again (see 5.)."""
        base = getattr(self.app, "fetch_max_wait_ms", None)
        if base is None or base >= CATCH_UP_WAIT_MS:
            return
        read = self._read_offset
        behind = 0
        for tp in self.assignment():
            if tp.topic != topic:
                continue
            hw = self.highwater(tp)
            done = read.get(tp)
            if hw is not None:
                behind = max(behind, int(hw) - (-1 if done is None else int(done)) - 1)
        if behind > 0:
            self._set_fetch_wait(next_fetch_wait(int(base), self._fetch_wait(), behind, empty=True))

    def _fetcher(self) -> Any:
        """aiokafka's fetcher of the consumer thread's consumer (None before it starts)."""
        return getattr(getattr(self._thread, "_consumer", None), "_fetcher", None)

    def _fetch_wait(self) -> int:
        """The fetch wait the fetcher uses now (the configured one if it has none yet)."""
        wait = getattr(self._fetcher(), "_fetch_max_wait_ms", None)
        return int(wait) if wait is not None else int(getattr(self.app, "fetch_max_wait_ms", 0))

    def _set_fetch_wait(self, want: int) -> None:
        base = getattr(self.app, "fetch_max_wait_ms", None)
        if base is None or base >= CATCH_UP_WAIT_MS:
            return
        fetcher = self._fetcher()
        if fetcher is not None and getattr(fetcher, "_fetch_max_wait_ms", want) != want:
            # read by the fetcher each time it builds a request (an int: safe across threads)
            fetcher._fetch_max_wait_ms = want

    async def perform_seek(self) -> None:
        await super().perform_seek()
        hook = cast(ResumeHook | None, getattr(self.app, "on_streams_resume", None))
        if hook is None:
            return
        offsets = await hook(set(self.assignment()))
        for tp, offset in offsets.items():
            await self.seek(tp, offset)

    async def commit_offsets(self, offsets: Mapping[TP, int]) -> bool:
        """Commit these source offsets now (for topics faust does not ack, ``acks=False``)."""
        if not offsets:
            return False
        return bool(await self._commit(offsets))


class Transport(driver.Transport):
    """faust's aiokafka transport with :class:`Consumer`."""

    Consumer: ClassVar[Any] = Consumer
