"""Reading checkpoints back from the real broker: last marker, base, tombstones, records
written after the marker, and kill signals published since a marker."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from monitor.broker import EmbeddedBroker
from monitor.checkpoint import (
    MARKER_KEY,
    SNAPSHOT_KEY,
    CheckpointReader,
    Marker,
    Restored,
    session_key,
)

pytestmark = pytest.mark.kafka


async def _scenario(
    bootstrap: str,
) -> tuple[Restored, Restored, dict[str, bytes], set[TopicPartition]]:
    ck, rev = f"ck-{uuid.uuid4().hex[:6]}", f"rev-{uuid.uuid4().hex[:6]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(ck, 2, 1), NewTopic(rev, 2, 1)])
    await admin.close()
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=2)
    await p.start()

    async def put(key: bytes, value: bytes | None, partition: int = 0) -> int:
        return int((await (await p.send(ck, key=key, value=value, partition=partition))).offset)

    # an old generation: superseded by the full snapshot below
    for i in range(300):
        await p.send(ck, key=session_key(f"old{i % 7}"), value=b"old", partition=0)
    await put(MARKER_KEY, Marker(10, 0, {0: 0, 1: 0}, 1.0).encode())
    base = await put(SNAPSHOT_KEY, b"")
    await put(session_key("a"), b"a1")
    await put(session_key("b"), b"b1")
    await put(MARKER_KEY, Marker(20, base, {0: 0, 1: 1}, 2.0).encode())
    await put(session_key("a"), b"a2")  # a checkpoint interrupted after the marker:
    await put(session_key("b"), None)  # newer states and a tombstone, no marker
    await p.send_and_wait(rev, key=b"s", value=b"h.p.s", headers=[("ce_id", b"j0")], partition=1)
    await p.send_and_wait(rev, key=b"s", value=b"h.p.s", headers=[("ce_id", b"j1")], partition=1)
    await p.stop()

    reader = CheckpointReader(bootstrap, ck, rev)
    await reader.start()
    try:
        restored = await reader.read_partition(0)
        empty = await reader.read_partition(1)
        published = await reader.published_signals(restored.marker.revocations)  # type: ignore[union-attr]
        left_assigned = set(reader.consumer.assignment())
    finally:
        await reader.stop()
    return restored, empty, published, left_assigned


def test_restore_reads_from_the_last_marker_base_to_the_end(broker: EmbeddedBroker) -> None:
    restored, empty, published, left_assigned = asyncio.run(_scenario(broker.bootstrap))
    assert restored.marker is not None and restored.marker.resume == 20
    # old sessions before the base are gone; post-marker states win; tombstones remove
    assert restored.sessions == {"a": b"a2"}
    assert empty.marker is None and empty.sessions == {} and empty.end == 0
    # only signals at or after the marker's offsets (partition 1 from offset 1)
    assert set(published) == {"j1"}
    # the reader lives as long as the worker: a partition left assigned would be fetched in
    # the background all that time (CPU, and its records prefetched into memory)
    assert left_assigned == set()
