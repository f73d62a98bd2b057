"""Where a kill signal's time goes inside the worker (a diagnostic for ``bench.latency``).

``AGENTWATCH_KILL_TRACE=/path/trace.jsonl`` (off unless set; nothing is patched then) makes the
worker write one JSON line per deciding event of a ``bench.latency`` probe session (record key
``lat-*``, step ``seq`` 3) with wall-clock stamps of each hop:

* ``fetch_sent`` / ``fetch_done``: the consumer's last fetch request before the record was
  handed over (in faust's consumer thread), ``handoff``: the thread returned it to ``getmany``;
* ``main``: the event loop's consumer received it, ``proc``: the record's processing began,
  ``decided`` / ``signed``: the kill decision and its signed record;
* ``send_called`` / ``send_returned``: handed to the kill producer, ``req``: the kill
  producer's produce request started, ``acked``: the broker's acknowledgement was seen;

and one line per event-loop callback that ran longer than ``SLOW_S`` (``type: slow``, with
the coroutine chain it ran) and per collector settle, tick or checkpoint snapshot longer than
1 ms (``type: part``), so a slow kill can be matched with what held the loop meanwhile.
``python -m monitor.killtrace TRACE latency.json`` prints the split per hop.

It wraps library methods (aiokafka's fetcher and sender, faust's consumer thread, asyncio's
``Handle._run``): for diagnosis only, never in production.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
from typing import IO, Any

import orjson

SLOW_S = 0.002
_lock = threading.Lock()
_out: IO[bytes] | None = None
TRACE: dict[bytes, dict[str, Any]] = {}
LAST_FETCH: dict[str, float] = {}
CURRENT: dict[str, dict[str, Any] | None] = {"record": None, "kill": None}
REQUESTS: dict[int, float] = {}


def _write(obj: dict[str, Any]) -> None:
    if _out is None:
        return
    with _lock:
        _out.write(orjson.dumps(obj) + b"\n")
        _out.flush()


def _probe(key: bytes | None, value: bytes | None) -> bool:
    return key is not None and key.startswith(b"lat-") and b'"seq":3}' in (value or b"")


def _wrap_async(owner: Any, name: str, before: Any = None, after: Any = None) -> None:
    orig = getattr(owner, name)

    async def wrapper(*a: Any, **kw: Any) -> Any:
        ctx = before(*a, **kw) if before is not None else None
        result = await orig(*a, **kw)
        if after is not None:
            after(ctx, result, *a, **kw)
        return result

    setattr(owner, name, wrapper)


def install_from_env() -> None:
    """Install the trace if ``AGENTWATCH_KILL_TRACE`` is set (before the Monitor is built)."""
    path = os.environ.get("AGENTWATCH_KILL_TRACE", "")
    if path:
        install(path)


def install(path: str) -> None:
    global _out
    _out = open(path, "ab")  # noqa: SIM115 (open for the life of the process)
    from aiokafka.consumer import fetcher as fetcher_module
    from aiokafka.producer import sender as sender_module
    from faust.transport.drivers import aiokafka as driver

    from monitor import collector, durability, outputs, pipeline, runtime, transport

    def fetch_done(sent: float, result: Any, *a: Any, **kw: Any) -> None:
        LAST_FETCH.update(sent=sent, done=time.time())

    _wrap_async(fetcher_module.Fetcher, "_proc_fetch_request", lambda *a: time.time(), fetch_done)

    def handed_over(called: float, records: Any, *a: Any, **kw: Any) -> None:
        now = time.time()
        for recs in records.values():
            for rec in recs:
                if _probe(rec.key, rec.value):
                    TRACE[rec.key] = {
                        "sid": rec.key.decode(),
                        "ts": rec.timestamp / 1000,
                        "fetch_sent": LAST_FETCH.get("sent"),
                        "fetch_done": LAST_FETCH.get("done"),
                        "handoff": now,
                        "batch": sum(len(x) for x in records.values()),
                    }

    _wrap_async(driver.AIOKafkaConsumerThread, "_fetch_records", lambda *a, **k: 0.0, handed_over)

    def received(_: Any, result: Any, *a: Any) -> None:
        now = time.time()
        for recs in (result[0] if result else {}).values():
            for rec in recs:
                t = TRACE.get(rec.key) if _probe(rec.key, rec.value) else None
                if t is not None:
                    t["main"] = now

    _wrap_async(transport.Consumer, "_wait_next_records", None, received)

    on_record = runtime.Monitor.on_record

    def traced_on_record(
        self: Any, partition: int, offset: int, key: Any, value: Any, h: Any
    ) -> None:
        t = TRACE.pop(key, None) if _probe(key, value) else None
        if t is not None:
            t["proc"] = time.time()
        CURRENT["record"] = t
        on_record(self, partition, offset, key, value, h)
        CURRENT["record"] = None

    setattr(runtime.Monitor, "on_record", traced_on_record)  # noqa: B010
    kill = runtime.Monitor.kill

    def traced_kill(self: Any, decision: Any, now: float) -> None:
        t = CURRENT["record"]
        if t is not None:
            t["decided"] = time.time()
        kill(self, decision, now)
        if t is not None:
            t["signed"] = time.time()
            CURRENT["kill"] = t

    setattr(runtime.Monitor, "kill", traced_kill)  # noqa: B010

    def request(self: Any, *a: Any) -> None:
        REQUESTS[id(self)] = time.time()

    _wrap_async(sender_module.Sender, "_send_produce_req", request)
    send = outputs.Outputs.send

    async def traced_send(self: Any, item: Any) -> Any:
        t = CURRENT["kill"] if item.kind == "kill" else None
        if t is not None:
            CURRENT["kill"] = None
            t["send_called"] = time.time()
        fut = await send(self, item)
        if t is not None:
            t["send_returned"] = time.time()
            sender = id(self.kill_producer._sender)

            def acked(_: Any, t: dict[str, Any] = t) -> None:
                t["acked"] = time.time()
                t["req"] = REQUESTS.get(sender)
                _write({"type": "kill", **t})

            fut.add_done_callback(acked)
        return fut

    setattr(outputs.Outputs, "send", traced_send)  # noqa: B010

    def timed(owner: Any, name: str) -> None:
        orig = getattr(owner, name)

        def wrapper(*a: Any, **kw: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return orig(*a, **kw)
            finally:
                d = time.perf_counter() - t0
                if d > 0.001:
                    what = f"{owner.__name__}.{name}"
                    _write({"type": "part", "what": what, "dur": d, "t0": time.time() - d})

        setattr(owner, name, wrapper)

    timed(collector.CollectorPolicy, "settle")
    timed(runtime.Monitor, "tick")
    timed(durability.Durability, "_snapshot")
    timed(pipeline.Pipeline, "tick")
    _trace_slow_callbacks()


def _trace_slow_callbacks() -> None:
    main_thread = threading.get_ident()
    run = asyncio.events.Handle._run
    clock = time.perf_counter

    def traced_run(self: Any) -> None:
        if threading.get_ident() != main_thread:
            run(self)
            return
        t0 = clock()
        run(self)
        d = clock() - t0
        if d > SLOW_S:
            _write({"type": "slow", "t0": time.time() - d, "dur": d, "what": _what(self)})

    setattr(asyncio.events.Handle, "_run", traced_run)  # noqa: B010


def _what(handle: Any) -> str:
    """The coroutine chain a task step ran (innermost last), or the callback."""
    owner = getattr(handle._callback, "__self__", None)
    if not isinstance(owner, asyncio.Task):
        return repr(handle)[:200]
    coro: Any = owner.get_coro()
    parts: list[str] = []
    while coro is not None and len(parts) < 8:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None)
        name = getattr(coro, "__qualname__", type(coro).__name__)
        parts.append(f"{name}@{frame.f_lineno}" if frame is not None else name)
        coro = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None)
    return " > ".join(parts[-3:])


# -- report ---------------------------------------------------------------------------------
HOPS = (
    ("broker ack -> fetched", "acked_by_broker", "fetch_done"),
    ("fetched -> handed over", "fetch_done", "handoff"),
    ("handed over -> event loop", "handoff", "main"),
    ("event loop -> processing", "main", "proc"),
    ("processing -> decided", "proc", "decided"),
    ("decided -> signed", "decided", "signed"),
    ("signed -> produce request", "signed", "req"),
    ("produce request -> probe read", "req", "received"),
)


def report(trace: str, result: str) -> list[tuple[str, list[float]]]:
    """Per hop, the sorted durations (ms) of the kills found in both files."""
    samples = {s["sid"]: s for s in json.loads(open(result).read()).get("samples", [])}
    rows: dict[str, list[float]] = {name: [] for name, _, _ in HOPS}
    for line in open(trace, "rb"):
        t = orjson.loads(line)
        s = samples.get(t.get("sid", ""))
        if t["type"] != "kill" or s is None or t.get("req") is None:
            continue
        stamps = {**t, "acked_by_broker": s["acked"], "received": s["received"]}
        for name, a, b in HOPS:
            rows[name].append(1000 * (stamps[b] - stamps[a]))
    return [(name, sorted(v)) for name, v in rows.items()]


def main(argv: list[str]) -> None:
    for name, v in report(argv[0], argv[1]):
        if v:
            q = [v[min(len(v) - 1, int(p * len(v)))] for p in (0.5, 0.9, 0.99)]
            print(f"{name:32s} n={len(v):4d}  p50 {q[0]:7.2f}  p90 {q[1]:7.2f}  p99 {q[2]:7.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
