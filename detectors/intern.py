"""One shared copy of the small values many sessions hold: tool names, capability sets.

Each event is parsed into new objects, so a tool name or a capability set that a hundred
thousand live sessions remember would otherwise be a hundred thousand equal copies (a
capability ``frozenset`` is 216 bytes, a tool name ~60). :func:`canonical` returns the first
equal value it was given instead. The table is bounded (it starts over when full), so values
an attacker invents cost nothing lasting; ``sys.intern`` is not used for that reason (interned
strings are never freed on some Python versions).

>>> a, b = "".join(["send", "_money"]), "".join(["send_", "money"])
>>> a is b, canonical(a) is canonical(b)
(False, True)
"""

from __future__ import annotations

from typing import Any, TypeVar

T = TypeVar("T")

MAX_VALUES = 65_536
_TABLE: dict[Any, Any] = {}


def canonical(value: T) -> T:
    """The shared copy of ``value`` (hashable; ``None`` passes through)."""
    if value is None:
        return value
    got = _TABLE.get(value)
    if got is None:
        if len(_TABLE) >= MAX_VALUES:
            _TABLE.clear()
        _TABLE[value] = got = value
    return got  # type: ignore[no-any-return]


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
