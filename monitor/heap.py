"""Free C-heap memory handed back to the operating system (glibc ``malloc_trim``).

Python allocates objects of up to 512 bytes from its own arenas and everything larger (the
tables of big dicts and lists, record values, pickled checkpoint slices, the consumer's and
producers' batches) with the C library's ``malloc``. glibc returns memory to the system only
from the top of its heap: a long-lived block allocated after a burst of short-lived ones (a
checkpoint, a fetch) keeps all the free space below it resident. Over a soak
(``bench.soak``, probe in ``monitor.memtrace``) glibc's "free but kept" bytes went from 33
to 63 MiB in five minutes while its bytes in use stayed at 80-90 MiB: the worker's resident
memory grew with nothing new in it.

``malloc_trim(0)`` gives the free pages inside the heap back (``madvise``), not only its top.
:class:`HeapTrimmer` calls it at the worker's quiet points (the housekeeping tick, with the
collector's :meth:`~monitor.collector.CollectorPolicy.settle`), at most every
``interval_s`` seconds. It walks glibc's free lists: measured in a soak at 1,014 events/s
on the loaded shared machine, 17 trims of a ~150 MiB heap took 0.18 s in all (~11 ms each,
wall clock), every 30 s: ~0.04% of a core (``agentwatch_heap_trim_seconds_total`` counts
them). ``interval_s <= 0``, a C library without ``malloc_trim`` (musl), or a collector policy
that is off (``gc_full_interval_s <= 0``: the trims ride on its quiet points) turns it off.

Large buffers are a second cause. glibc serves a block of 128 KiB or more with its own
``mmap`` at first, given back when freed, but each time such a block is freed it raises that
threshold to the block's size (up to 32 MiB): after the first fetch response, producer batch
or checkpoint slice of a few MiB is freed, every later one comes from the heap, and the small
long-lived blocks allocated while it was in use pin the heap's size once it is freed. At
minute 10 of a soak at 2,991 events/s (``bench.soak``) only 2.2 MiB were mmapped (3 blocks),
and the heap was 178-182 MiB with 75-107 MiB of it free. :func:`fix_mmap_threshold` sets the
threshold once (which also stops glibc from moving it): at 128 KiB the same soak's heap was
126-135 MiB at minute 10, with 39-58 MiB free and 9-18 MiB mmapped, and at 1 MiB 125-134
MiB at minutes 8-9. 128 KiB cost a worker draining a backlog 5-8 µs of CPU per event
(``bench.throughput``: every buffer of 128 KiB-1 MiB mapped, zeroed and unmapped), 1 MiB
nothing measurable. The worker and the store's process set it at their start
(``AGENTWATCH_MALLOC_MMAP_THRESHOLD``, 1 MiB; 0 leaves glibc's sliding threshold, and a
``MALLOC_MMAP_THRESHOLD_`` in the environment, glibc's own variable, wins).

>>> trimmer = HeapTrimmer(interval_s=0)
>>> trimmer.maybe_trim(), trimmer.trims
(False, 0)
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger("agentwatch.worker")


def _libc_function(name: str, argtypes: list[Any]) -> Any | None:
    """A C library function returning ``int``, or None where the C library has none (musl
    has no ``malloc_trim`` nor ``mallopt``)."""
    try:
        fn = getattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), name)
    except (OSError, AttributeError):
        return None
    fn.argtypes = argtypes
    fn.restype = ctypes.c_int
    return fn


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where the C library has none."""
    return _libc_function("malloc_trim", [ctypes.c_size_t])  # type: ignore[no-any-return]


#: ``mallopt``'s parameter number for the mmap threshold (glibc's ``malloc.h``)
_M_MMAP_THRESHOLD = -3


def fix_mmap_threshold(nbytes: int, env: Mapping[str, str] | None = None) -> bool:
    """Serve blocks of ``nbytes`` or more with ``mmap`` from now on, and stop glibc from
    raising that threshold (module docstring). Whether it was set: not when ``nbytes <= 0``,
    when ``MALLOC_MMAP_THRESHOLD_`` is in the environment (glibc has read it already), or
    where the C library has no ``mallopt`` (musl) or refuses the value."""
    env = os.environ if env is None else env
    if nbytes <= 0 or "MALLOC_MMAP_THRESHOLD_" in env:
        return False
    mallopt = _libc_function("mallopt", [ctypes.c_int, ctypes.c_int])
    return mallopt is not None and bool(mallopt(_M_MMAP_THRESHOLD, nbytes))


class HeapTrimmer:
    """Gives glibc's free heap pages back to the system, at most every ``interval_s``."""

    def __init__(
        self, interval_s: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval_s = interval_s
        self.clock = clock
        self._trim = _malloc_trim() if interval_s > 0 else None
        self._last = clock()
        self.trims = 0
        #: seconds spent in ``malloc_trim`` (for the metric)
        self.seconds = 0.0

    @property
    def enabled(self) -> bool:
        return self._trim is not None

    def maybe_trim(self) -> bool:
        """Trim if the interval has passed; whether it did."""
        if self._trim is None:
            return False
        now = self.clock()
        if now - self._last < self.interval_s:
            return False
        self._last = now
        self.trim()
        return True

    def trim(self) -> None:
        if self._trim is None:
            return
        t0 = time.perf_counter()
        self._trim(0)
        spent = time.perf_counter() - t0
        self.seconds += spent
        self.trims += 1
        log.debug("heap trimmed in %.4f s", spent)


class HeapMetrics(Collector):
    """``agentwatch_heap_trims_total`` and ``agentwatch_heap_trim_seconds_total``."""

    def __init__(self, trimmer: HeapTrimmer) -> None:
        self.trimmer = trimmer

    def collect(self) -> Iterator[Metric]:
        t = self.trimmer
        yield CounterMetricFamily(
            "agentwatch_heap_trims",
            "Times the worker gave free C-heap pages back to the system (monitor.heap).",
            value=t.trims,
        )
        yield CounterMetricFamily(
            "agentwatch_heap_trim_seconds", "Time spent giving them back.", value=t.seconds
        )
