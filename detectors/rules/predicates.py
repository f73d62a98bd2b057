"""Predicates: one ``field op value`` comparison as a closure, specialised on the field's type.

Specialising once at load time (numbers compare as numbers, sets test membership, text uses
the string operators) keeps the per-event work to a getter call and one comparison.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from typing import Any

from detectors.rules.syntax import (
    ANY,
    BOOL,
    NUM,
    SET,
    Cmp,
    ExprError,
    FieldSpec,
    Lit,
    Pred,
    parse_duration,
)


# -- predicates -----------------------------------------------------------------------------
def _num(text: Any, node: Cmp | None) -> float:
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    d = parse_duration(text)
    if d is None:
        pos = node.value.pos if node is not None and isinstance(node.value, Lit) else 0
        raise ExprError(f"Expected a number or duration, found '{text}'", pos, str(text))
    return d


def _bool(text: str, node: Cmp | None) -> bool:
    low = text.lower()
    if low in ("true", "yes", "1"):
        return True
    if low in ("false", "no", "0"):
        return False
    pos = node.value.pos if node is not None and isinstance(node.value, Lit) else 0
    raise ExprError(f"Expected true or false, found '{text}'", pos, text)


def _as_text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _scalar_eq(v: Any, lit: str) -> bool:
    """``any``-typed equality: numbers compare as numbers, everything else as text."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        d = parse_duration(lit)
        return d is not None and float(v) == d
    return _as_text(v) == lit


def _text_test(op: str, value: Any, node: Cmp | None) -> Callable[[str], bool]:
    """A test on one string for the string operators."""
    if op == "contains":
        return lambda s: value in s
    if op == "icontains":
        low = str(value).lower()
        return lambda s: low in s.lower()
    if op == "startswith":
        return lambda s: s.startswith(value)
    if op == "endswith":
        return lambda s: s.endswith(value)
    if op == "glob":
        return lambda s: fnmatch.fnmatchcase(s, value)
    if op == "iglob":
        low = str(value).lower()
        return lambda s: fnmatch.fnmatchcase(s.lower(), low)
    if op == "regex":
        try:
            rx = re.compile(value)
        except re.error as exc:
            pos = node.value.pos if node is not None and isinstance(node.value, Lit) else 0
            raise ExprError(f"Invalid regular expression '{value}': {exc}", pos, value) from None
        return lambda s: rx.search(s) is not None
    if op == "pmatch":
        prefixes = tuple(value)
        return lambda s: s.startswith(prefixes)
    raise ExprError(f"Unknown operator '{op}'")


def make_predicate(spec: FieldSpec, op: str, value: Any, node: Cmp | None = None) -> Pred:
    """The predicate ``spec op value``, specialised on the field's type once."""
    get = spec.get
    ftype = spec.type
    pos = node.pos if node is not None else 0
    if op == "exists":
        if ftype == SET:
            return lambda x: bool(get(x))
        return lambda x: get(x) is not None
    if isinstance(value, FieldSpec):
        other = value.get
        if op in ("=", "!="):
            want = op == "="
            return lambda x: (
                (a := get(x)) is not None and ((a == other(x)) if want else (a != other(x)))
            )
        if op in ("contains", "in"):
            inner, outer = (get, other) if op == "in" else (other, get)
            return lambda x: (o := outer(x)) is not None and inner(x) in o
        raise ExprError(f"Operator '{op}' cannot compare two fields", pos, op)
    if op in ("=", "!="):
        if ftype == SET:
            raise ExprError(
                f"Field '{spec.name}' is a set: use 'contains', 'intersects' or 'in'",
                pos,
                spec.name,
            )
        want = op == "="
        if ftype == NUM:
            n = _num(value, node)
            return lambda x: (v := get(x)) is not None and ((v == n) is want)
        if ftype == BOOL:
            b = _bool(value, node)
            return lambda x: (v := get(x)) is not None and ((bool(v) == b) is want)
        if ftype == ANY:
            return lambda x: (v := get(x)) is not None and (_scalar_eq(v, value) is want)
        return lambda x: (v := get(x)) is not None and ((v == value) is want)
    if op in ("<", "<=", ">", ">="):
        if ftype not in (NUM, ANY):
            raise ExprError(f"Field '{spec.name}' is a {ftype}: '{op}' needs a number", pos, op)
        n = _num(value, node)
        cmp: Callable[[float], bool] = {
            "<": lambda v: v < n,
            "<=": lambda v: v <= n,
            ">": lambda v: v > n,
            ">=": lambda v: v >= n,
        }[op]
        return lambda x: isinstance(v := get(x), (int, float)) and cmp(v)
    if op in ("in", "intersects"):
        items = frozenset(value)
        if ftype == SET:
            if op == "in":
                return lambda x: bool(v := get(x)) and all(i in items for i in v)
            return lambda x: (v := get(x)) is not None and not items.isdisjoint(v)
        if ftype == NUM:
            nums = frozenset(_num(i, node) for i in value)
            return lambda x: (v := get(x)) is not None and v in nums
        if ftype == ANY:
            return lambda x: (
                (v := get(x)) is not None
                and (
                    any(_scalar_eq(i, s) for s in items for i in v)
                    if isinstance(v, (list, tuple, set, frozenset))
                    else any(_scalar_eq(v, s) for s in items)
                )
            )
        return lambda x: (v := get(x)) is not None and _as_text(v) in items
    if op in ("contains", "icontains") and isinstance(value, tuple):
        items = frozenset(value)
        return lambda x: (v := get(x)) is not None and any(i in v for i in items)
    if ftype == SET and op in ("contains", "icontains"):
        if op == "contains":
            return lambda x: (v := get(x)) is not None and value in v
        low = str(value).lower()
        return lambda x: (v := get(x)) is not None and any(low == i.lower() for i in v)
    if ftype in (NUM, BOOL):
        raise ExprError(f"Field '{spec.name}' is a {ftype}: '{op}' needs text", pos, op)
    test = _text_test(op, value, node)
    if ftype in (SET, ANY):
        return lambda x: (
            (v := get(x)) is not None
            and (
                any(test(_as_text(i)) for i in v)
                if isinstance(v, (list, tuple, set, frozenset))
                else test(_as_text(v))
            )
        )
    return lambda x: (v := get(x)) is not None and test(v)
