"""The disk write-ahead spool: batches that ClickHouse could not take, kept until it can.

When ClickHouse is unreachable for longer than the memory bound allows, the sink writes
whole batches (rows already built and **redacted**, so no secret reaches the disk in
clear) here, one file per batch, and counts them as durable: Kafka offsets may then be
committed past them. When ClickHouse is back, the sink inserts the files oldest first with
the batch's original deduplication token, and deletes each file once inserted. Files left by
a previous process are picked up at start.

A file is written to a temporary name, fsynced, renamed, and the directory fsynced, so a
crash leaves either a whole batch or nothing. Times are stored as RFC 3339 strings and
converted back on load.

>>> import tempfile, datetime as dt
>>> sp = Spool(Path(tempfile.mkdtemp()))
>>> t = dt.datetime(2026, 7, 1, tzinfo=dt.UTC)
>>> f = sp.write("tok-1", {"kill_signals": [("acme", "s1", "j1", t, "aw-1", "s1", "", "", [],
...                                          "r", t, "{}", "x.y.z")]})
>>> token, tables = sp.read(f)
>>> token, tables["kill_signals"][0][3] == t
('tok-1', True)
"""

from __future__ import annotations

import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from monitor.sinks.schema import COLUMNS, DATETIME_COLUMNS

Rows = list[tuple[Any, ...]]


class Spool:
    """One directory of spilled batches (``<ns-time>-<token>.json``)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._dt_index = {
            table: [i for i, c in enumerate(cols) if c in DATETIME_COLUMNS[table]]
            for table, cols in COLUMNS.items()
        }

    def files(self) -> list[Path]:
        """Spilled batches, oldest first."""
        return sorted(self.directory.glob("*.json"))

    def write(self, token: str, tables: dict[str, Rows]) -> Path:
        """Write one batch durably; returns its file."""
        doc = {
            "token": token,
            "tables": {t: [list(r) for r in rows] for t, rows in tables.items() if rows},
        }
        data = orjson.dumps(doc, option=orjson.OPT_NAIVE_UTC)
        name = f"{time.time_ns():020d}-{token}.json"
        tmp = self.directory / (name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
        finally:
            os.close(fd)
        final = self.directory / name
        os.replace(tmp, final)
        dfd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
        return final

    def read(self, path: Path) -> tuple[str, dict[str, Rows]]:
        """The token and rows of one spilled batch."""
        doc = orjson.loads(path.read_bytes())
        tables: dict[str, Rows] = {}
        for table, rows in doc["tables"].items():
            idx = self._dt_index[table]
            out = []
            for r in rows:
                for i in idx:
                    r[i] = datetime.fromisoformat(r[i])
                out.append(tuple(r))
            tables[table] = out
        return str(doc["token"]), tables

    @staticmethod
    def remove(path: Path) -> None:
        path.unlink(missing_ok=True)

    def size(self) -> tuple[int, int]:
        """(files, bytes) in the spool."""
        files = self.files()
        return len(files), sum(f.stat().st_size for f in files if f.exists())
