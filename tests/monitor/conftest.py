"""Fixtures shared by the monitor tests (the embedded ClickHouse store; workers reaped)."""

from collections.abc import Iterator

import pytest

from tests.monitor.harness import Worker
from tests.monitor.store_fixtures import chdb_dir, client, make_sink  # noqa: F401


@pytest.fixture(autouse=True)
def reap_workers() -> Iterator[None]:
    """A test that failed half-way must not leave its workers running (loading the shared
    cores) for the rest of the session."""
    yield
    while Worker.started:
        Worker.started.pop().stop()
