"""A mapping for a handful of entries, at a third of a dict's memory.

Per-session detector state is mostly tiny mappings (one rule's partial matches, the one
credential a session was issued...), and a Python dict costs 184 to 232 bytes before its
first entry is paid for: at a hundred thousand live sessions with a dozen of them each, that
is most of a worker's memory. :class:`SmallMap` keeps keys and values alternating in one list
(56 bytes plus 16 per entry) and answers the dict operations the detectors use, in the same
order and with the same results as a dict (insertion order; setting a present key keeps its
place). Lookups scan the keys (in C, ``list.index``): right for the few entries these maps
hold, and still fine at the few hundred their bounds allow.

>>> m = SmallMap()
>>> m["b"] = 1
>>> m["a"] = 2
>>> m["b"] = 3
>>> list(m.items()), m.get("c", 0), "a" in m, len(m)
([('b', 3), ('a', 2)], 0, True, 2)
>>> del m["b"]
>>> dict(m)
{'a': 2}
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

_MISSING: Any = object()
_EVEN = slice(0, None, 2)
_ODD = slice(1, None, 2)
_get = list.__getitem__
_set = list.__setitem__
_del = list.__delitem__
_len = list.__len__
_init = list.__init__
#: up to this many entries a map grows to exactly its size (see ``__setitem__``)
EXACT_ENTRIES = 8


class SmallMap(list):  # type: ignore[type-arg]
    """A small insertion-ordered mapping stored as ``[key, value, key, value, ...]``."""

    __slots__ = ()

    def __init__(self, items: Mapping[Any, Any] | Iterable[tuple[Any, Any]] = ()) -> None:
        super().__init__()
        pairs = items.items() if isinstance(items, Mapping) else items
        for k, v in pairs:
            self[k] = v

    def _find(self, key: Any) -> int:
        """Position of ``key`` in the list (-1 if absent)."""
        try:
            return 2 * _get(self, _EVEN).index(key)
        except ValueError:
            return -1

    # -- the dict protocol ----------------------------------------------------------------
    def __getitem__(self, key: Any) -> Any:
        i = self._find(key)
        if i < 0:
            raise KeyError(key)
        return _get(self, i + 1)

    def __setitem__(self, key: Any, value: Any) -> None:
        i = self._find(key)
        if i < 0:
            self._append(key, value)
        else:
            _set(self, i + 1, value)

    def _append(self, key: Any, value: Any) -> None:
        """Add an entry. A small map is re-made at exactly its new size: ``list.extend``
        over-allocates (a second entry would reserve room for four), and most maps here stay
        at one to three entries, so exact sizes save 32-48 bytes each for a copy of a few
        pointers; past ``EXACT_ENTRIES`` the list grows as lists do (amortised)."""
        n = _len(self)
        if n < 2 * EXACT_ENTRIES:
            _init(self, (*list.__iter__(self), key, value))
        else:
            self.extend((key, value))

    def __delitem__(self, key: Any) -> None:
        i = self._find(key)
        if i < 0:
            raise KeyError(key)
        _del(self, slice(i, i + 2))

    def __contains__(self, key: object) -> bool:
        return self._find(key) >= 0

    def __len__(self) -> int:
        return _len(self) // 2

    def __bool__(self) -> bool:
        return _len(self) > 0

    def __iter__(self) -> Iterator[Any]:
        return iter(_get(self, _EVEN))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SmallMap | dict):
            return dict(self.items()) == dict(other.items())
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"SmallMap({dict(self.items())!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_from_flat, (list(list.__iter__(self)),))

    def keys(self) -> list[Any]:
        return _get(self, _EVEN)  # type: ignore[no-any-return]

    def values(self) -> list[Any]:
        return _get(self, _ODD)  # type: ignore[no-any-return]

    def items(self) -> list[tuple[Any, Any]]:
        return list(zip(_get(self, _EVEN), _get(self, _ODD), strict=True))

    def get(self, key: Any, default: Any = None) -> Any:
        i = self._find(key)
        return default if i < 0 else _get(self, i + 1)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        i = self._find(key)
        if i >= 0:
            return _get(self, i + 1)
        self._append(key, default)
        return default

    def pop(self, key: Any, default: Any = _MISSING) -> Any:  # type: ignore[override]
        i = self._find(key)
        if i < 0:
            if default is _MISSING:
                raise KeyError(key)
            return default
        value = _get(self, i + 1)
        _del(self, slice(i, i + 2))
        return value

    def first_key(self) -> Any:
        """The oldest key (``next(iter(m))`` without copying the keys)."""
        return _get(self, 0)


def _from_flat(flat: list[Any]) -> SmallMap:
    m = SmallMap()
    _init(m, flat)  # exactly its size (``extend`` would over-allocate)
    return m
