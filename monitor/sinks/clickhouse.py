"""The ClickHouse sink: batched, redacted, idempotent inserts that survive an outage.

On the event loop, ``add_event`` / ``add_alert`` / ``add_signal`` only append to a buffer
(a lock and a list append). Two threads do the rest:

* the **builder** cuts the buffer into a batch every ``batch_rows`` rows or
  ``flush_interval_s`` seconds, builds the rows (redaction included), and, while more than
  ``max_buffer_rows`` built rows wait in memory (ClickHouse is down or slow), **spills** the
  oldest batches to the disk spool (``spool.py``);
* the **inserter** inserts batches, spooled ones first, each table with an
  ``insert_deduplication_token`` derived from the batch (so a retry after a lost
  acknowledgement, or a spool replay of a batch that did get in, inserts nothing twice),
  retrying with exponential backoff (0.2 s doubling to 30 s) while ClickHouse is
  unreachable; while inserts fail, batches older than ``spill_after_s`` are spilled too, so
  durable offsets keep moving during a long outage. Detection never waits for any of it.

``durable_offset(p)`` is the lowest Kafka offset of partition ``p`` whose event is neither
inserted nor spilled (None when nothing of ``p`` is waiting): every event added for ``p`` with
a lower offset is durable, so the worker may commit up to it and no further.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from monitor.redaction import Redactor
from monitor.sinks import queries
from monitor.sinks.base import SinkStats
from monitor.sinks.batches import Batch, Spilled, build_tables, lowest_offsets
from monitor.sinks.connection import new_client, safe_url
from monitor.sinks.rows import Row
from monitor.sinks.schema import COLUMNS, ddl
from monitor.sinks.spool import Spool
from schemas.alerts import DetectionFinding
from schemas.errors import SinkError
from schemas.events import ActionEvent
from schemas.privileged import PrivilegedAction
from schemas.signals import SessionRevokedClaims

log = logging.getLogger("agentwatch.sink")

_MAX_BACKOFF_S = 30.0


class ClickHouseSink(queries.StoreReads):
    """Stores events, alerts and kill signals in ClickHouse (server or embedded chdb)."""

    def __init__(
        self,
        url: str,
        *,
        database: str = "agentwatch",
        datadir: Path = Path("var/agentwatch"),
        redactor: Redactor,
        batch_rows: int = 10_000,
        flush_interval_s: float = 1.0,
        max_buffer_rows: int = 200_000,
        connect_timeout_s: float = 3.0,
        send_receive_timeout_s: float = 30.0,
        spill_after_s: float = 5.0,
    ) -> None:
        ddl(database)  # validates the name
        self.url = url
        self.database = database
        self.redactor = redactor
        self.batch_rows = max(1, batch_rows)
        self.flush_interval_s = flush_interval_s
        self.max_buffer_rows = max_buffer_rows
        self.connect_timeout_s = connect_timeout_s
        self.send_receive_timeout_s = send_receive_timeout_s
        self.spill_after_s = spill_after_s
        self.embedded = url.startswith("chdb:")
        self.spool = Spool(Path(datadir) / "spool")
        self._cond = threading.Condition(threading.Lock())
        self._items: list[tuple[Any, ...]] = []
        self._mins: dict[int, int] = {}
        self._since = 0.0
        self._mem: list[Batch] = []
        self._mem_rows = 0
        self._spilled: list[Spilled] = []
        self._force = False
        self._closing = False
        self._abort = False
        self._builder_done = False
        self._client: Any = None
        self._read_client: Any = None
        self._client_lock = threading.Lock()
        self._column_types: dict[str, Any] = {}  # per table, for the current client
        self._read_lock = threading.Lock()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        # counters (written by the threads, read by stats())
        self._rows_inserted = {t: 0 for t in COLUMNS}
        self._inserts = 0
        self._errors = 0
        self._spilled_total = 0
        self._build_errors = 0
        self._last_insert_s = 0.0
        self._degraded = False
        for path in self.spool.files():  # left by a previous process: replay them
            self._spilled.append(Spilled(path, self._count_rows(path), path.stat().st_mtime))

    # -- the event loop's side: O(1), never blocks on I/O -----------------------------------

    def add_event(
        self,
        raw: bytes,
        event: ActionEvent | None,
        *,
        partition: int,
        offset: int,
        caps: frozenset[str] | None,
    ) -> None:
        with self._cond:
            self._items.append((raw, event, partition, offset, caps))
            low = self._mins.get(partition)
            if low is None or offset < low:
                self._mins[partition] = offset
            if len(self._items) == 1:
                self._since = time.time()
            if len(self._items) >= self.batch_rows:
                self._cond.notify_all()

    def add_alert(self, alert: DetectionFinding) -> None:
        with self._cond:
            self._items.append((alert,))
            if len(self._items) == 1:
                self._since = time.time()

    def add_signal(
        self, jti: str, compact_jws: str, claims: SessionRevokedClaims, *, root_session_id: str
    ) -> None:
        with self._cond:
            self._items.append((jti, compact_jws, claims, root_session_id))
            if len(self._items) == 1:
                self._since = time.time()

    def add_privileged(self, action: PrivilegedAction) -> None:
        with self._cond:
            self._items.append(("privileged", action))
            if len(self._items) == 1:
                self._since = time.time()

    def durable_offset(self, partition: int) -> int | None:
        with self._cond:
            low = self._mins.get(partition)
            for b in self._mem:
                m = b.mins.get(partition)
                if m is not None and (low is None or m < low):
                    low = m
            return low

    def durable_offsets(self) -> dict[int, int]:
        """``durable_offset`` of every partition that has events waiting (one lock)."""
        with self._cond:
            low = dict(self._mins)
            for b in self._mem:
                for p, m in b.mins.items():
                    if p not in low or m < low[p]:
                        low[p] = m
            return low

    def stats(self) -> SinkStats:
        now = time.time()
        with self._cond:
            ages = [b.created for b in self._mem] + [s.created for s in self._spilled]
            if self._items:
                ages.append(self._since)
            return SinkStats(
                rows_inserted=dict(self._rows_inserted),
                insert_errors=self._errors,
                inserts=self._inserts,
                buffered_rows=len(self._items)
                + sum(len(b.items or ()) + b.rows for b in self._mem),
                spooled_rows=sum(s.rows for s in self._spilled),
                spooled_batches=len(self._spilled),
                spilled_rows_total=self._spilled_total,
                oldest_unflushed_age_s=max(0.0, now - min(ages)) if ages else 0.0,
                last_insert_duration_s=self._last_insert_s,
                values_masked=self.redactor.masked,
                degraded=self._degraded,
            )

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Open the store (embedded: now, so a locked path fails loudly) and start the threads."""
        if self.embedded:
            self._connect()
        for name, target in (("builder", self._build_loop), ("inserter", self._insert_loop)):
            t = threading.Thread(target=target, name=f"agentwatch-sink-{name}", daemon=True)
            t.start()
            self._threads.append(t)

    def flush(self, timeout: float = 10.0) -> bool:
        """Cut a batch now and wait until everything added so far is in ClickHouse."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._force = True
            self._cond.notify_all()
            while self._items or self._mem or self._spilled:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Final flush: insert what is buffered within ``timeout``, spill the rest to disk."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._closing = True
            self._force = True
            self._cond.notify_all()
        for t in self._threads[:1]:
            t.join(max(0.1, deadline - time.monotonic()))
        with self._cond:
            while self._mem and time.monotonic() < deadline:
                self._cond.wait(min(0.05, max(0.0, deadline - time.monotonic())))
            self._abort = True
            self._cond.notify_all()
        self._wake.set()
        for t in self._threads[1:]:
            t.join(max(0.5, deadline - time.monotonic()))
        if self._items:  # never started (or the builder died): build what is left here
            with self._cond:
                batch = Batch(uuid.uuid4().hex, self._items, self._mins, self._since)
                self._items, self._mins = [], {}
                self._mem.append(batch)
            self._build(batch)
        for b in list(self._mem):  # ClickHouse did not take them in time: keep them on disk
            if b.built and b.rows:
                self._spill(b, force=True)
        for c in (self._client, self._read_client):
            if c is not None:
                with contextlib.suppress(Exception):
                    c.close()
        self._client = self._read_client = None
        self._threads.clear()

    # -- builder thread ------------------------------------------------------------------------

    def _build_loop(self) -> None:
        while True:
            with self._cond:
                while not self._due():
                    if self._closing and not self._items:
                        self._builder_done = True
                        self._cond.notify_all()
                        return
                    wait = self.flush_interval_s - (time.time() - self._since) if self._items else 1
                    self._cond.wait(max(0.005, wait))
                items, mins = self._items, self._mins
                if len(items) > self.batch_rows:  # cut at batch_rows, keep the rest buffered
                    items, rest = items[: self.batch_rows], items[self.batch_rows :]
                    mins, self._mins = lowest_offsets(items), lowest_offsets(rest)
                    self._items = rest
                else:
                    self._items, self._mins, self._force = [], {}, False
                batch = Batch(uuid.uuid4().hex, items, mins, self._since)
                self._mem.append(batch)
            self._build(batch)
            self._bound_memory()

    def _due(self) -> bool:
        if not self._items:
            return False
        return (
            self._force
            or self._closing
            or len(self._items) >= self.batch_rows
            or time.time() - self._since >= self.flush_interval_s
        )

    def _build(self, batch: Batch) -> None:
        tables, errors = build_tables(self.redactor, batch.items or ())
        with self._cond:
            self._build_errors += errors
            batch.tables = tables
            batch.rows = sum(len(r) for r in tables.values())
            batch.items = None
            batch.built = True
            self._mem_rows += batch.rows
            if not batch.rows:
                self._mem.remove(batch)
            self._cond.notify_all()

    def _bound_memory(self) -> None:
        while True:
            with self._cond:
                if self._mem_rows <= self.max_buffer_rows:
                    return
                victim = next((b for b in self._mem if b.built and not b.busy), None)
                if victim is None:
                    return
                victim.busy = True
            if not self._spill(victim):
                return

    def _spill(self, batch: Batch, force: bool = False) -> bool:
        with self._cond:
            if batch.spilling or batch not in self._mem:
                return True  # another thread is writing it, or it is already stored
            batch.spilling = True
        try:
            path = self.spool.write(batch.token, batch.tables)
        except OSError as exc:
            log.error("cannot spill %d rows to %s: %s", batch.rows, self.spool.directory, exc)
            with self._cond:
                batch.busy = batch.spilling = False
            return False
        with self._cond:
            if batch in self._mem:
                self._mem.remove(batch)
                self._mem_rows -= batch.rows
            self._spilled.append(Spilled(path, batch.rows, batch.created))
            self._spilled_total += batch.rows
            self._cond.notify_all()
        if not force:
            log.warning("ClickHouse is behind: spilled %d rows to %s", batch.rows, path.name)
        return True

    def _spill_stale(self) -> None:
        """While inserts fail, batches older than ``spill_after_s`` go to disk, so durable
        offsets (and the worker's commits) keep moving during a long outage."""
        cutoff = time.time() - self.spill_after_s
        while True:
            with self._cond:
                victim = next(
                    (b for b in self._mem if b.built and not b.busy and b.created < cutoff),
                    None,
                )
                if victim is None:
                    return
                victim.busy = True
            if not self._spill(victim):
                return

    # -- inserter thread -----------------------------------------------------------------------

    def _next_job(self) -> Batch | Spilled | None:
        for s in self._spilled:
            if not s.busy:
                return s
        for b in self._mem:
            if b.built and not b.busy:
                return b
        return None

    def _insert_loop(self) -> None:
        backoff = 0.0
        while True:
            with self._cond:
                job = self._next_job()
                while job is None:
                    if self._abort or (self._builder_done and not self._mem and not self._items):
                        return
                    self._cond.wait(0.2)
                    job = self._next_job()
                if self._abort:
                    return
                job.busy = True
            try:
                if isinstance(job, Spilled):
                    token, tables = self.spool.read(job.path)
                else:
                    token, tables = job.token, job.tables
                started = time.monotonic()
                self._insert(token, tables)
            except Exception as exc:  # unreachable, refused, timed out, table missing...
                self._column_types.clear()  # asked again: the table may have been altered
                with self._cond:
                    job.busy = False
                    self._errors += 1
                    self._degraded = True
                backoff = min(_MAX_BACKOFF_S, backoff * 2 if backoff else 0.2)
                self._spill_stale()
                log.warning(
                    "ClickHouse insert failed (retry in %.1fs): %s",
                    backoff,
                    self.redactor.text(f"{type(exc).__name__}: {exc}", 300),
                )
                self._wake.wait(backoff)
                if self._abort:
                    return
                continue
            backoff = 0.0
            elapsed = time.monotonic() - started
            if isinstance(job, Spilled):  # before flush() can see it gone from _spilled
                self.spool.remove(job.path)
            with self._cond:
                self._last_insert_s = elapsed
                self._degraded = False
                for t, rows in tables.items():
                    self._rows_inserted[t] += len(rows)
                if isinstance(job, Spilled):
                    if job in self._spilled:
                        self._spilled.remove(job)
                elif job in self._mem:  # (close() may have spilled it meanwhile)
                    self._mem.remove(job)
                    self._mem_rows -= job.rows
                self._cond.notify_all()

    def _insert(self, token: str, tables: dict[str, list[Row]]) -> None:
        with self._client_lock:
            client = self._client or self._connect_locked()
            for table, rows in tables.items():
                if not rows:
                    continue
                # The column types, asked once per client: clickhouse-connect otherwise runs
                # DESCRIBE TABLE before every insert (~4 ms of chdb's CPU, or a round trip).
                types = self._column_types.get(table)
                if types is None:
                    name = f"{self.database}.{table}"
                    types = client.create_insert_context(name, list(COLUMNS[table])).column_types
                    self._column_types[table] = types
                client.insert(
                    f"{self.database}.{table}",
                    rows,
                    column_names=list(COLUMNS[table]),
                    column_types=types,
                    settings={"insert_deduplication_token": f"{token}-{table}"},
                )
                self._inserts += 1

    # -- connection ----------------------------------------------------------------------------

    def _connect(self) -> Any:
        with self._client_lock:
            return self._client or self._connect_locked()

    def _connect_locked(self) -> Any:
        try:
            client = self._new_client()
            for stmt in ddl(self.database):
                client.command(stmt)
        except Exception as exc:
            raise SinkError(
                f"cannot open the ClickHouse store {safe_url(self.url)}: {exc}"
            ) from exc
        self._client = client
        self._column_types.clear()
        return client

    def _new_client(self) -> Any:
        return new_client(self.url, self.connect_timeout_s, self.send_receive_timeout_s)

    @staticmethod
    def _count_rows(path: Path) -> int:
        try:
            _, tables = Spool(path.parent).read(path)
        except Exception:
            return 0
        return sum(len(r) for r in tables.values())

    # -- reads (replay, the worker's read API) ---------------------------------------------------

    @contextlib.contextmanager
    def _reader(self) -> Any:
        if self.embedded:  # chdb: one engine per process; share the writer's connection
            with self._client_lock:
                yield self._client or self._connect_locked()
            return
        with self._read_lock:
            if self._read_client is None:
                try:
                    self._read_client = self._new_client()
                except Exception as exc:
                    raise SinkError(
                        f"cannot reach the ClickHouse store {safe_url(self.url)}: {exc}"
                    ) from exc
            yield self._read_client
