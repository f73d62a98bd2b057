"""Records handed to the producer are tracked until acknowledged, and no longer than that."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from aiokafka.partitioner import DefaultPartitioner

from monitor import outputs as outputs_module
from monitor.decisions import Record
from monitor.metrics import Metrics
from monitor.outputs import HANDOVER_EVERY_S, PRUNE_AT, KeyPartitioner, Outputs, Send
from monitor.settings import Settings


class _Producer:
    """Stands in for faust's producer (and the aiokafka producer under it, which the outputs
    use): each send returns a future the test resolves."""

    def __init__(self) -> None:
        self.sent: list[asyncio.Future[Any]] = []

    def _ensure_producer(self) -> _Producer:
        return self

    async def send(self, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.sent.append(fut)
        return fut


class _App:
    def __init__(self) -> None:
        self.producer = _Producer()


def _send(i: int) -> Send:
    return Send("alerts", Record(str(i).encode(), b"x" * 100, []), "alert")


def test_acknowledged_records_are_dropped_and_the_rest_kept_for_the_checkpoint() -> None:
    async def scenario() -> tuple[int, list[int], int]:
        app = _App()
        out = Outputs(app, Settings(), Metrics())  # type: ignore[arg-type]
        n = PRUNE_AT + 10
        out.outbox.extend(_send(i) for i in range(n))
        await out.flush()  # all handed over, none acknowledged: nothing may go
        kept_unacked = len(out.inflight)
        for i, fut in enumerate(app.producer.sent):
            if i % 3 == 0:
                fut.set_exception(RuntimeError("broker said no"))
            elif i % 3 == 1:
                fut.set_result(i)
            # i % 3 == 2: still waiting
        await asyncio.sleep(0)  # the done callbacks run
        out.outbox.extend(_send(i) for i in range(n, 2 * n + 3 * PRUNE_AT))
        await out.flush()
        left = [int(item.record.key or b"-1") for _, item in out.take_inflight()]
        return kept_unacked, left, n

    kept_unacked, left, n = asyncio.run(scenario())
    assert kept_unacked == n
    first = [i for i in left if i < n]
    # the failed (to resend) and the unanswered stay, in order; the acknowledged are gone
    assert first == [i for i in range(n) if i % 3 != 1]
    assert [i for i in left if i >= n] == list(range(n, 2 * n + 3 * PRUNE_AT))


def test_alert_records_wait_for_the_handover_interval_and_a_kill_signal_does_not() -> None:
    """The scoring loop hands the outbox over at a fetch's end only once ``HANDOVER_EVERY_S``
    has passed since the last hand-over (a produce request per fetch costs more than the
    records in it), and at once when a kill signal waits in it."""

    async def scenario() -> list[bool]:
        out = Outputs(_App(), Settings(), Metrics())  # type: ignore[arg-type]
        seen = [out.due(time.perf_counter())]  # empty: nothing to hand over
        out.outbox.append(_send(1))
        seen.append(out.due(time.perf_counter()))  # never handed over yet: due
        await out.flush()
        out.outbox.append(_send(2))
        now = time.perf_counter()
        seen.append(out.due(now))  # just handed over: waits
        seen.append(out.due(now + HANDOVER_EVERY_S))  # the interval has passed
        out.outbox.append(Send("revocations", Record(b"s", b"jws", []), "kill"))
        out.urgent = True  # what Monitor.kill sets
        seen.append(out.due(now))
        return seen

    assert asyncio.run(scenario()) == [False, True, False, True, True]


def test_acked_only_for_a_result() -> None:
    async def scenario() -> list[bool]:
        loop = asyncio.get_running_loop()
        done, failed, waiting, cancelled = (loop.create_future() for _ in range(4))
        done.set_result(1)
        failed.set_exception(RuntimeError("no"))
        cancelled.cancel()
        return [outputs_module._acked(f) for f in (done, failed, waiting, cancelled)]

    assert asyncio.run(scenario()) == [True, False, False, False]


def test_key_partitioner_places_every_key_where_the_default_partitioner_does() -> None:
    """Consumers rely on a key's records sharing a partition: the remembered hash must give
    the default's answer for any key and partition count, before and after it starts again."""
    rng = random.Random(5)
    ours, default = KeyPartitioner(size=64), DefaultPartitioner()
    keys = [rng.randbytes(rng.randrange(0, 48)) for _ in range(500)]
    keys += [f"sess-{i:04d}".encode() for i in range(200)]
    for rnd in range(3):  # again: hashes remembered (and forgotten past 64 keys)
        for i, key in enumerate(keys):
            parts = list(range(1 + (i + rnd) % 9))
            assert ours(key, parts, parts) == default(key, parts, parts), (key, parts)
    assert len(ours._hashes) <= 64  # noqa: SLF001
    assert ours(None, [0, 1, 2], [2]) == 2  # unkeyed: an available partition, as the default


