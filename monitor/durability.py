"""Crash safety: periodic checkpoints, restore on assignment, offsets that never pass them.

The mechanism (the record format and the restore algorithm are in ``monitor.checkpoint``):

* **What faust commits.** The action topic is declared ``acks=False``, so faust's own commit
  loop never commits it (faust commits the longest run of contiguous *acked* offsets; with
  ``stream.noack()`` + ``event.ack()`` we could have fed it, but faust also acks, unprocessed,
  the records it skips during a rebalance, which could carry the committed offset past what
  is durable). The worker commits one offset per partition itself, after each checkpoint:
  the checkpoint's ``resume`` offset.
* **Every ``checkpoint_interval_s``**, for each partition, in one synchronous step: the dirty
  sessions are taken (tombstones for evicted ones) and ``resume`` is taken as the lowest of
  the next offset to process, ``Pipeline.lowest_held_offset(p)`` (held-back events are not in
  the state) and ``sink.durable_offset(p)``. Then the sessions are pickled and written a slice
  at a time (``Settings.checkpoint_slice_bytes``): before each slice is sent, every output
  sent so far (alerts, kill signals, dead letters) is awaited; each slice is acknowledged
  before the next is pickled. Only then the marker, then the offset commit. A crash anywhere
  before the marker leaves the previous marker in force: its state plus a replay from its
  ``resume`` offset.
  (Writing the whole checkpoint at once kept every pickled session, and every output
  published meanwhile, in memory until the broker had them: at 2,400 events/s on the
  embedded broker a checkpoint took 15-80 s and the worker's RSS climbed by hundreds of MiB.)
* **On assignment** (``perform_seek``, before records flow), each partition's sessions are
  restored from its last marker and the source is sought to the marker's ``resume``; without
  a marker, from the committed offset (or the earliest), and a first marker is written at
  once. Kill signals published since the marker's ``revocations`` offsets are read back:
  a kill re-decided during the replay (same ``jti``) is not published again; its signal is
  handed to the sink again instead (ClickHouse dedups).
* **Revocation and shutdown** write a final checkpoint for the partitions being given up.

Learned detector state (``Engine.learned_state() -> bytes``, restored with
``Engine.load_learned_state``) is checkpointed with the sessions: at most every
``LEARNED_EVERY_S`` while sessions change, and with every full snapshot.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from faust.types import TP

from monitor.checkpoint import (
    LEARNED_KEY,
    MARKER_KEY,
    SNAPSHOT_KEY,
    CheckpointReader,
    Marker,
    session_key,
)
from schemas.errors import SinkError

if TYPE_CHECKING:
    from monitor.outputs import Send
    from monitor.runtime import Monitor, PartitionState

log = logging.getLogger("agentwatch.worker")

LEARNED_EVERY_S = 10.0
SEND_RETRIES = 3
SETTLE_TIMEOUT_S = 30.0
SINK_START_TIMEOUT_S = 60.0
SINK_FLUSH_TIMEOUT_S = 5.0
#: longest stretch of pickling sessions, or of handing records to the producer, without
#: letting other tasks (the scoring loop) run (s)
PICKLE_SLICE_S = 0.002


@dataclass
class _Plan:
    ps: PartitionState
    resume: int
    records: list[tuple[bytes, bytes | None]]
    full: bool
    wanted: int
    #: sessions to pickle and write, a slice at a time (:meth:`Durability._slices`)
    roots: list[str] = field(default_factory=list)
    #: records and bytes written so far, in how many slices
    written: int = 0
    bytes: int = 0
    slices: int = 0


class CheckpointFailed(RuntimeError):
    """A record could not be published after retries: the worker must restart from its
    last durable checkpoint rather than go on and commit past it."""


class Durability:
    """Checkpoints and restores the partitions of one :class:`~monitor.runtime.Monitor`."""

    def __init__(self, monitor: Monitor) -> None:
        self.m = monitor
        s = monitor.settings
        self.reader = CheckpointReader(
            ",".join(s.bootstrap), s.checkpoint_topic, s.topic_revocations
        )
        self._lock: asyncio.Lock | None = None
        self._started = False
        #: the last checkpoint: records, bytes and seconds per phase (``monitor.memtrace``)
        self.last_stats: dict[str, float] = {}
        app = monitor.app
        app.on_streams_resume = self.on_streams_resume
        app.before_stop = self.before_stop
        app.on_partitions_revoked.connect(self.on_revoked)  # type: ignore[arg-type]

    @property
    def lock(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    async def _ensure_started(self) -> None:
        if self._started:
            return
        await self.reader.start()
        await self.m.outputs.start()
        # The sink's start is blocking (an embedded store is opened by a child process). After
        # a crash, the previous worker's store process may still hold the embedded store's
        # lock for a moment while it saves what it had: retry rather than fail.
        deadline = time.monotonic() + SINK_START_TIMEOUT_S
        while True:
            try:
                await asyncio.to_thread(self.m.sink.start)
                break
            except SinkError as exc:
                if time.monotonic() > deadline:
                    raise
                log.warning("the event store is not available yet (%s); retrying", exc)
                await asyncio.sleep(1.0)
        self._started = True

    # -- restore ----------------------------------------------------------------------------
    async def on_streams_resume(self, assigned: set[TP]) -> Mapping[TP, int]:
        """Restore newly assigned partitions; return the source offsets to resume from."""
        topic = self.m.settings.topic_actions
        wanted = sorted(tp.partition for tp in assigned if tp.topic == topic)
        async with self.lock:
            await self._ensure_started()
            for p in [p for p in self.m.partitions if p not in wanted]:
                self.m.drop_partition(p)
            offsets: dict[TP, int] = {}
            since: dict[int, int] = {}
            for p in wanted:
                ps = self.m.partitions.get(p)
                if ps is None:
                    ps, rev = await self._restore(p)
                    self.m.partitions[p] = ps
                    for rp, off in rev.items():
                        since[rp] = min(off, since.get(rp, off))
                offsets[TP(topic, p)] = ps.position
            if since:
                self.m.published.update(await self.reader.published_signals(since))
            self.m.collector.settle(full=True)  # start-up and restored state, frozen once
            self.m.ready = True
            return offsets

    async def _restore(self, partition: int) -> tuple[PartitionState, dict[int, int]]:
        t0 = time.perf_counter()
        restored = await self.reader.read_partition(partition)
        marker = restored.marker
        now = time.monotonic()
        if marker is not None:
            ps = self.m.new_partition(partition, marker.resume)
            pipeline = ps.pipeline
            for root, blob in restored.sessions.items():
                try:
                    pipeline.restore(root, blob, now=now)
                except Exception:
                    log.exception("cannot restore session %s of partition %d", root, partition)
            if restored.learned is not None:
                load = getattr(pipeline.engine, "load_learned_state", None)
                if callable(load):
                    load(restored.learned)
            ps.base = marker.base
            ps.since_base = max(0, restored.end - marker.base)
            revocations = marker.revocations
            self.m.metrics.restored_sessions.inc(len(pipeline))
        else:
            position = await self._committed_or_earliest(partition)
            ps = self.m.new_partition(partition, position)
            ps.base = restored.end
            revocations = await self.reader.revocation_ends()
            first = Marker(position, ps.base, revocations, time.time(), 0)
            await self._send_and_wait(partition, MARKER_KEY, first.encode())
        self.m.metrics.restore.observe(time.perf_counter() - t0)
        log.info(
            "partition %d: %d sessions restored, resuming at offset %d",
            partition,
            len(ps.pipeline),
            ps.position,
        )
        return ps, revocations

    async def _committed_or_earliest(self, partition: int) -> int:
        consumer: Any = self.m.app.consumer
        return int(await consumer.position(TP(self.m.settings.topic_actions, partition)))

    # -- checkpoint -------------------------------------------------------------------------
    async def checkpoint(self, partitions: list[int] | None = None) -> None:
        """Write one checkpoint of ``partitions`` (default: every held partition)."""
        if not self.m.partitions or not self._started:
            return
        async with self.lock:
            await self._checkpoint(partitions)

    async def _checkpoint(self, partitions: list[int] | None) -> None:
        m = self.m
        t0 = time.perf_counter()
        revocations = await self.reader.revocation_ends()  # before the snapshot (see module)
        unanchored = {p for p in m.unanchored if partitions is None or p in partitions}
        plans = self._snapshot(partitions, held_back=unanchored)
        if unanchored:  # see Monitor.unanchored: their rows must be stored before R moves
            m.unanchored -= unanchored
            if await asyncio.to_thread(m.sink.flush, SINK_FLUSH_TIMEOUT_S):
                for plan in plans:
                    plan.resume = plan.wanted
            else:
                m.unanchored |= unanchored
        await self._settle_outputs()
        if not plans:
            return
        try:
            commits = {}
            for plan in plans:
                await self._write(plan, revocations)
                commits[TP(m.settings.topic_actions, plan.ps.partition)] = plan.resume
            try:
                await m.app.commit_offsets(commits)
            except Exception as exc:  # the marker is what restore trusts; the commit mirrors it
                log.warning("offset commit after checkpoint failed: %r", exc)
        except BaseException:
            self._redo(plans)
            raise
        t1 = time.perf_counter()
        m.metrics.checkpoint.observe(t1 - t0)
        self.last_stats = {
            "seconds": round(t1 - t0, 3),
            "records": sum(p.written for p in plans),
            "mib": round(sum(p.bytes for p in plans) / 2**20, 2),
            "slices": sum(p.slices for p in plans),
            "full": sum(p.full for p in plans),
        }

    async def _settle_outputs(self) -> None:
        """Hand the outbox over and wait until the broker has every output sent so far."""
        await self.m.outputs.flush()
        await self._settle(self.m.outputs.take_inflight())

    @staticmethod
    def _redo(plans: list[_Plan]) -> None:
        """A checkpoint failed: write these sessions again next time."""
        for plan in plans:
            plan.ps.pipeline.dirty.update(plan.roots)

    def _snapshot(self, partitions: list[int] | None, held_back: set[int]) -> list[_Plan]:
        """Synchronously: what each partition must write, and the offset it may resume from.

        The sessions themselves are pickled afterwards, by :meth:`_pickle`, a slice at a time.
        A partition in ``held_back`` keeps its previous resume offset unless the sink is
        flushed (``_Plan.wanted`` is what it could move to)."""
        plans = []
        now = time.monotonic()
        for p, ps in list(self.m.partitions.items()):
            if partitions is not None and p not in partitions:
                continue
            pipeline = ps.pipeline
            resume = ps.position
            held = pipeline.lowest_held_offset(p)
            if held is not None:
                resume = min(resume, held)
            durable = self.m.sink.durable_offset(p)
            if durable is not None:
                resume = min(resume, durable)
            resume = max(resume, ps.resume)  # offsets below a written marker are behind us
            dirty = pipeline.take_dirty()
            buried = pipeline.tombstones
            full = ps.since_base >= max(1000, 4 * (len(pipeline) + len(buried)))
            roots = [*pipeline.sessions, *buried] if full else dirty
            # A full snapshot starts with an anchor record: its offset is the new base, and
            # records before it (older states, tombstones) are no longer read on restore.
            records: list[tuple[bytes, bytes | None]] = [(SNAPSHOT_KEY, b"")] if full else []
            plan_roots = list(roots)
            learned = getattr(pipeline.engine, "learned_state", None)
            if callable(learned) and (full or (dirty and now - ps.learned_at >= LEARNED_EVERY_S)):
                records.append((LEARNED_KEY, learned()))
                ps.learned_at = now
            wanted = resume
            if p in held_back:
                resume = ps.resume
            if records or plan_roots or wanted != ps.resume:
                plans.append(_Plan(ps, resume, records, full, wanted, plan_roots))
        return plans

    async def _slices(self, plan: _Plan) -> AsyncIterator[list[tuple[bytes, bytes | None]]]:
        """The plan's sessions pickled a slice at a time (at most ``checkpoint_slice_bytes``),
        letting the event loop run every ``PICKLE_SLICE_S`` (a full snapshot of tens of
        thousands of sessions takes seconds, and records, kill decisions among them, must not
        wait for it).

        Records processed while the checkpoint runs may already be in the state of a session
        pickled after them, beyond the plan's ``resume`` offset: that is safe for the same
        reason states written after a marker are (``monitor.checkpoint``): a state holds only
        processed records, whose outputs :meth:`_write` settles before it sends the slice,
        and the replay from ``resume`` skips them by ``event_id``. A session changed after it
        was pickled is dirty again and goes into the next checkpoint."""
        pipeline = plan.ps.pipeline
        limit = self.m.settings.checkpoint_slice_bytes
        clock = time.perf_counter
        records: list[tuple[bytes, bytes | None]] = []
        size = 0
        yield_at = clock() + PICKLE_SLICE_S
        for root in plan.roots:
            value = pipeline.snapshot(root)
            records.append((session_key(root), value))
            size += len(root) + (0 if value is None else len(value))
            if size >= limit:
                yield records
                records, size = [], 0
                yield_at = clock() + PICKLE_SLICE_S
            elif clock() >= yield_at:
                await asyncio.sleep(0)
                yield_at = clock() + PICKLE_SLICE_S
        if records:
            yield records

    async def _write(self, plan: _Plan, revocations: dict[int, int]) -> None:
        """Write the plan's records a slice at a time, then its marker.

        Each slice is pickled, then every output sent so far is settled, then the slice is
        sent and acknowledged before the next is pickled: what a checkpoint holds in memory
        is one slice, however many sessions it writes, and it goes at the broker's pace. The
        outputs are settled first because a crash before the marker still restores the
        states written after the previous one (``monitor.checkpoint``): the outputs of every
        record those states hold must be published by then."""
        ps, m = plan.ps, self.m
        base = ps.base
        if plan.records:  # a full snapshot's anchor first (its offset is the new base)
            metas = await self._send_slice(plan, plan.records)
            if plan.full:
                base = metas[0].offset
        async for records in self._slices(plan):
            await self._settle_outputs()
            await self._send_slice(plan, records)
        await self._settle_outputs()  # the marker moves resume: what came before is published
        marker = Marker(plan.resume, base, revocations, time.time(), len(ps.pipeline))
        await self._send_and_wait(ps.partition, MARKER_KEY, marker.encode())
        m.metrics.checkpoint_records.inc(plan.written)
        m.metrics.checkpoints.inc()
        m.metrics.checkpoint_resume.labels(str(ps.partition)).set(plan.resume)
        ps.since_base = plan.written + 1 if plan.full else ps.since_base + plan.written + 1
        ps.base, ps.resume = base, plan.resume

    async def _send_slice(
        self, plan: _Plan, records: list[tuple[bytes, bytes | None]]
    ) -> list[Any]:
        """Send records to the plan's checkpoint partition; return their metadata once the
        broker has them all."""
        producer = self.m.app.producer
        topic = self.m.settings.checkpoint_topic
        partition = plan.ps.partition
        clock = time.perf_counter
        yield_at = clock() + PICKLE_SLICE_S
        futures = []
        for key, value in records:
            futures.append(await producer.send(topic, key, value, partition, None, None))
            plan.bytes += len(key) + (0 if value is None else len(value))
            if clock() >= yield_at:
                await asyncio.sleep(0)
                yield_at = clock() + PICKLE_SLICE_S
        metas = list(await asyncio.gather(*futures)) if futures else []
        plan.written += len(records)
        plan.slices += 1
        return metas

    async def _send_and_wait(self, partition: int, key: bytes, value: bytes) -> None:
        fut = await self.m.app.producer.send(
            self.m.settings.checkpoint_topic, key, value, partition, None, None
        )
        await fut

    async def _settle(self, inflight: list[tuple[asyncio.Future[Any], Send]]) -> None:
        """Wait for every output sent so far; resend what failed; give up loudly."""
        if not inflight:
            return
        await asyncio.wait([slot for slot, _ in inflight], timeout=SETTLE_TIMEOUT_S)
        for slot, item in inflight:
            if slot.done() and slot.exception() is None:
                continue
            error: BaseException | None = slot.exception() if slot.done() else None
            for attempt in range(SEND_RETRIES):
                await asyncio.sleep(0.2 * (attempt + 1))
                try:
                    await asyncio.wait_for(await self.m.outputs.send(item), SETTLE_TIMEOUT_S)
                    break
                except Exception as exc:
                    error = exc
            else:
                raise CheckpointFailed(
                    f"could not publish a {item.kind} record to {item.topic}: {error!r}"
                )

    # -- rebalance and shutdown ---------------------------------------------------------------
    async def on_revoked(
        self, sender: Any = None, revoked: set[TP] | None = None, **_: Any
    ) -> None:
        """Partitions are being taken away: checkpoint them one last time, then drop them."""
        topic = self.m.settings.topic_actions
        gone = [tp.partition for tp in revoked or () if tp.topic == topic]
        gone = [p for p in gone if p in self.m.partitions]
        if not gone:
            return
        self.m.ready = False
        try:
            await self.checkpoint(gone)
        except Exception:
            log.exception("final checkpoint of revoked partitions %s failed", gone)
        for p in gone:
            self.m.drop_partition(p)

    async def before_stop(self) -> None:
        """The worker stops: no more records, one last checkpoint, close the sink."""
        self.m.ready = False
        app = self.m.app
        if app._consumer is not None:  # noqa: SLF001 (None if the worker never started)
            app.consumer.stop_flow()
        app.flow_control.suspend()
        try:
            if self.m.partitions:
                await self.checkpoint()
        finally:
            if self._started:
                await self.reader.stop()
                await self.m.outputs.stop()
                await asyncio.to_thread(self.m.sink.close, 10.0)
