"""Free C-heap pages given back to the system (``monitor.heap``) at the collector's quiet points."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.collector import CollectorPolicy
from monitor.heap import HeapMetrics, HeapTrimmer


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_trims_at_most_every_interval() -> None:
    now = [0.0]
    trimmer = HeapTrimmer(interval_s=30.0, clock=lambda: now[0])
    if not trimmer.enabled:
        pytest.skip("this C library has no malloc_trim")
    assert trimmer.maybe_trim() is False
    now[0] = 31.0
    assert trimmer.maybe_trim() is True and trimmer.maybe_trim() is False
    now[0] = 62.0
    assert trimmer.maybe_trim() is True and trimmer.trims == 2 and trimmer.seconds > 0


def test_off_when_the_interval_is_zero() -> None:
    trimmer = HeapTrimmer(interval_s=0)
    trimmer.trim()
    assert not trimmer.enabled and trimmer.trims == 0


def test_free_pages_below_a_live_block_go_back() -> None:
    """glibc alone keeps the free space under a block still in use; a trim returns it."""
    trimmer = HeapTrimmer(interval_s=1.0)
    if not trimmer.enabled:
        pytest.skip("this C library has no malloc_trim")
    blocks = [bytearray(4_000) for _ in range(20_000)]  # ~80 MB from malloc (over 512 bytes)
    pinned = blocks[-1]  # the last one stays: the heap's top cannot shrink
    del blocks
    before = _rss_kib()
    trimmer.trim()
    assert _rss_kib() < before - 40_000
    assert len(pinned) == 4_000


def test_the_collector_trims_after_a_full_collection_and_on_its_interval() -> None:
    now = [0.0]
    trimmer = HeapTrimmer(interval_s=30.0, clock=lambda: now[0])
    if not trimmer.enabled:
        pytest.skip("this C library has no malloc_trim")
    policy = CollectorPolicy(full_interval_s=600.0, clock=lambda: now[0], trimmer=trimmer)
    policy.settle(full=True)
    assert trimmer.trims == 1
    policy.settle()
    assert trimmer.trims == 1
    now[0] = 31.0
    policy.settle()
    assert trimmer.trims == 2
    names = {m.name: m.samples[0].value for m in HeapMetrics(trimmer).collect()}
    assert names["agentwatch_heap_trims"] == 2 and names["agentwatch_heap_trim_seconds"] > 0
