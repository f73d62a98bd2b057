"""Fixtures shared by the monitor tests (the embedded ClickHouse store; workers reaped)."""

from collections.abc import Iterator

import pytest

from tests.monitor.harness import Worker
from tests.monitor.store_fixtures import chdb_dir, client, make_sink  # noqa: F401


@pytest.fixture(autouse=True)
def reap_workers() -> Iterator[None]:
    """A test that failed half-way must not leave the workers it started running (loading
    the shared cores) for the rest of the session. Workers of wider-scoped fixtures exist
    before the test starts and are left to their fixtures."""
    before = len(Worker.started)
    yield
    while len(Worker.started) > before:
        Worker.started.pop().stop()
