"""The sink process's side of :class:`~monitor.sinks.process.ProcessSink`.

:func:`child_main` runs a :class:`~monitor.sinks.clickhouse.ClickHouseSink` fed by the
parent's hand-offs (pickled lists of raw records, alerts and audit records as their JSON, and
signals), and sends back, after every hand-off and every 100 ms, a report: the last hand-off it
has taken, the durable offset of every partition with rows waiting, and its stats. Flushes and
reads arrive as requests and are answered in their own threads. When the pipe closes (the
worker died), it stores what it holds and exits.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import threading
from multiprocessing.connection import Connection
from typing import Any

from schemas.errors import SinkError

log = logging.getLogger("agentwatch.sink")


_READS = frozenset({"session_events", "session_alerts", "session_signals", "sessions"})


def _warm_up() -> None:
    """Import now what clickhouse-connect imports on the first insert (pandas, if installed:
    ~2 s of CPU), so the first batch is not held up behind it."""
    from clickhouse_connect.driver import options

    options.pd  # noqa: B018 (the attribute access resolves the lazy import)


def child_main(conn: Connection, config: dict[str, Any]) -> None:
    """Run a ClickHouseSink fed by the parent's hand-offs (see the module docstring)."""
    # Before chdb starts its threads: they inherit the niceness (Linux keeps it per thread).
    niceness = int(config.get("nice", 0))
    if niceness > 0:
        try:
            os.nice(niceness)
        except OSError as exc:  # not allowed here: run at the parent's priority
            log.warning("cannot lower the sink process's priority: %s", exc)
    from monitor.heap import fix_mmap_threshold

    fix_mmap_threshold(int(config.get("mmap_threshold", 0)))  # before chdb allocates
    from monitor.redaction import Redactor
    from monitor.sinks.clickhouse import ClickHouseSink
    from schemas.alerts import DetectionFinding
    from schemas.privileged import PrivilegedAction

    # Ctrl-C reaches the whole process group: the parent decides when this process stops
    # (close, or the pipe's end if the parent dies), so that nothing buffered is dropped.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=config.get("log_level", "WARNING").upper())
    send_lock = threading.Lock()

    def send(msg: tuple[Any, ...]) -> None:
        data = pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL)
        with send_lock:
            conn.send_bytes(data)

    try:
        redactor = Redactor(
            config["redaction_key"],
            config["redact_fields"],
            max_output_chars=config["max_output_chars"],
        )
        sink = ClickHouseSink(
            config["url"],
            database=config["database"],
            datadir=config["datadir"],
            redactor=redactor,
            batch_rows=config["batch_rows"],
            flush_interval_s=config["flush_interval_s"],
            max_buffer_rows=config["max_buffer_rows"],
            **config.get("extra", {}),
        )
        sink.start()
        _warm_up()
    except Exception as exc:
        send(("ready", False, f"{type(exc).__name__}: {exc}"))
        return
    send(("ready", True, None))
    last_seq = 0
    state_lock = threading.Lock()
    stop = threading.Event()

    def report() -> None:
        with state_lock:  # the durable map covers every hand-off up to last_seq
            send(("report", last_seq, sink.durable_offsets(), sink.stats()))

    def reporter() -> None:
        while not stop.wait(0.1):
            try:
                report()
            except OSError:
                return

    def serve(kind: str, rid: int, kw: dict[str, Any]) -> None:
        try:
            if kind == "flush":
                value: Any = sink.flush(kw.get("timeout", 10.0))
            elif kind == "read" and kw.get("method") in _READS:
                value = getattr(sink, kw["method"])(**kw.get("kwargs", {}))
            else:
                raise SinkError(f"unknown request {kind!r} to the sink process")
            report()
            send(("reply", rid, True, value))
        except Exception as exc:
            send(("reply", rid, False, SinkError(f"{type(exc).__name__}: {exc}")))

    threading.Thread(target=reporter, daemon=True).start()
    while True:
        try:
            msg = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):  # the parent is gone: keep what we have
            stop.set()
            sink.close(timeout=10)
            return
        kind = msg[0]
        if kind == "add":
            _, seq, items = msg
            with state_lock:
                for item in items:
                    tag = item[0]
                    if tag == "e":
                        _, raw, partition, offset, caps = item
                        # no pydantic model: the row builder reads the record (rows.py)
                        sink.add_event(raw, None, partition=partition, offset=offset, caps=caps)
                    elif tag == "a":
                        sink.add_alert(item[1])
                    elif tag == "p":
                        sink.add_privileged(item[1])
                    elif tag in ("A", "P"):  # as JSON (process.py's _compact)
                        try:
                            if tag == "A":
                                sink.add_alert(DetectionFinding.model_validate_json(item[1]))
                            else:
                                sink.add_privileged(PrivilegedAction.model_validate_json(item[1]))
                        except Exception as exc:
                            log.error(
                                "the sink cannot read a handed-over record: %s",
                                redactor.text(f"{type(exc).__name__}: {exc}", 300),
                            )
                    else:
                        _, jti, jws, claims, root = item
                        sink.add_signal(jti, jws, claims, root_session_id=root)
                last_seq = seq
            report()
        elif kind == "close":
            _, rid, kw = msg
            stop.set()
            sink.close(timeout=kw.get("timeout", 10.0))
            with state_lock:
                send(("report", last_seq, sink.durable_offsets(), sink.stats()))
            send(("reply", rid, True, None))
            return
        else:
            _, rid, kw = msg
            threading.Thread(target=serve, args=(kind, rid, kw), daemon=True).start()
