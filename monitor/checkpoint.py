"""Session checkpoints on a changelog topic, and reading them back after a restart.

Why not a faust Table: faust can commit source offsets before a table's changelog writes are
durable, so a SIGKILL loses state (infra.md measured 10-17 lost increments in 10,000), and a
table write per event costs more than the rest of the pipeline. Instead the worker
checkpoints in batches (``monitor.runtime``) to a changelog topic co-partitioned with the
action topic: partition *p* of the checkpoint topic holds the sessions of source partition *p*.

Records (key -> value):

* ``s:<root session id>`` -> the pickled :class:`~detectors.session.SessionState`; once the
  session is evicted, the pickled :class:`~monitor.pipeline.Tombstone` of an ended or killed
  session (while it is remembered), or ``None`` (forgotten);
* ``\\x00learned`` -> the partition's learned detector state (``Engine.learned_state()``), if
  the engine has any;
* ``\\x00snapshot`` -> empty: the first record of a full snapshot of the partition;
* ``\\x00marker`` -> a JSON :class:`Marker`, written last, once everything before it is
  acknowledged: ``resume`` is the source offset to resume from (every event before it is in
  the checkpointed state or will be re-read, its outputs are published and the sink has it),
  ``base`` is where the latest full snapshot of the partition begins, ``revocations`` the
  end offsets of the kill-signal topic when the checkpoint was taken.

Restoring a partition: find the last marker (reading backwards from the end in growing
chunks), then read ``[base, end)`` and keep the latest value per key. Records written after
the last marker (a checkpoint interrupted by the crash) are newer session states: they are
applied too, which is safe because a state only contains events the worker had processed,
their outputs were published first, and the replay from ``resume`` deduplicates on
``event_id``. Reading to the end also makes log compaction harmless. Kill signals published
after ``revocations`` are read back so a decision re-taken during the replay is not published
twice (its ``jti`` is deterministic).

Tansu findings (0.6, memory storage): topics are created with the requested partition counts;
``cleanup.policy=compact`` is accepted but not reported back by DescribeConfigs and nothing
is compacted (2,001 records on 3 keys all still readable); ListOffsets(latest) answers the
base offset of the last record *batch* plus one, not the partition's end, so the end is taken
from the fetch high watermark here, never from ListOffsets.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

SESSION_PREFIX = b"s:"
LEARNED_KEY = b"\x00learned"
MARKER_KEY = b"\x00marker"
SNAPSHOT_KEY = b"\x00snapshot"


@dataclass(frozen=True, slots=True)
class Marker:
    """The end of one complete checkpoint of one partition."""

    resume: int
    base: int
    revocations: dict[int, int]
    written_at: float
    sessions: int = 0
    version: int = 1

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "v": self.version,
                "resume": self.resume,
                "base": self.base,
                "revocations": {str(k): v for k, v in self.revocations.items()},
                "written_at": self.written_at,
                "sessions": self.sessions,
            }
        )

    @classmethod
    def decode(cls, raw: bytes) -> Marker:
        d = orjson.loads(raw)
        return cls(
            resume=int(d["resume"]),
            base=int(d["base"]),
            revocations={int(k): int(v) for k, v in d.get("revocations", {}).items()},
            written_at=float(d.get("written_at", 0.0)),
            sessions=int(d.get("sessions", 0)),
            version=int(d.get("v", 1)),
        )


def session_key(root_session_id: str) -> bytes:
    return SESSION_PREFIX + root_session_id.encode("utf-8")


@dataclass
class Restored:
    """What a partition's checkpoint holds."""

    marker: Marker | None = None
    sessions: dict[str, bytes] = field(default_factory=dict)
    learned: bytes | None = None
    #: the checkpoint partition's end offset when it was read
    end: int = 0
    records_read: int = 0


