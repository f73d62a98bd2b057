"""The sink in its own process, so storage never competes with detection for the GIL.

Row building, redaction and inserts cost ~45-55 µs of Python per event, and chdb holds the
GIL while it executes: in the worker's process a thread doing that work halved a parsing
loop's throughput (``bench/sink.py``: ``loop_*``). :class:`ProcessSink` keeps the same
interface but only appends to a buffer on the event loop; a sender thread hands the buffer
to a child process (spawned, so it inherits no Kafka connection or event loop) every
``handoff_rows`` items or ``handoff_interval_s``, as one pickled message of raw records (alerts
and audit records as their JSON: :func:`_compact`). The child builds rows from the records and
runs a :class:`~monitor.sinks.clickhouse.ClickHouseSink` (its own batching, redaction, retries
and disk spool), and reports back, after every hand-off and every 100 ms, which offsets are
durable and its stats.

``durable_offset(p)`` is the lowest of: the parent's buffer, the hand-offs the child has not
confirmed, and the child's own ``durable_offset``. The embedded chdb store belongs to the
child (one process per path), so reads for replay go through it as requests.

If the child dies, what it held in memory is lost to storage: the parent keeps the offsets it
had reported as pending (the worker's commits stay behind them, so Kafka re-delivers those
events after a restart), logs the loss, and starts a new child for what comes next.
"""

from __future__ import annotations

import itertools
import logging
import math
import multiprocessing as mp
import pickle
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from monitor.sinks.base import SinkStats
from monitor.sinks.child import child_main
from schemas.alerts import DetectionFinding
from schemas.errors import SinkError
from schemas.events import ActionEvent
from schemas.privileged import PrivilegedAction
from schemas.signals import SessionRevokedClaims

log = logging.getLogger("agentwatch.sink")


def _compact(item: tuple[Any, ...]) -> tuple[Any, ...]:
    """An alert or privileged-action record as its JSON (pydantic's own round trip), not
    pickled: pickling a DetectionFinding costs the worker ~47 µs and the sink process ~290 to
    load, its JSON ~21 and ~60; a PrivilegedAction ~20 and ~48 pickled, ~5 and ~22 as JSON
    (``tests/monitor/sinks/test_process.py`` checks the round trip gives the same records).
    Anything JSON cannot carry (a risk that is not a finite number) goes pickled, as before."""
    tag = item[0]
    try:
        if tag == "p" and math.isfinite(item[1].risk):
            return ("P", item[1].to_json())
        if tag == "a":
            return ("A", item[1].model_dump_json())
    except Exception:  # a value JSON cannot carry: pickle the model
        return item
    return item


@dataclass
class _Chunk:
    mins: dict[int, int]


@dataclass
class _Waiter:
    done: threading.Event = field(default_factory=threading.Event)
    ok: bool = False
    value: Any = None


