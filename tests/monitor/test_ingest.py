"""Record validation and dead-letter headers (pure, no broker)."""

from __future__ import annotations

import json

import pytest

from monitor.ingest import (
    H_CODE,
    H_OFFSET,
    H_PARTITION,
    H_REASON,
    H_TOPIC,
    dead_letter_headers,
    decode_record,
    reason_of,
)
from schemas.errors import InvalidEvent

EVENT = {
    "event_id": "e1",
    "time": "2026-07-01T12:00:00Z",
    "kind": "tool_call",
    "session": {"id": "s1", "seq": 1},
    "actor": {"agent_id": "a"},
    "tool": {"name": "vault.read_secret"},
}
RAW = json.dumps(EVENT).encode()


def test_binary_cloudevents_headers_are_accepted_and_the_body_kept() -> None:
    headers = [("ce_specversion", b"1.0"), ("ce_id", b"x"), ("content-type", b"application/json")]
    d = decode_record(RAW, headers, 10_000)
    assert d.event.event_id == "e1" and d.body is RAW and not d.structured


def test_structured_cloudevents_envelope_is_unwrapped() -> None:
    env = {"specversion": "1.0", "id": "x", "source": "urn:s", "type": "t", "data": EVENT}
    headers = [("content-type", b"application/cloudevents+json; charset=UTF-8")]
    d = decode_record(json.dumps(env).encode(), headers, 10_000)
    assert d.structured and d.event.tool is not None and json.loads(d.body) == EVENT


@pytest.mark.parametrize(
    ("value", "headers", "code", "words"),
    [
        (None, [], "empty", "tombstone"),
        (b"\x00\x01", [], "undecodable", "not UTF-8 JSON"),
        (RAW, [], "oversized", "over the 100-byte limit"),
        (b'{"kind": "tool_call"}', [], "schema", "event_id"),
        (RAW, [("content-type", b"application/avro")], "content_type", "not JSON"),
        (RAW, [("ce_specversion", b"0.3")], "cloudevents", "CloudEvents 1.0"),
    ],
)
def test_invalid_records_say_why(
    value: bytes | None, headers: list[tuple[str, bytes]], code: str, words: str
) -> None:
    limit = 100 if code == "oversized" else 10_000
    with pytest.raises(InvalidEvent) as info:
        decode_record(value, headers, limit)
    assert info.value.code == code
    assert words in info.value.reason


def test_dead_letter_headers_keep_the_originals_and_add_the_reason() -> None:
    original = [("traceparent", b"00-ab"), (H_CODE, b"stale")]
    out = dict(
        dead_letter_headers(
            original,
            code="schema",
            reason="kind: missing",
            topic="t",
            partition=3,
            offset=42,
            failed_at_ms=1,
        )
    )
    assert out["traceparent"] == b"00-ab"
    assert out[H_CODE] == b"schema" and out[H_REASON] == b"kind: missing"
    assert out[H_TOPIC] == b"t" and out[H_PARTITION] == b"3" and out[H_OFFSET] == b"42"


def test_unexpected_errors_never_leak_their_message() -> None:
    code, reason = reason_of(ValueError("secret=hunter2"))
    assert code == "processing_error" and "hunter2" not in reason