class CheckpointReader:
    """Reads checkpoint partitions and the kill-signal topic (no consumer group)."""

    def __init__(self, bootstrap: str, checkpoint_topic: str, revocations_topic: str) -> None:
        self.bootstrap = bootstrap
        self.checkpoint_topic = checkpoint_topic
        self.revocations_topic = revocations_topic
        self._consumer: AIOKafkaConsumer | None = None
        self._revocation_partitions: list[int] = []

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            fetch_max_wait_ms=5,
            max_partition_fetch_bytes=8 * 1024 * 1024,
            auto_offset_reset="earliest",
        )
        await self._consumer.start()

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    @property
    def consumer(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise RuntimeError("CheckpointReader.start() was not called")
        return self._consumer

    # -- low level ------------------------------------------------------------------------
    async def _end(self, tp: TopicPartition) -> int:
        """The partition's end offset, from a fetch's high watermark (see module docstring)."""
        c = self.consumer
        c.assign([tp])
        try:
            hint = (await c.end_offsets([tp]))[tp]
            c.seek(tp, max(0, hint - 1))
            for _ in range(200):
                await c.getmany(tp, timeout_ms=50, max_records=1)
                hw = c.highwater(tp)
                if hw is not None:
                    return int(hw)
        finally:
            self._release()
        raise TimeoutError(f"no high watermark for {tp.topic}[{tp.partition}] after 10s")

    def _release(self) -> None:
        """Drop the assignment: an assigned partition is fetched continuously in the
        background (every fetch wait, ~200 requests/s on Tansu) for as long as the worker
        runs, which is CPU taken from scoring, and the records it prefetches (our own
        checkpoints, when that was the last partition read) are held in memory."""
        if self.consumer.assignment():
            self.consumer.unsubscribe()

    async def _read(self, tp: TopicPartition, start: int, stop: int) -> list[Any]:
        """Records of ``tp`` with ``start <= offset < stop``."""
        c = self.consumer
        c.assign([tp])
        try:
            c.seek(tp, start)
            return await self._read_assigned(tp, start, stop)
        finally:
            self._release()

    async def _read_assigned(self, tp: TopicPartition, start: int, stop: int) -> list[Any]:
        c = self.consumer
        out: list[Any] = []
        pos = start
        idle = 0
        while pos < stop:
            batch = await c.getmany(tp, timeout_ms=200, max_records=10_000)
            recs = batch.get(tp, [])
            if not recs:
                idle += 1
                if idle > 50:
                    raise TimeoutError(f"reading {tp.topic}[{tp.partition}] stalled at {pos}")
                hw = c.highwater(tp)
                if hw is not None and hw <= pos:
                    break  # the end moved below what we expected (nothing more to read)
                continue
            idle = 0
            for r in recs:
                if r.offset >= stop:
                    return out
                out.append(r)
            pos = recs[-1].offset + 1
        return out

    # -- checkpoints ----------------------------------------------------------------------
    async def read_partition(self, partition: int) -> Restored:
        """The latest checkpoint of source partition ``partition`` (empty if there is none)."""
        tp = TopicPartition(self.checkpoint_topic, partition)
        end = await self._end(tp)
        restored = Restored(end=end)
        if end == 0:
            return restored
        pos, chunk = end, 256
        while pos > 0 and restored.marker is None:
            start = max(0, pos - chunk)
            for r in reversed(await self._read(tp, start, pos)):
                if r.key == MARKER_KEY and r.value is not None:
                    restored.marker = Marker.decode(r.value)
                    break
            pos, chunk = start, chunk * 4
        base = restored.marker.base if restored.marker is not None else 0
        latest: dict[bytes, bytes | None] = {}
        records = await self._read(tp, base, end)
        for r in records:
            if r.key is not None:
                latest[r.key] = r.value
        restored.records_read = len(records)
        for key, value in latest.items():
            if key.startswith(SESSION_PREFIX) and value is not None:
                restored.sessions[key[len(SESSION_PREFIX) :].decode("utf-8")] = value
            elif key == LEARNED_KEY:
                restored.learned = value
        return restored

    # -- kill signals ---------------------------------------------------------------------
    async def revocation_ends(self) -> dict[int, int]:
        """End offsets of every kill-signal partition (ListOffsets: exact on Kafka, low on
        Tansu, which only makes the later read-back start earlier)."""
        c = self.consumer
        if not self._revocation_partitions:
            admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
            await admin.start()
            try:
                (desc,) = await admin.describe_topics([self.revocations_topic])
            finally:
                await admin.close()
            self._revocation_partitions = sorted(p["partition"] for p in desc.get("partitions", ()))
        tps = [TopicPartition(self.revocations_topic, p) for p in self._revocation_partitions]
        if not tps:
            return {}
        ends = await c.end_offsets(tps)
        return {tp.partition: int(off) for tp, off in ends.items()}

    async def published_signals(self, since: dict[int, int]) -> dict[str, bytes]:
        """``jti -> compact JWS`` of kill signals published at or after ``since``."""
        out: dict[str, bytes] = {}
        for partition, start in sorted(since.items()):
            tp = TopicPartition(self.revocations_topic, partition)
            end = await self._end(tp)
            if end <= start:
                continue
            for r in await self._read(tp, start, end):
                if r.value is None:
                    continue
                jti = next((v.decode() for k, v in (r.headers or ()) if k == "ce_id"), None)
                if jti is None:
                    jti = _jti_of(r.value)
                if jti:
                    out[jti] = r.value
        return out


def _jti_of(compact: bytes) -> str | None:
    """The ``jti`` claim of a compact JWS, without verifying it (our own topic)."""
    try:
        payload = compact.split(b".")[1]
        claims = orjson.loads(base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)))
        return str(claims["jti"])
    except (IndexError, ValueError, KeyError, TypeError):
        return None


def claims_of(compact: bytes) -> dict[str, Any]:
    """The claims of a compact JWS, without verifying it (our own topic)."""
    payload = compact.split(b".")[1]
    return dict(orjson.loads(base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4))))
