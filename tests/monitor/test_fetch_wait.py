"""The catch-up fetch wait (``monitor.transport``, point 5) as the consumer applies it.

A fetch that comes back empty while records wait doubles the wait, from 50 ms up to
``MAX_CATCH_UP_WAIT_MS``: Tansu answered every fetch near the end of a ~800,000-record
partition with nothing within 5 or 50 ms and with the records within 200 ms, and a soak's
worker stopped reading at ~3.07M events with the fixed 50 ms. The end-to-end case at tens of
thousands of records is ``test_long_topic.py``; this drives the consumer's two hooks with a
stand-in for aiokafka's fetcher.
"""

from __future__ import annotations

import types
from typing import Any

from faust.types import TP

from monitor.transport import MAX_CATCH_UP_WAIT_MS, Consumer

TOPIC = "agent.actions"


class _Record:
    def __init__(self, offset: int) -> None:
        self.offset = offset


def _consumer(base: int, highwaters: dict[TP, int], read: dict[TP, int]) -> Any:
    fetcher = types.SimpleNamespace(_fetch_max_wait_ms=base)
    fake = types.SimpleNamespace(
        app=types.SimpleNamespace(fetch_max_wait_ms=base),
        _thread=types.SimpleNamespace(_consumer=types.SimpleNamespace(_fetcher=fetcher)),
        _read_offset=read,
        highwater=highwaters.get,
        assignment=lambda: set(highwaters),
        fetcher=fetcher,
    )
    for name in ("_fetcher", "_set_fetch_wait", "_fetch_wait", "_adapt_fetch_wait",
                 "_adapt_fetch_wait_idle"):  # fmt: skip
        setattr(fake, name, types.MethodType(getattr(Consumer, name), fake))
    return fake


def test_empty_fetches_with_records_waiting_lengthen_the_wait_until_records_come() -> None:
    tp = TP(TOPIC, 0)
    c = _consumer(5, {tp: 800_000}, {tp: 760_000})
    waits = []
    for _ in range(8):
        c._adapt_fetch_wait_idle(TOPIC)
        waits.append(c.fetcher._fetch_max_wait_ms)
    assert waits == [50, 100, 200, 400, 800, 1600, 1600, 1600]
    assert MAX_CATCH_UP_WAIT_MS == 1600
    # records again, still 30,000 behind: the wait that works is kept
    c._adapt_fetch_wait({tp: [_Record(770_000)]})
    assert c.fetcher._fetch_max_wait_ms == 1600
    # caught up: the configured wait, for the kill latency
    c._adapt_fetch_wait({tp: [_Record(799_990)]})
    assert c.fetcher._fetch_max_wait_ms == 5


def test_an_empty_fetch_with_nothing_to_read_keeps_the_configured_wait() -> None:
    tp, other = TP(TOPIC, 0), TP("agentwatch.checkpoints", 0)
    # the source partition is read to its end; another topic's partition is behind
    c = _consumer(5, {tp: 1_000, other: 50}, {tp: 999})
    c._adapt_fetch_wait_idle(TOPIC)
    assert c.fetcher._fetch_max_wait_ms == 5


def test_a_configured_wait_at_or_above_the_catch_up_wait_is_left_alone() -> None:
    tp = TP(TOPIC, 0)
    c = _consumer(500, {tp: 800_000}, {tp: 0})
    c._adapt_fetch_wait_idle(TOPIC)
    c._adapt_fetch_wait({tp: [_Record(10)]})
    assert c.fetcher._fetch_max_wait_ms == 500