class ProcessSink:
    """A :class:`~monitor.sinks.clickhouse.ClickHouseSink` run in a child process."""

    def __init__(
        self,
        config: dict[str, Any],
        *,
        handoff_rows: int = 2_000,
        handoff_interval_s: float = 0.05,
        start_timeout_s: float = 60.0,
    ) -> None:
        self.config = dict(config)
        self.url = str(config["url"])
        self.database = str(config["database"])
        self.handoff_rows = handoff_rows
        self.handoff_interval_s = handoff_interval_s
        self.start_timeout_s = start_timeout_s
        self._cond = threading.Condition(threading.Lock())
        self._items: list[tuple[Any, ...]] = []
        self._mins: dict[int, int] = {}
        self._since = 0.0
        self._chunks: dict[int, _Chunk] = {}
        self._seq = itertools.count(1)
        self._child_durable: dict[int, int] = {}
        self._lost: dict[int, int] = {}  # held back after a child died (see module docstring)
        self._child_stats = SinkStats()
        self._waiters: dict[int, _Waiter] = {}
        self._rid = itertools.count(1)
        self._send_lock = threading.Lock()
        self._closing = False
        self._force = False
        self._restarts = 0
        self._proc: Any = None
        self._conn: Connection | None = None
        self._threads: list[threading.Thread] = []

    # -- the event loop's side -------------------------------------------------------------

    def add_event(
        self,
        raw: bytes,
        event: ActionEvent,
        *,
        partition: int,
        offset: int,
        caps: frozenset[str] | None,
    ) -> None:
        with self._cond:
            self._items.append(("e", raw, partition, offset, caps))
            low = self._mins.get(partition)
            if low is None or offset < low:
                self._mins[partition] = offset
            if len(self._items) == 1:
                self._since = time.monotonic()
            if len(self._items) >= self.handoff_rows:
                self._cond.notify_all()

    def add_alert(self, alert: DetectionFinding) -> None:
        with self._cond:
            self._items.append(("a", alert))
            if len(self._items) == 1:
                self._since = time.monotonic()

    def add_signal(
        self, jti: str, compact_jws: str, claims: SessionRevokedClaims, *, root_session_id: str
    ) -> None:
        with self._cond:
            self._items.append(("s", jti, compact_jws, claims, root_session_id))
            if len(self._items) == 1:
                self._since = time.monotonic()

    def add_privileged(self, action: PrivilegedAction) -> None:
        with self._cond:
            self._items.append(("p", action))
            if len(self._items) == 1:
                self._since = time.monotonic()

    def durable_offset(self, partition: int) -> int | None:
        with self._cond:
            candidates = [
                self._mins.get(partition),
                self._child_durable.get(partition),
                self._lost.get(partition),
            ]
            candidates += [c.mins.get(partition) for c in self._chunks.values()]
            present = [c for c in candidates if c is not None]
            return min(present) if present else None

    def stats(self) -> SinkStats:
        with self._cond:
            st = self._child_stats
            waiting = len(self._items)
            return SinkStats(
                rows_inserted=dict(st.rows_inserted),
                insert_errors=st.insert_errors,
                inserts=st.inserts,
                buffered_rows=st.buffered_rows + waiting,
                spooled_rows=st.spooled_rows,
                spooled_batches=st.spooled_batches,
                spilled_rows_total=st.spilled_rows_total,
                oldest_unflushed_age_s=max(
                    st.oldest_unflushed_age_s,
                    time.monotonic() - self._since if waiting else 0.0,
                ),
                last_insert_duration_s=st.last_insert_duration_s,
                values_masked=st.values_masked,
                degraded=st.degraded or bool(self._lost),
            )

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the child (it opens the store: a locked chdb path fails here) and threads."""
        self._spawn()
        for name, target in (("sender", self._send_loop), ("receiver", self._receive_loop)):
            t = threading.Thread(target=target, name=f"agentwatch-sink-{name}", daemon=True)
            t.start()
            self._threads.append(t)

    def _spawn(self) -> None:
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe(duplex=True)
        proc = ctx.Process(
            target=child_main, args=(child, self.config), name="agentwatch-sink", daemon=True
        )
        proc.start()
        child.close()
        if not parent.poll(self.start_timeout_s):
            proc.kill()
            raise SinkError(f"the sink process did not start within {self.start_timeout_s:.0f}s")
        try:
            kind, ok, detail = pickle.loads(parent.recv_bytes())
        except EOFError:
            proc.join(5)
            raise SinkError(f"the sink process exited at start (code {proc.exitcode})") from None
        if kind != "ready" or not ok:
            proc.join(5)
            raise SinkError(str(detail))
        self._proc, self._conn = proc, parent

    def flush(self, timeout: float = 10.0) -> bool:
        """Hand everything over now and wait until the child has it all in ClickHouse."""
        self._handoff_now()
        ok, value = self._request("flush", timeout + 5, timeout=timeout)
        return bool(ok and value)

    def close(self, timeout: float = 10.0) -> None:
        """Hand over what is buffered; the child inserts it within ``timeout`` or spills it."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        for t in self._threads[:1]:
            t.join(timeout)
        self._request("close", timeout + 10, timeout=timeout)
        if self._proc is not None:
            self._proc.join(timeout + 10)
            if self._proc.is_alive():
                log.error("the sink process did not stop; killing it")
                self._proc.kill()
                self._proc.join(5)
        if self._conn is not None:
            self._conn.close()
        for t in self._threads[1:]:
            t.join(2)
        self._threads.clear()

    # -- parent threads ----------------------------------------------------------------------

    def _handoff_now(self) -> None:
        with self._cond:
            self._force = True
            self._cond.notify_all()
            deadline = time.monotonic() + 30
            while self._items and time.monotonic() < deadline:
                self._cond.wait(0.01)

    def _send_loop(self) -> None:
        while True:
            with self._cond:
                while not (
                    self._items
                    and (
                        self._force
                        or self._closing
                        or len(self._items) >= self.handoff_rows
                        or time.monotonic() - self._since >= self.handoff_interval_s
                    )
                ):
                    if self._closing and not self._items:
                        return
                    self._cond.wait(self.handoff_interval_s)
                items, self._items = self._items, []
                mins, self._mins = self._mins, {}
                self._force = False
                seq = next(self._seq)
                self._chunks[seq] = _Chunk(mins)
                self._cond.notify_all()
            try:
                self._send(("add", seq, [_compact(item) for item in items]))
            except (OSError, ValueError) as exc:  # the child is gone: the receiver restarts it
                log.error("could not hand %d rows to the sink process: %s", len(items), exc)
                with self._cond:  # not stored: hold commits behind them (module docstring)
                    for p, m in self._chunks.pop(seq, _Chunk({})).mins.items():
                        if p not in self._lost or m < self._lost[p]:
                            self._lost[p] = m

    def _send(self, msg: tuple[Any, ...]) -> None:
        data = pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL)
        with self._send_lock:
            if self._conn is None:
                raise OSError("the sink process is not running")
            self._conn.send_bytes(data)

    def _request(self, kind: str, wait_s: float, **kw: Any) -> tuple[bool, Any]:
        rid = next(self._rid)
        waiter = _Waiter()
        with self._cond:
            self._waiters[rid] = waiter
        try:
            self._send((kind, rid, kw))
        except OSError as exc:
            return False, exc
        if not waiter.done.wait(wait_s):
            return False, TimeoutError(f"the sink process did not answer {kind} in {wait_s}s")
        return waiter.ok, waiter.value

    def _receive_loop(self) -> None:
        while True:
            conn = self._conn
            try:
                if conn is None:
                    raise EOFError
                msg = pickle.loads(conn.recv_bytes())
            except (EOFError, OSError):
                if self._closing:
                    self._fail_waiters("the sink process stopped")
                    return
                self._child_died()
                continue
            kind = msg[0]
            if kind == "report":
                _, seq_added, durable, stats = msg
                with self._cond:
                    for s in [s for s in self._chunks if s <= seq_added]:
                        del self._chunks[s]
                    self._child_durable = durable
                    self._child_stats = stats
            elif kind == "reply":
                _, rid, ok, value = msg
                with self._cond:
                    waiter = self._waiters.pop(rid, None)
                if waiter is not None:
                    waiter.ok, waiter.value = ok, value
                    waiter.done.set()

    def _fail_waiters(self, why: str) -> None:
        with self._cond:
            waiters, self._waiters = self._waiters, {}
        for w in waiters.values():
            w.ok, w.value = False, SinkError(why)
            w.done.set()

    def _child_died(self) -> None:
        code = self._proc.exitcode if self._proc is not None else None
        with self._cond:
            held = dict(self._child_durable)
            for c in self._chunks.values():
                for p, m in c.mins.items():
                    if p not in held or m < held[p]:
                        held[p] = m
            for p, m in held.items():
                if p not in self._lost or m < self._lost[p]:
                    self._lost[p] = m
            self._chunks.clear()
            self._child_durable = {}
        self._fail_waiters("the sink process died")
        log.error(
            "the sink process died (exit code %s): rows it held are not stored; Kafka commits "
            "stay behind offsets %s until the worker restarts and re-reads them",
            code,
            held,
        )
        with self._send_lock:
            self._conn = None
        while not self._closing:
            try:
                self._restarts += 1
                self._spawn()
                return
            except SinkError as exc:
                log.error("cannot restart the sink process: %s", exc)
                time.sleep(min(30.0, 0.5 * self._restarts))

    # -- reads -------------------------------------------------------------------------------

    def _read(self, method: str, **kw: Any) -> list[dict[str, Any]]:
        ok, value = self._request("read", 120.0, method=method, kwargs=kw)
        if not ok:
            raise value if isinstance(value, SinkError) else SinkError(str(value))
        return list(value)

    def session_events(
        self, root_session_id: str, tenant: str | None = None
    ) -> list[dict[str, Any]]:
        return self._read("session_events", root_session_id=root_session_id, tenant=tenant)

    def session_alerts(
        self, root_session_id: str, tenant: str | None = None
    ) -> list[dict[str, Any]]:
        return self._read("session_alerts", root_session_id=root_session_id, tenant=tenant)

    def session_signals(
        self, root_session_id: str, tenant: str | None = None
    ) -> list[dict[str, Any]]:
        return self._read("session_signals", root_session_id=root_session_id, tenant=tenant)

    def sessions(
        self, *, tenant: str | None = None, limit: int = 50, only_alerted: bool = False
    ) -> list[dict[str, Any]]:
        return self._read("sessions", tenant=tenant, limit=limit, only_alerted=only_alerted)
