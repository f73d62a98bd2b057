from __future__ import annotations

import json

import pytest

from schemas.errors import OversizedEvent, SchemaViolation, UndecodableEvent
from schemas.events import ToolCallEvent, event_json_schema, parse_event, validate_event

CONTRACT_EXAMPLE = {
    "schema_version": "1",
    "event_id": "0190a7c2-5b1e-7c3e-9d2a-5b1f3c7e8a90",
    "time": "2026-07-01T12:00:00.123Z",
    "tenant": "acme",
    "kind": "tool_call",
    "session": {"id": "sess-42", "root_id": "sess-7", "parent_id": "sess-7", "seq": 3},
    "actor": {
        "agent_id": "billing-agent",
        "agent_version": "1.4.2",
        "workload_id": "spiffe://prod.acme.com/ns/agents/sa/billing-agent",
        "on_behalf_of": "user:u_123",
        "credential": {
            "iss": "https://sts.acme.com",
            "jti": "b2f0a1c4",
            "scope": "secrets:read",
            "exp": 1751371200,
        },
        "act_chain": ["spiffe://prod.acme.com/ns/agents/sa/orchestrator"],
    },
    "tool": {
        "name": "vault.read_secret",
        "call_id": "call_VSPy",
        "server": "vault-mcp",
        "arguments": {"path": "kv/prod/payments/db-password"},
        "output": "optional: the tool's result as text, possibly truncated",
        "outcome": "success",
    },
    "resources": [
        {
            "type": "secret",
            "uid": "vault://kv/prod/payments/db-password",
            "environment": "prod",
            "classification": "restricted",
        }
    ],
    "transfer": {"destination": "https://paste.example.net/x", "external": True, "bytes": 52428800},
    "intent": None,
    "delegation": None,
    "otel": {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7"},
}


def test_contract_example_parses() -> None:
    ev = parse_event(json.dumps(CONTRACT_EXAMPLE).encode())
    assert isinstance(ev, ToolCallEvent)
    assert ev.root_session_id == "sess-7"
    assert ev.session.seq == 3
    assert ev.tool.arguments == {"path": "kv/prod/payments/db-password"}
    assert ev.transfer is not None and ev.transfer.external is True


def test_unknown_fields_are_tolerated() -> None:
    doc = dict(CONTRACT_EXAMPLE, x_vendor={"a": 1}, session=dict(CONTRACT_EXAMPLE["session"], x=1))
    assert parse_event(json.dumps(doc)).event_id == CONTRACT_EXAMPLE["event_id"]


def test_root_defaults_to_session_id() -> None:
    doc = {
        "event_id": "e",
        "time": "2026-07-01T12:00:00Z",
        "kind": "session_start",
        "session": {"id": "s"},
        "actor": {"agent_id": "a"},
    }
    assert parse_event(json.dumps(doc)).root_session_id == "s"


@pytest.mark.parametrize(
    ("raw", "error", "needle"),
    [
        (b"not json", UndecodableEvent, "JSON"),
        (b"\xff\xfe\x00", UndecodableEvent, "JSON"),
        (b"[1, 2]", SchemaViolation, "object"),
        (b'{"event_id": "e"}', SchemaViolation, "kind"),
        (
            b'{"event_id": "e", "time": "2026-01-01T00:00:00Z", "kind": "tool_call",'
            b' "session": {"id": "s"}, "actor": {"agent_id": "a"}}',
            SchemaViolation,
            "tool",
        ),
        (
            b'{"event_id": "e", "time": "0001-01-01T00:00:00Z", "kind": "session_end",'
            b' "session": {"id": "s"}, "actor": {"agent_id": "a"}}',
            SchemaViolation,
            "time",
        ),
        (
            b'{"event_id": "e", "time": "2026-01-01T00:00:00Z", "kind": "session_end",'
            b' "session": {"id": "s", "seq": "three"}, "actor": {"agent_id": "a"}}',
            SchemaViolation,
            "session.seq",
        ),
    ],
)
def test_invalid_records_say_why(raw: bytes, error: type[Exception], needle: str) -> None:
    with pytest.raises(error) as exc:
        parse_event(raw)
    assert needle in str(exc.value)


def test_oversized_record_is_rejected_before_parsing() -> None:
    with pytest.raises(OversizedEvent, match="over the 100-byte limit"):
        parse_event(b"{" + b" " * 200 + b"}", max_bytes=100)


def test_json_schema_names_required_fields() -> None:
    schema = event_json_schema()
    tool_call = schema["$defs"]["ToolCallEvent"]
    assert {"event_id", "time", "kind", "session", "actor", "tool"} <= set(tool_call["required"])


def _tool_call(**tool: object) -> bytes:
    return json.dumps(
        {
            "event_id": "e",
            "time": "2026-01-01T00:00:00Z",
            "kind": "tool_call",
            "session": {"id": "s"},
            "actor": {"agent_id": "a"},
            "tool": {"name": "x", **tool},
        }
    ).encode()


def test_structured_output_is_kept_as_json_text_and_null_arguments_as_empty() -> None:
    ev = parse_event(_tool_call(output={"rows": [1, "é"]}, arguments=None))
    assert ev.tool.output == '{"rows": [1, "é"]}' and ev.tool.arguments == {}
    ev = parse_event(_tool_call(output="plain", arguments={"k": [1]}))
    assert ev.tool.output == "plain" and ev.tool.arguments == {"k": [1]}
    assert parse_event(_tool_call()).tool.arguments is None  # absent stays absent
    assert validate_event(json.loads(_tool_call(output=3))).tool.output == "3"


def test_arguments_that_are_not_an_object_say_so() -> None:
    with pytest.raises(SchemaViolation) as exc:
        parse_event(_tool_call(arguments=[1]))
    assert str(exc.value) == "tool_call.tool.arguments: Input should be an object"


@pytest.mark.parametrize(
    ("when", "ok"),
    [
        ("2000-01-01T00:00:00Z", True),
        ("1999-12-31T23:30:00-01:00", True),  # 2000-01-01T00:30Z
        ("2000-01-01T00:30:00+01:00", False),  # 1999-12-31T23:30Z
        ("2148-12-31T20:00:00-03:59", True),
        ("2148-12-31T20:00:00-04:00", False),  # 2149-01-01T00:00Z
    ],
)
def test_time_bounds_hold_whatever_the_offset(when: str, ok: bool) -> None:
    raw = _tool_call().replace(b"2026-01-01T00:00:00Z", when.encode())
    if ok:
        ev = parse_event(raw)
        assert ev.ts == ev.time.timestamp() and "ts" in ev.__dict__  # computed once
    else:
        with pytest.raises(SchemaViolation, match="is outside 2000-01-01..2149-01-01"):
            parse_event(raw)


@pytest.mark.parametrize(
    ("when", "reason"),
    [
        (
            "2000-01-01T00:30:00+01:00",
            "tool_call.time: Value error, event time 2000-01-01T00:30:00+01:00 is outside "
            "2000-01-01..2149-01-01",
        ),
        (
            "2149-01-01T00:00:00Z",
            "tool_call.time: Value error, event time 2149-01-01T00:00:00+00:00 is outside "
            "2000-01-01..2149-01-01",
        ),
        (
            1,  # epoch seconds
            "tool_call.time: Value error, event time 1970-01-01T00:00:01+00:00 is outside "
            "2000-01-01..2149-01-01",
        ),
        # pydantic-core checks the bounds before the time zone: a naive time out of bounds
        # is still reported as naive, as a naive time within them is
        ("1990-01-01T00:00:00", "tool_call.time: Input should have timezone info"),
        ("2200-01-01T00:00:00", "tool_call.time: Input should have timezone info"),
        ("2026-01-01T00:00:00", "tool_call.time: Input should have timezone info"),
    ],
)
def test_a_time_out_of_bounds_or_naive_is_rejected_with_its_reason(
    when: str | int, reason: str
) -> None:
    doc = json.loads(_tool_call())
    doc["time"] = when
    for decode in (lambda: parse_event(json.dumps(doc)), lambda: validate_event(doc)):
        with pytest.raises(SchemaViolation) as info:
            decode()
        assert info.value.reason == reason


def test_json_schema_tells_producers_output_is_text() -> None:
    tool = event_json_schema()["$defs"]["Tool"]["properties"]
    assert tool["output"]["anyOf"] == [{"type": "string"}, {"type": "null"}]
    assert tool["arguments"]["anyOf"][0]["type"] == "object"
