"""Fixtures shared by the monitor tests (the embedded ClickHouse store)."""

from tests.monitor.store_fixtures import chdb_dir, client, make_sink  # noqa: F401
