"""The condition language: a small, safe boolean language over event and session fields.

Falco's syntax, parsed here with a tokenizer and a recursive-descent parser (never ``eval``)
and compiled once into Python closures::

    evt.kind = tool_call
    and caps contains external_egress
    and not dest.host glob "*.acme.com"
    and tool.name in (egress_tools, http.post)
    and not user_known_egress

* ``and``, ``or``, ``not``, parentheses; ``and`` binds tighter than ``or``.
* ``field op value`` with ``=`` ``!=`` ``<`` ``<=`` ``>`` ``>=`` ``in`` ``intersects``
  ``contains`` ``icontains`` ``startswith`` ``endswith`` ``glob`` ``iglob`` ``pmatch``
  ``regex``, and ``field exists``. A value is a bare word, a quoted string, a number or a
  duration (``15m``); a list is ``(a, b, c)`` and may name ``list:`` blocks; ``val(field)``
  compares with another field.
* A bare name is a macro, or a boolean field (``session.killed``); ``true``/``false``.
* A missing field (the event has no tool, no destination...) makes every comparison on it
  false, ``!=`` included, as in Falco: write ``not field = x`` to include missing values.

Besides the closure, compiling tells which event kinds and capabilities a condition can
match at all, so the rule engine only evaluates the rules an event can trigger.

>>> fields = {"evt.kind": FieldSpec("evt.kind", STR, lambda x: x["kind"])}
>>> c = Compiler(fields.get).compile("evt.kind in (tool_call, delegation)")
>>> c.fn({"kind": "tool_call"}), sorted(c.kinds or ())
(True, ['delegation', 'tool_call'])
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from detectors.rules.predicates import make_predicate
from detectors.rules.syntax import (
    ANY,
    BOOL,
    LIST_OPS,
    NUM,
    SET,
    STR,
    BoolOp,
    Cmp,
    Const,
    ExprError,
    FieldSpec,
    FieldVal,
    ListVal,
    Lit,
    Node,
    Not,
    Parser,
    Pred,
    Ref,
    parse_duration,
    tokenize,
)

__all__ = [
    "ANY",
    "BOOL",
    "LIST_OPS",
    "NUM",
    "SET",
    "STR",
    "Compiled",
    "Compiler",
    "ExprError",
    "FieldSpec",
    "Pred",
    "any_of",
    "make_predicate",
    "parse_duration",
    "tokenize",
]


# -- compiling ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Compiled:
    """A compiled condition: the predicate, and what an event needs for it to be true.

    ``kinds``: the event kinds it can match (None = any); ``caps``: the event needs at least
    one of these capabilities (None = no need). ``refs``: macros and lists it used.
    """

    fn: Pred
    kinds: frozenset[str] | None = None
    caps: frozenset[str] | None = None
    refs: frozenset[str] = field(default_factory=frozenset)
    fields: frozenset[str] = field(default_factory=frozenset)
    #: True / False when the condition is a constant (after folding), else None
    const: bool | None = None
    #: ``(kind, caps) -> Compiled``: the condition with its event-kind and capability tests
    #: decided (None: it has none, it is its own specialisation); see :func:`specialize`
    special: Callable[[str, frozenset[str]], Compiled] | None = None

    def could_match(self, kind: str, caps: frozenset[str]) -> bool:
        if self.kinds is not None and kind not in self.kinds:
            return False
        return self.caps is None or bool(self.caps & caps)


#: the field holding an event's kind, and the one holding its capabilities (for indexing)
KIND_FIELD = "evt.kind"
CAPS_FIELD = "caps"


def specialize(c: Compiled, kind: str, caps: frozenset[str]) -> Compiled:
    """``c`` for events of one kind and capability set: its tests of ``evt.kind`` and ``caps``
    decided once and folded away, so the per-event check only tests what varies
    (``tool_call and external_egress and dest.unknown exists`` is ``dest.unknown exists``
    for an egress tool call, and false for any other event)."""
    return c if c.special is None else c.special(kind, caps)


class _Probe:
    """What the ``evt.kind`` and ``caps`` getters read, for deciding them at load time."""

    __slots__ = ("ev", "ctx", "kind", "caps")

    def __init__(self, kind: str, caps: frozenset[str]) -> None:
        self.ev = self.ctx = self
        self.kind = kind
        self.caps = caps


class Compiler:
    """Compiles conditions against fields, macros (name -> text) and lists (name -> items)."""

    def __init__(
        self,
        resolve: Callable[[str], FieldSpec | None],
        macros: Mapping[str, str] | None = None,
        lists: Mapping[str, list[str]] | None = None,
    ) -> None:
        self.resolve = resolve
        self.macros = dict(macros or {})
        self.lists = dict(lists or {})
        self._macro_cache: dict[str, Compiled] = {}
        self._stack: list[str] = []

    def compile(self, text: str) -> Compiled:
        return self._node(Parser(text).parse())

    def expand_list(self, items: Iterable[str], seen: tuple[str, ...] = ()) -> list[str]:
        """List items with named lists expanded (recursively)."""
        out: list[str] = []
        for item in items:
            if item in self.lists and item not in seen:
                out.extend(self.expand_list(self.lists[item], seen + (item,)))
            else:
                out.append(item)
        return out

    def macro(self, name: str) -> Compiled:
        hit = self._macro_cache.get(name)
        if hit is not None:
            return hit
        if name in self._stack:
            chain = " -> ".join(self._stack[self._stack.index(name) :] + [name])
            raise ExprError(f"Macro '{name}' refers to itself ({chain})", 0, name, name)
        self._stack.append(name)
        try:
            compiled = self.compile(self.macros[name])
        except ExprError as exc:
            if exc.macro is None:
                exc.macro = name
            raise
        finally:
            self._stack.pop()
        compiled = Compiled(
            compiled.fn,
            compiled.kinds,
            compiled.caps,
            compiled.refs | {name},
            compiled.fields,
            compiled.const,
            compiled.special,
        )
        self._macro_cache[name] = compiled
        return compiled

    def _node(self, node: Node) -> Compiled:
        if isinstance(node, Const):
            return _constant(node.value)
        if isinstance(node, Not):
            return _negate(self._node(node.item))
        if isinstance(node, BoolOp):
            parts = [self._node(n) for n in node.items]
            return _combine(node.op, parts)
        if isinstance(node, Ref):
            return self._ref(node)
        return self._cmp(node)

    def _ref(self, node: Ref) -> Compiled:
        if node.name in self.macros:
            return self.macro(node.name)
        spec = self.resolve(node.name)
        if spec is None:
            raise ExprError(f"Unknown macro or field '{node.name}'", node.pos, node.name)
        if spec.type not in (BOOL, ANY):
            raise ExprError(
                f"Field '{node.name}' is a {spec.type}, not a boolean: compare it with a value",
                node.pos,
                node.name,
            )
        # a boolean field's getter is the predicate itself (truthy/falsy; None is false)
        return Compiled(spec.get, None, None, fields=frozenset({spec.name}))

    def _cmp(self, node: Cmp) -> Compiled:
        spec = self.resolve(node.field)
        if spec is None:
            raise ExprError(f"Unknown field '{node.field}'", node.pos, node.field)
        refs: set[str] = set()
        used = {spec.name}
        value: Any
        if isinstance(node.value, ListVal):
            names = [i.text for i in node.value.items if not i.quoted and i.text in self.lists]
            refs.update(names)
            items: list[str] = []
            for lit in node.value.items:
                if not lit.quoted and lit.text in self.lists:
                    items.extend(self.expand_list([lit.text]))
                else:
                    items.append(lit.text)
            value = tuple(items)
        if isinstance(node.value, FieldVal):
            other = self.resolve(node.value.name)
            if other is None:
                raise ExprError(
                    f"Unknown field '{node.value.name}'", node.value.pos, node.value.name
                )
            used.add(other.name)
            value = other
        elif isinstance(node.value, Lit):
            value = node.value.text
        elif node.value is None:
            value = None
        fn = make_predicate(spec, node.op, value, node)
        kinds = caps = None
        special = None
        if spec.name in (KIND_FIELD, CAPS_FIELD) and not isinstance(value, FieldSpec):

            def special(kind: str, caps: frozenset[str]) -> Compiled:
                return _constant(bool(fn(_Probe(kind, caps))))

        if spec.name == KIND_FIELD and node.op in ("=", "in", "intersects") and value is not None:
            kinds = frozenset([value] if isinstance(value, str) else value)
        if spec.name == CAPS_FIELD and node.op in ("contains", "intersects", "in"):
            caps = frozenset([value] if isinstance(value, str) else value)
            if node.op == "in":
                caps = None  # "caps in (...)": a subset, possibly of caps the event lacks
        return Compiled(fn, kinds, caps, frozenset(refs), frozenset(used), None, special)


def _constant(value: bool) -> Compiled:
    """``true`` / ``false``; a condition that is always false can match no event kind."""
    return Compiled(lambda x: value, None if value else frozenset(), None, const=value)


def _negate(inner: Compiled) -> Compiled:
    """``not inner``, folded if it is a constant."""
    if inner.const is not None:
        folded = _constant(not inner.const)
        return Compiled(folded.fn, folded.kinds, None, inner.refs, inner.fields, folded.const)
    fn = inner.fn
    special = None
    if inner.special is not None:
        part = inner.special

        def special(kind: str, caps: frozenset[str]) -> Compiled:
            return _negate(part(kind, caps))

    return Compiled(lambda x: not fn(x), None, None, inner.refs, inner.fields, None, special)


def _combine(op: str, parts: list[Compiled]) -> Compiled:
    """``and`` / ``or`` of parts, with constants folded away (``and not user_known_x`` where
    the macro is ``never_true`` costs nothing per event)."""
    refs = frozenset().union(*(p.refs for p in parts))
    used = frozenset().union(*(p.fields for p in parts))
    absorbing = op != "and"  # false absorbs an "and", true absorbs an "or"
    if any(p.const is absorbing for p in parts):
        c = _constant(absorbing)
        return Compiled(c.fn, c.kinds, None, refs, used, c.const)
    parts = [p for p in parts if p.const is None]
    if not parts:
        c = _constant(not absorbing)
        return Compiled(c.fn, c.kinds, None, refs, used, c.const)
    fns = tuple(p.fn for p in parts)
    special = None
    if any(p.special is not None for p in parts):
        kept = tuple(parts)

        def special(kind: str, caps: frozenset[str]) -> Compiled:
            return _combine(op, [specialize(p, kind, caps) for p in kept])

    if op == "and":
        kind_sets = [p.kinds for p in parts if p.kinds is not None]
        kinds = frozenset.intersection(*kind_sets) if kind_sets else None
        cap_sets = [p.caps for p in parts if p.caps is not None]
        caps = min(cap_sets, key=len) if cap_sets else None
        return Compiled(_fold(fns, both=True), kinds, caps, refs, used, None, special)
    kinds = (
        frozenset().union(*(p.kinds for p in parts if p.kinds is not None))
        if all(p.kinds is not None for p in parts)
        else None
    )
    caps = (
        frozenset().union(*(p.caps for p in parts if p.caps is not None))
        if all(p.caps is not None for p in parts)
        else None
    )
    return Compiled(_fold(fns, both=False), kinds, caps, refs, used, None, special)


def any_of(fns: tuple[Pred, ...]) -> Pred | None:
    """One predicate true when any of ``fns`` is (None for none): a batch's event rules
    checked with one call, as most events trigger none of them."""
    return _fold(fns, both=False) if fns else None


def _fold(fns: tuple[Pred, ...], *, both: bool) -> Pred:
    """``f1 and f2 and ...`` as one closure of up to four parts (nested beyond): one call per
    condition instead of one per part, and no generator per evaluation. Each spelled-out
    arity saves a Python call per extra part (about 0.1 µs each, several per event)."""
    if len(fns) > 4:
        return _fold((*fns[:3], _fold(fns[3:], both=both)), both=both)
    if len(fns) == 1:
        return fns[0]
    if len(fns) == 2:
        a, b = fns
        return (lambda x: a(x) and b(x)) if both else (lambda x: a(x) or b(x))
    if len(fns) == 3:
        a, b, c = fns
        return (lambda x: a(x) and b(x) and c(x)) if both else (lambda x: a(x) or b(x) or c(x))
    a, b, c, d = fns
    if both:
        return lambda x: a(x) and b(x) and c(x) and d(x)
    return lambda x: a(x) or b(x) or c(x) or d(x)
