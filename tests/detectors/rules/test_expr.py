"""The condition language: parsing, precedence, operators, missing values, indexing hints."""

from __future__ import annotations

from typing import Any

import pytest

from detectors.rules.expr import (
    ANY,
    BOOL,
    NUM,
    SET,
    STR,
    Compiler,
    ExprError,
    FieldSpec,
    parse_duration,
    tokenize,
)

FIELDS = {
    "evt.kind": FieldSpec("evt.kind", STR, lambda x: x.get("kind")),
    "caps": FieldSpec("caps", SET, lambda x: x.get("caps")),
    "name": FieldSpec("name", STR, lambda x: x.get("name")),
    "n": FieldSpec("n", NUM, lambda x: x.get("n")),
    "ok": FieldSpec("ok", BOOL, lambda x: x.get("ok")),
    "other": FieldSpec("other", STR, lambda x: x.get("other")),
    "arg": FieldSpec("arg", ANY, lambda x: x.get("arg")),
}


def compiler(**macros: str) -> Compiler:
    return Compiler(
        FIELDS.get, macros, {"egress": ["send_email", "http.post"], "more": ["egress", "x"]}
    )


def ev(**kw: Any) -> dict[str, Any]:
    return kw


def test_and_binds_tighter_than_or_and_not_applies_to_one_term() -> None:
    c = compiler().compile("name = a or name = b and n > 1")
    assert c.fn(ev(name="a", n=0)) and not c.fn(ev(name="b", n=0)) and c.fn(ev(name="b", n=2))
    c = compiler().compile("not name = a and n > 1")
    assert c.fn(ev(name="b", n=2)) and not c.fn(ev(name="a", n=2))


@pytest.mark.parametrize(
    ("cond", "doc", "want"),
    [
        ("name = send_email", {"name": "send_email"}, True),
        ("name != send_email", {"name": "read"}, True),
        ("name != send_email", {}, False),  # a missing field makes every comparison false
        ("not name = send_email", {}, True),
        ("name in (egress)", {"name": "http.post"}, True),
        ("name in (more)", {"name": "send_email"}, True),  # lists nest
        ("name in ('egress')", {"name": "egress"}, True),  # quoted: the word itself
        ("name contains mail", {"name": "send_email"}, True),
        ("name icontains MAIL", {"name": "send_email"}, True),
        ("name startswith send", {"name": "send_email"}, True),
        ("name endswith _email", {"name": "send_email"}, True),
        ("name glob 'send_*'", {"name": "send_email"}, True),
        ("name iglob 'SEND_*'", {"name": "send_email"}, True),
        ("name pmatch (/etc, /var/log)", {"name": "/var/log/x"}, True),
        ("name regex '^s.*l$'", {"name": "send_email"}, True),
        ("caps contains payment", {"caps": frozenset({"payment"})}, True),
        ("caps intersects (payment, x)", {"caps": frozenset({"x"})}, True),
        ("caps in (a, b)", {"caps": frozenset({"a"})}, True),
        ("caps in (a, b)", {"caps": frozenset({"a", "c"})}, False),
        ("caps exists", {"caps": frozenset()}, False),
        ("n >= 10m", {"n": 600}, True),
        ("n < 1.5", {"n": 1}, True),
        ("n in (1, 2)", {"n": 2.0}, True),
        ("ok", {"ok": True}, True),
        ("ok = false", {"ok": False}, True),
        ("name = val(other)", {"name": "a", "other": "a"}, True),
        ("arg = 100", {"arg": 100.0}, True),
        ("arg contains x", {"arg": ["x", "y"]}, True),
        ("arg > 5", {"arg": "7"}, False),  # text is not a number
        ("true and not false", {}, True),
    ],
)
def test_operators(cond: str, doc: dict[str, Any], want: bool) -> None:
    assert compiler().compile(cond).fn(doc) is want


def test_macros_expand_and_cycles_are_errors() -> None:
    c = compiler(egress_call="name in (egress)").compile("evt.kind = tool_call and egress_call")
    assert c.fn(ev(kind="tool_call", name="send_email")) and "egress_call" in c.refs
    with pytest.raises(ExprError, match=r"refers to itself \(a -> b -> a\)"):
        compiler(a="b", b="a").compile("a")


def test_index_hints_from_kind_and_caps() -> None:
    c = compiler().compile("evt.kind in (tool_call, delegation) and caps contains payment")
    assert c.kinds == {"tool_call", "delegation"} and c.caps == {"payment"}
    c = compiler().compile("caps contains a or caps contains b")
    assert c.kinds is None and c.caps == {"a", "b"}
    assert compiler().compile("caps contains a or name = x").caps is None
    assert compiler().compile("not evt.kind = tool_call").kinds is None
    assert compiler().compile("false and name = x").kinds == frozenset()


@pytest.mark.parametrize(
    ("cond", "message", "pos"),
    [
        ("name = ", "Expected a value after '='", 7),
        ("name == a and", "Expected a field, macro or '(' but found end of condition", 13),
        ("(name = a", "Missing ')'", 9),
        ("name = a b", "Unexpected 'b' (a missing 'and'/'or'?)", 9),
        ("nam = a", "Unknown field 'nam'", 0),
        ("name in a", "Expected a list '(a, b, ...)'", 8),
        ("name regex '('", "Invalid regular expression '('", 11),
        ("n > x", "Expected a number or duration, found 'x'", 4),
        ("__import__('os').system('x')", "Unexpected '(' (a missing 'and'/'or'?)", 10),
    ],
)
def test_errors_say_what_and_where(cond: str, message: str, pos: int) -> None:
    with pytest.raises(ExprError) as info:
        compiler().compile(cond)
    assert info.value.message.startswith(message) and info.value.pos == pos


def test_tokens_and_durations() -> None:
    toks = [(t.kind, t.text) for t in tokenize("a.b!='x y' and(c<=1)")]
    assert toks == [
        ("word", "a.b"),
        ("op", "!="),
        ("str", "x y"),
        ("word", "and"),
        ("(", "("),
        ("word", "c"),
        ("op", "<="),
        ("word", "1"),
        (")", ")"),
        ("end", ""),
    ]
    assert [parse_duration(d) for d in ("90", "90s", "15m", "1h", "2d", "500ms", "x")] == [
        90.0,
        90.0,
        900.0,
        3600.0,
        172800.0,
        0.5,
        None,
    ]


def test_a_condition_specialised_for_a_kind_and_capabilities_tests_only_what_varies() -> None:
    from detectors.rules import fields as F
    from detectors.rules.expr import Compiler, specialize

    c = Compiler(F.resolve, {"egress": "caps contains external_egress"})
    cond = c.compile(
        "evt.kind = tool_call and egress and not (evt.kind = delegation) and session.killed"
    )
    egress = specialize(cond, "tool_call", frozenset({"external_egress"}))
    assert egress.const is None
    assert egress.fn is F.FIELDS["session.killed"].get  # all that is left to test per event
    assert specialize(cond, "tool_call", frozenset({"read"})).const is False
    assert specialize(cond, "delegation", frozenset({"external_egress"})).const is False
    either = c.compile("evt.kind = session_end or caps contains payment")
    assert specialize(either, "session_end", frozenset()).const is True
    assert specialize(either, "tool_call", frozenset({"read"})).const is False
    other = c.compile("tool.name = send_money")
    assert specialize(other, "tool_call", frozenset()) is other  # nothing to decide
