"""One shared copy of the small values many sessions hold: tool names, capability sets.

Each event is parsed into new objects, so a tool name or a capability set that a hundred
thousand live sessions remember would otherwise be a hundred thousand equal copies (a
capability ``frozenset`` is 216 bytes, a tool name ~60). :func:`canonical` returns the first
equal value it was given instead. ``sys.intern`` is not used: interned strings are never freed
on some Python versions, and values an attacker invents must cost nothing lasting.

The table is bounded, in two generations of :data:`GENERATION` values: when the current one
is full it becomes the previous one and the one before is dropped. A value asked for again
while in the previous generation moves to the current one, still the same object, so the
values live sessions keep asking for stay shared, and a value nobody asked for over two
generations is let go. The table used to start over from empty at 65,536 values: values seen
once (~110 a second at 2,991 events/s of simulated traffic: sessions' own tool sequences,
task values, captures) filled it for ten minutes, which a soak's RSS showed as ten minutes
of growth; at 2 x 16,384 the table is at its size after ~5 minutes of that traffic.

>>> a, b = "".join(["send", "_money"]), "".join(["send_", "money"])
>>> a is b, canonical(a) is canonical(b)
(False, True)
"""

from __future__ import annotations

from typing import Any, TypeVar

T = TypeVar("T")

#: values in a generation; the table holds at most two generations
GENERATION = 16_384
MAX_VALUES = 2 * GENERATION
_TABLE: dict[Any, Any] = {}
_PREVIOUS: dict[Any, Any] = {}


def canonical(value: T) -> T:
    """The shared copy of ``value`` (hashable; ``None`` passes through)."""
    global _TABLE, _PREVIOUS
    if value is None:
        return value
    got = _TABLE.get(value)
    if got is None:
        got = _PREVIOUS.get(value, value)
        if len(_TABLE) >= GENERATION:
            _PREVIOUS, _TABLE = _TABLE, {}
        _TABLE[value] = got
    return got  # type: ignore[no-any-return]


def shared_values() -> int:
    """How many values the table holds (both generations)."""
    return len(_TABLE) + len(_PREVIOUS)


#: texts lower-cased recently (task texts: several detectors ask for them on most events)
MAX_LOWERED = 4096
_LOWERED: dict[str, str] = {}


def lowered(text: str) -> str:
    """``text.lower()``, from a bounded cache: a session can keep its task text as declared
    (shared with its scope) instead of a lower-cased copy of its own, and still pay for
    lower-casing only once per task."""
    low = _LOWERED.get(text)
    if low is None:
        if len(_LOWERED) >= MAX_LOWERED:
            _LOWERED.clear()
        low = _LOWERED[text] = text.lower()
    return low
