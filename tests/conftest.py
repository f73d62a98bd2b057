"""Session-wide fixtures: the embedded Kafka-protocol broker (Tansu), started once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.broker import EmbeddedBroker


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    log: Path = tmp_path_factory.mktemp("tansu") / "tansu.log"
    with EmbeddedBroker(log_path=log) as b:
        yield b
