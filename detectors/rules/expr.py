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

import fnmatch
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

# -- field types ----------------------------------------------------------------------------
STR, NUM, BOOL, SET, ANY = "string", "number", "boolean", "set", "any"

Getter = Callable[[Any], Any]
Pred = Callable[[Any], bool]


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """A field conditions can read: its name, type, how to get it, what it means."""

    name: str
    type: str
    get: Getter
    doc: str = ""


class ExprError(Exception):
    """A condition does not parse or compile; ``pos`` is the offset, ``lexeme`` the culprit."""

    def __init__(
        self, message: str, pos: int = 0, lexeme: str = "", macro: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.pos = pos
        self.lexeme = lexeme
        #: the macro the error is in (None: in the condition itself)
        self.macro = macro


# -- tokens ---------------------------------------------------------------------------------
class Tok(NamedTuple):
    kind: str  # word | str | op | ( | ) | , | end
    text: str
    pos: int


_TOKEN_RE = re.compile(
    r"""\s*(?:
      (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    | (?P<op>==|!=|<=|>=|=|<|>)
    | (?P<punct>[(),])
    | (?P<word>[^\s=!<>(),'"]+)
    )""",
    re.VERBOSE,
)
_ESC_RE = re.compile(r"\\(.)")


def tokenize(text: str) -> list[Tok]:
    out: list[Tok] = []
    pos = 0
    n = len(text)
    while pos < n:
        if text[pos:].strip() == "":
            break
        m = _TOKEN_RE.match(text, pos)
        if m is None or m.end() == pos:
            bad = text[pos:].lstrip()[:1]
            at = n - len(text[pos:].lstrip())
            raise ExprError(f"Unexpected character '{bad}'", at, bad)
        kind = m.lastgroup or "word"
        raw = m.group(kind)
        start = m.start(kind)
        if kind == "str":
            out.append(Tok("str", _ESC_RE.sub(r"\1", raw[1:-1]), start))
        elif kind == "punct":
            out.append(Tok(raw, raw, start))
        else:
            out.append(Tok(kind, raw, start))
        pos = m.end()
    out.append(Tok("end", "", n))
    return out


# -- syntax tree ----------------------------------------------------------------------------
class Lit(NamedTuple):
    text: str
    quoted: bool
    pos: int


class FieldVal(NamedTuple):
    name: str
    pos: int


class ListVal(NamedTuple):
    items: tuple[Lit, ...]


class Cmp(NamedTuple):
    field: str
    pos: int
    op: str
    value: Lit | FieldVal | ListVal | None


class Ref(NamedTuple):
    name: str
    pos: int


class Not(NamedTuple):
    item: Node


class BoolOp(NamedTuple):
    op: str  # and | or
    items: tuple[Node, ...]


class Const(NamedTuple):
    value: bool


Node = Cmp | Ref | Not | BoolOp | Const

UNARY_OPS = frozenset({"exists"})
LIST_OPS = frozenset({"in", "intersects", "pmatch"})
WORD_OPS = frozenset(
    {"contains", "icontains", "startswith", "endswith", "glob", "iglob", "regex"}
    | LIST_OPS
    | UNARY_OPS
)
SYMBOL_OPS = frozenset({"=", "==", "!=", "<", "<=", ">", ">="})
KEYWORDS = frozenset({"and", "or", "not", "true", "false"}) | WORD_OPS


class Parser:
    """Recursive descent over the tokens of one condition."""

    def __init__(self, text: str) -> None:
        self.toks = tokenize(text)
        self.i = 0

    def parse(self) -> Node:
        if self.toks[0].kind == "end":
            raise ExprError("Empty condition", 0)
        node = self._or()
        tok = self.toks[self.i]
        if tok.kind != "end":
            raise ExprError(f"Unexpected '{tok.text}' (a missing 'and'/'or'?)", tok.pos, tok.text)
        return node

    def _peek(self) -> Tok:
        return self.toks[self.i]

    def _next(self) -> Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def _is(self, word: str) -> bool:
        tok = self.toks[self.i]
        return tok.kind == "word" and tok.text == word

    def _or(self) -> Node:
        items = [self._and()]
        while self._is("or"):
            self._next()
            items.append(self._and())
        return items[0] if len(items) == 1 else BoolOp("or", tuple(items))

    def _and(self) -> Node:
        items = [self._not()]
        while self._is("and"):
            self._next()
            items.append(self._not())
        return items[0] if len(items) == 1 else BoolOp("and", tuple(items))

    def _not(self) -> Node:
        if self._is("not"):
            self._next()
            return Not(self._not())
        return self._primary()

    def _primary(self) -> Node:
        tok = self._next()
        if tok.kind == "(":
            node = self._or()
            close = self._next()
            if close.kind != ")":
                raise ExprError("Missing ')'", close.pos, close.text)
            return node
        if tok.kind != "word":
            what = "end of condition" if tok.kind == "end" else f"'{tok.text}'"
            raise ExprError(f"Expected a field, macro or '(' but found {what}", tok.pos, tok.text)
        if tok.text in ("true", "false"):
            return Const(tok.text == "true")
        if tok.text in KEYWORDS:
            raise ExprError(f"Unexpected keyword '{tok.text}'", tok.pos, tok.text)
        nxt = self._peek()
        if nxt.kind == "op" or (nxt.kind == "word" and nxt.text in WORD_OPS):
            return self._comparison(tok)
        if nxt.kind in ("word", "str") and nxt.text not in ("and", "or"):
            raise ExprError(f"Unknown operator '{nxt.text}' after '{tok.text}'", nxt.pos, nxt.text)
        return Ref(tok.text, tok.pos)

    def _comparison(self, field_tok: Tok) -> Node:
        op_tok = self._next()
        op = "=" if op_tok.text == "==" else op_tok.text
        if op in UNARY_OPS:
            return Cmp(field_tok.text, field_tok.pos, op, None)
        if op in LIST_OPS or (op in ("contains", "icontains") and self._peek().kind == "("):
            return Cmp(field_tok.text, field_tok.pos, op, self._list())
        val = self._next()
        if val.kind == "word" and val.text == "val" and self._peek().kind == "(":
            self._next()
            ref = self._next()
            close = self._next()
            if ref.kind != "word" or close.kind != ")":
                raise ExprError("Expected val(field)", val.pos, val.text)
            return Cmp(field_tok.text, field_tok.pos, op, FieldVal(ref.text, ref.pos))
        if val.kind not in ("word", "str"):
            raise ExprError(f"Expected a value after '{op_tok.text}'", val.pos, val.text)
        if val.kind == "word" and val.text in ("and", "or", "not"):
            raise ExprError(f"Expected a value after '{op_tok.text}'", val.pos, val.text)
        return Cmp(field_tok.text, field_tok.pos, op, Lit(val.text, val.kind == "str", val.pos))

    def _list(self) -> ListVal:
        open_ = self._next()
        if open_.kind != "(":
            raise ExprError("Expected a list '(a, b, ...)'", open_.pos, open_.text)
        items: list[Lit] = []
        while True:
            tok = self._next()
            if tok.kind == ")" and not items:
                return ListVal(())
            if tok.kind not in ("word", "str"):
                raise ExprError("Expected a list item", tok.pos, tok.text)
            items.append(Lit(tok.text, tok.kind == "str", tok.pos))
            sep = self._next()
            if sep.kind == ")":
                return ListVal(tuple(items))
            if sep.kind != ",":
                raise ExprError("Expected ',' or ')' in a list", sep.pos, sep.text)


# -- durations and numbers ------------------------------------------------------------------
_DURATION_RE = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(value: Any) -> float | None:
    """``90`` / ``90s`` / ``15m`` / ``1h`` / ``2d`` -> seconds; None if not a duration."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if not isinstance(value, str):
        return None
    m = _DURATION_RE.match(value.strip())
    if m:
        return float(m.group(1)) * _UNIT[m.group(2)]
    try:
        return float(value)
    except ValueError:
        return None


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

    def could_match(self, kind: str, caps: frozenset[str]) -> bool:
        if self.kinds is not None and kind not in self.kinds:
            return False
        return self.caps is None or bool(self.caps & caps)


#: the field holding an event's kind, and the one holding its capabilities (for indexing)
KIND_FIELD = "evt.kind"
CAPS_FIELD = "caps"


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
            compiled.fn, compiled.kinds, compiled.caps, compiled.refs | {name}, compiled.fields
        )
        self._macro_cache[name] = compiled
        return compiled

    def _node(self, node: Node) -> Compiled:
        if isinstance(node, Const):
            value = node.value
            return Compiled(lambda x: value, None if value else frozenset(), None)
        if isinstance(node, Not):
            inner = self._node(node.item)
            fn = inner.fn
            return Compiled(lambda x: not fn(x), None, None, inner.refs, inner.fields)
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
        get = spec.get
        return Compiled(lambda x: bool(get(x)), None, None, fields=frozenset({spec.name}))

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
        if spec.name == KIND_FIELD and node.op in ("=", "in", "intersects") and value is not None:
            kinds = frozenset([value] if isinstance(value, str) else value)
        if spec.name == CAPS_FIELD and node.op in ("contains", "intersects", "in"):
            caps = frozenset([value] if isinstance(value, str) else value)
            if node.op == "in":
                caps = None  # "caps in (...)": a subset, possibly of caps the event lacks
        return Compiled(fn, kinds, caps, frozenset(refs), frozenset(used))


def _combine(op: str, parts: list[Compiled]) -> Compiled:
    fns = tuple(p.fn for p in parts)
    refs = frozenset().union(*(p.refs for p in parts))
    used = frozenset().union(*(p.fields for p in parts))
    if op == "and":
        kind_sets = [p.kinds for p in parts if p.kinds is not None]
        kinds = frozenset.intersection(*kind_sets) if kind_sets else None
        cap_sets = [p.caps for p in parts if p.caps is not None]
        caps = min(cap_sets, key=len) if cap_sets else None
        return Compiled(_fold(fns, both=True), kinds, caps, refs, used)
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
    return Compiled(_fold(fns, both=False), kinds, caps, refs, used)


def _fold(fns: tuple[Pred, ...], *, both: bool) -> Pred:
    """``f1 and (f2 and (...))`` as nested two-way closures: no generator per evaluation."""
    head, rest = fns[0], fns[1:]
    if not rest:
        return head
    tail = _fold(rest, both=both)
    if both:
        return lambda x: head(x) and tail(x)
    return lambda x: head(x) or tail(x)


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