def test_the_worker_producer_uses_the_key_partitioner() -> None:
    from monitor.app import create_app

    app = create_app(Settings())
    assert isinstance(app.conf.producer_partitioner, KeyPartitioner)


def test_a_kill_signal_is_on_the_wire_when_flush_returns(broker: Any, tmp_path: Any) -> None:
    """The scoring loop goes on right after ``flush``: the kill producer (a task of the same
    loop) must have started its produce request by then, not a slice of records later."""
    from monitor.topics import ensure_topics

    settings = Settings.from_env(
        {}, profile="embedded", broker=broker.url, topic_partitions=1, datadir=tmp_path,
        topic_revocations="outputs-test.revocations",
    )  # fmt: skip
    ensure_topics(broker.bootstrap, settings)

    async def scenario() -> tuple[int, bool, int]:
        out = Outputs(_App(), settings, Metrics())  # type: ignore[arg-type]
        await out.start()
        try:
            producer: Any = out.kill_producer
            kill = Send(settings.topic_revocations, Record(b"s1", b"jws", []), "kill")
            out.outbox.append(kill)
            await out.flush()
            # nothing awaited since flush returned: what the producer did, it did within it
            waiting = sum(len(b) for b in producer._message_accumulator._batches.values())
            started = bool(producer._sender._in_flight) or out.inflight[0][0].done()
            await asyncio.wait_for(asyncio.shield(out.inflight[0][0]), 10)
            return waiting, started, int(out.metrics.kill_signals._value.get())
        finally:
            await out.stop()

    waiting, started, published = asyncio.run(scenario())
    assert waiting == 0
    assert started
    assert published == 1


def test_a_checkpoint_waits_for_a_record_a_flush_is_still_handing_over() -> None:
    """aiokafka's send waits while its buffer is full: a record taken from the outbox but not
    yet handed over is in neither the outbox nor the in-flight list. A checkpoint's own flush
    then ``take_inflight`` must not miss it (its marker would let the committed offset pass a
    record whose output the broker may never get)."""

    class _Blocking(_Producer):
        def __init__(self) -> None:
            super().__init__()
            self.gate = asyncio.Event()

        async def send(self, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
            await self.gate.wait()  # the producer's buffer is full
            return await super().send(*args, **kwargs)

    async def scenario() -> list[bytes | None]:
        app = _App()
        app.producer = _Blocking()
        out = Outputs(app, Settings(), Metrics())  # type: ignore[arg-type]
        out.outbox.append(_send(7))

        async def settle() -> list[bytes | None]:  # what Durability._settle_outputs does
            await out.flush()
            return [item.record.key for _, item in out.take_inflight()]

        scoring = asyncio.create_task(out.flush())  # the agent, after a record
        await asyncio.sleep(0.01)  # it is inside send(), waiting
        checkpoint = asyncio.create_task(settle())
        await asyncio.sleep(0.01)
        app.producer.gate.set()
        await scoring
        return await checkpoint

    assert asyncio.run(scenario()) == [b"7"]
