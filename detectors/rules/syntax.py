"""The condition language's syntax: field types, tokens, the syntax tree and its parser.

A recursive-descent parser over a regular-expression tokenizer; nothing is ever evaluated
as Python. ``detectors.rules.expr`` compiles the tree into closures.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
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
