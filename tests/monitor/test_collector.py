"""The worker's garbage-collection policy: freeze survivors, collect everything now and then."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from monitor.collector import YOUNG_THRESHOLD, CollectorMetrics, CollectorPolicy


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture(autouse=True)
def restore_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def cycle() -> weakref.ref[Node]:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


def test_settle_freezes_what_survived_and_raises_the_young_threshold() -> None:
    policy = CollectorPolicy(full_interval_s=600, clock=Clock())
    kept = [Node() for _ in range(100)]
    gc.unfreeze()
    policy.settle()
    assert gc.get_freeze_count() >= len(kept)
    assert gc.get_threshold()[0] == YOUNG_THRESHOLD


def test_young_cycles_are_collected_before_freezing() -> None:
    policy = CollectorPolicy(full_interval_s=600, clock=Clock())
    ref = cycle()
    policy.settle()
    assert ref() is None


def test_a_cycle_among_frozen_objects_waits_for_the_full_collection() -> None:
    clock = Clock()
    policy = CollectorPolicy(full_interval_s=600, clock=clock)
    a, b = Node(), Node()
    a.other, b.other = b, a
    ref = weakref.ref(a)
    policy.settle()  # both alive: frozen
    del a, b  # now cyclic garbage, out of the collector's sight
    clock.now = 599.0
    policy.settle()
    assert ref() is not None
    clock.now = 600.0
    policy.settle()
    assert ref() is None
    assert policy.full_collections == 1 and policy.full_seconds > 0


def test_settle_full_collects_at_once() -> None:
    policy = CollectorPolicy(full_interval_s=600, clock=Clock())
    a = Node()
    a.other = a
    ref = weakref.ref(a)
    policy.settle()
    del a
    policy.settle(full=True)
    assert ref() is None


def test_disabled_leaves_the_collector_alone() -> None:
    gc.unfreeze()
    before = gc.get_threshold()
    policy = CollectorPolicy(full_interval_s=0)
    keep = [Node() for _ in range(10)]
    policy.settle(full=True)
    assert gc.get_freeze_count() == 0 and gc.get_threshold() == before
    assert policy.full_collections == 0 and keep


def test_metrics_report_full_collections() -> None:
    policy = CollectorPolicy(full_interval_s=600, clock=Clock())
    policy.settle(full=True)
    registry = CollectorRegistry()
    registry.register(CollectorMetrics(policy))
    text = generate_latest(registry).decode()
    assert "agentwatch_gc_full_collections_total 1.0" in text
    seconds = next(
        line
        for line in text.splitlines()
        if line.startswith("agentwatch_gc_full_collection_seconds_total ")
    )
    assert float(seconds.split()[1]) > 0
