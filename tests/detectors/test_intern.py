"""The shared-value table (``detectors.intern``): bounded, and values in use stay shared."""

from __future__ import annotations

from detectors import intern
from detectors.intern import canonical


def _fresh(text: str) -> str:
    return "".join(list(text))  # an equal string that is a new object


def test_values_in_use_stay_shared_across_generations() -> None:
    hot = canonical(_fresh("read_file"))
    for i in range(5 * intern.GENERATION):
        canonical(f"once-{i}")  # values seen once: an attacker's, or each session's own
        if i % 1000 == 0:
            assert canonical(_fresh("read_file")) is hot  # asked for again: the same object
        assert intern.shared_values() <= intern.MAX_VALUES
    assert canonical(_fresh("read_file")) is hot


def test_a_value_nobody_asks_for_is_let_go_after_two_generations() -> None:
    old = canonical(_fresh("send_money"))
    for i in range(2 * intern.GENERATION + 1):
        canonical(f"filler-{i}")
    again = canonical(_fresh("send_money"))
    assert again == old and again is not old
