"""Free C-heap pages given back to the system (``monitor.heap``) at the collector's quiet points."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.collector import CollectorPolicy
from monitor.heap import HeapMetrics, HeapTrimmer, _malloc_trim, fix_mmap_threshold


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


_MMAP_PROBE = """
import ctypes, sys
from monitor.heap import fix_mmap_threshold

class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
        "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Info
if sys.argv[1] == "fixed":
    assert fix_mmap_threshold(131_072, env={})
first = bytearray(4 << 20)  # mmapped by any glibc; freeing it raises a sliding threshold
del first
mapped = libc.mallinfo2().hblkhd
buffer = bytearray(1 << 20)  # a fetch response's size
print(libc.mallinfo2().hblkhd - mapped >= 1 << 20)
"""


@pytest.mark.parametrize(("mode", "mapped"), [("fixed", True), ("glibc", False)])
def test_a_fixed_threshold_keeps_large_buffers_off_the_heap(mode: str, mapped: bool) -> None:
    """After a 4 MiB block is freed, glibc's own threshold serves the next 1 MiB buffer from
    the heap (where it can pin free space); with the threshold fixed it is mapped on its own."""
    if _malloc_trim() is None:
        pytest.skip("not glibc")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    run = subprocess.run(
        [sys.executable, "-c", _MMAP_PROBE, mode],
        capture_output=True, text=True, env=env, check=True, timeout=60,
    )  # fmt: skip
    assert run.stdout.strip() == str(mapped)


def test_the_threshold_is_left_alone_when_asked_or_set_by_the_environment() -> None:
    assert fix_mmap_threshold(0) is False
    assert fix_mmap_threshold(131_072, env={"MALLOC_MMAP_THRESHOLD_": "65536"}) is False
