"""Python's cyclic garbage collector, kept off the worker's hot path.

The worker keeps every open session in memory: hundreds of thousands of long-lived container
objects (steps, members, per-detector state), plus faust's, aiokafka's and the detectors'
own. CPython's collector runs a *full* collection each time the objects that survived young
collections reach a quarter of the heap, and a full collection walks every tracked object:
measured on the throughput bench (30,000 events, ~4,000 sessions), 8 of them took ~1 s of
a 15 s run, charged to whatever allocated at that moment (usually parsing), and each one
stalls the event loop (kill signals included) for 100-300 ms.

Sessions hold no reference cycles (they are freed by reference counting when evicted), so
the objects that survive a while need no cyclic collection. :class:`CollectorPolicy` moves
them out of the collector's sight at quiet points (``gc.freeze()``, between two records):
after start-up and restore, and after every checkpoint, having first collected the young
generations (so short-lived cycles are still reclaimed). Frozen objects are still freed by
reference counting; only a cycle that formed among frozen objects would wait, so every
``full_interval_s`` the policy unfreezes and runs one full collection (one pause of the same
size as the collector's own, but once per interval instead of every few seconds). The
worker settles at every housekeeping tick (``tick_interval_s``), and the young generation's
threshold is raised (``YOUNG_THRESHOLD``): most short-lived objects are freed by reference
counting before a collection would have visited them. Measured on the same bench: collector
time from ~45 to ~10 µs per event, and no pause over ~10 ms instead of 100-300 ms.
``full_interval_s <= 0`` leaves the collector as CPython runs it.

>>> policy = CollectorPolicy(full_interval_s=0)
>>> policy.settle(); policy.full_collections
0
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.heap import HeapTrimmer

log = logging.getLogger("agentwatch.worker")

#: allocations between two automatic young collections (CPython's default is 700)
YOUNG_THRESHOLD = 10_000


class CollectorPolicy:
    """When the worker freezes surviving objects and when it collects them all."""

    def __init__(
        self,
        full_interval_s: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
        trimmer: HeapTrimmer | None = None,
    ) -> None:
        self.full_interval_s = full_interval_s
        self.clock = clock
        #: gives free C-heap pages back at the same quiet points (``monitor.heap``)
        self.trimmer = trimmer
        self._last_full = clock()
        #: seconds spent in full collections (for the metric)
        self.full_seconds = 0.0
        self.full_collections = 0

    @property
    def enabled(self) -> bool:
        return self.full_interval_s > 0

    def settle(self, *, full: bool = False) -> None:
        """At a quiet point: collect the young generations (or everything, when ``full`` or
        the interval has passed), then freeze what survived."""
        if not self.enabled:
            return
        if gc.get_threshold()[0] < YOUNG_THRESHOLD:
            gc.set_threshold(YOUNG_THRESHOLD, *gc.get_threshold()[1:])
        now = self.clock()
        if full or now - self._last_full >= self.full_interval_s:
            t0 = time.perf_counter()
            gc.unfreeze()
            found = gc.collect()
            spent = time.perf_counter() - t0
            self.full_seconds += spent
            self.full_collections += 1
            self._last_full = now
            log.debug("full garbage collection: %d unreachable, %.3f s", found, spent)
            if self.trimmer is not None:
                self.trimmer.trim()  # what the full collection freed, straight away
        else:
            gc.collect(1)
            if self.trimmer is not None:
                self.trimmer.maybe_trim()
        gc.freeze()


class CollectorMetrics(Collector):
    """``agentwatch_gc_*``: full collections and their time (read at scrape; not the number of
    frozen objects: ``gc.get_freeze_count()`` walks them all)."""

    def __init__(self, policy: CollectorPolicy) -> None:
        self.policy = policy

    def collect(self) -> Iterator[Metric]:
        p = self.policy
        yield CounterMetricFamily(
            "agentwatch_gc_full_collections",
            "Full garbage collections the worker ran (monitor.collector).",
            value=p.full_collections,
        )
        yield CounterMetricFamily(
            "agentwatch_gc_full_collection_seconds",
            "Time spent in those full collections.",
            value=p.full_seconds,
        )
