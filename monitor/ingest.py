"""From a Kafka record to a valid action event, or to a dead-letter record saying why.

A record is accepted as JSON in the value, with or without CloudEvents headers: in binary
mode (``ce_id``, ``ce_type``, ``ce_source``, ``ce_time`` ... headers) the value is the event
as it is; in structured mode (``content-type: application/cloudevents+json``) the event is the
envelope's ``data``. Anything else is rejected with a code and a one-sentence reason, and
goes to the dead-letter topic unchanged: same key, same value, the original headers kept,
and these added:

``agentwatch-error-code``, ``agentwatch-error-reason``, ``agentwatch-source-topic``,
``agentwatch-source-partition``, ``agentwatch-source-offset``, ``agentwatch-failed-at`` (ms).

>>> ev = decode_record(b'{"event_id":"e1","time":"2026-07-01T12:00:00Z","kind":"session_start",'
...                    b'"session":{"id":"s1"},"actor":{"agent_id":"a"}}', [], 1024)
>>> ev.event.event_id, ev.structured
('e1', False)
>>> try:
...     decode_record(b'{"event_id": 1}', [], 1024)
... except InvalidEvent as exc:
...     print(exc.code, exc.reason.split(";")[0].split(" (")[0])
schema kind: Field required
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import orjson

from schemas.errors import InvalidEvent, OversizedEvent, SchemaViolation, UndecodableEvent
from schemas.events import ActionEvent, parse_event, validate_event

Headers = Sequence[tuple[str, bytes]]

H_CODE = "agentwatch-error-code"
H_REASON = "agentwatch-error-reason"
H_TOPIC = "agentwatch-source-topic"
H_PARTITION = "agentwatch-source-partition"
H_OFFSET = "agentwatch-source-offset"
H_FAILED_AT = "agentwatch-failed-at"

#: Reason codes that can appear in ``agentwatch-error-code`` (and the DLQ metric's label).
REASON_CODES = (
    "undecodable",
    "oversized",
    "schema",
    "empty",
    "content_type",
    "cloudevents",
    "processing_error",
)

_MAX_REASON = 1000


@dataclass(frozen=True, slots=True)
class Decoded:
    """A valid event and the JSON bytes it came from (the envelope's data in structured mode)."""

    event: ActionEvent
    body: bytes
    structured: bool = False


def header(headers: Iterable[tuple[str, bytes]] | None, name: str) -> str | None:
    """The first header called ``name`` (case-insensitive), as text."""
    if not headers:
        return None
    for k, v in headers:
        if k.lower() == name:
            return _text(v)
    return None


def _content_type_and_spec(headers: Headers | None) -> tuple[str | None, str | None]:
    """The first ``content-type`` and ``ce_specversion`` headers, in one pass (records in
    CloudEvents binary mode carry six or more headers; two calls of :func:`header` read them
    twice)."""
    content_type = spec = None
    for k, v in headers or ():
        name = k.lower()
        if name == "content-type":
            if content_type is None:
                content_type = _text(v)
        elif name == "ce_specversion" and spec is None:
            spec = _text(v)
    return content_type, spec


def _text(v: bytes | str) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes | bytearray) else str(v)


def decode_record(value: bytes | None, headers: Headers | None, max_bytes: int) -> Decoded:
    """Validate one record's value; raise an :class:`InvalidEvent` with a code and reason."""
    if value is None:
        raise InvalidEvent("record has no value (a tombstone), expected a JSON event", code="empty")
    if len(value) > max_bytes:
        raise OversizedEvent(f"record is {len(value)} bytes, over the {max_bytes}-byte limit")
    content_type, spec = _content_type_and_spec(headers)
    content_type = (content_type or "").split(";")[0].strip().lower()
    if content_type.startswith("application/cloudevents"):
        return _structured(value, content_type, max_bytes)
    if content_type and not (
        content_type == "application/json"
        or content_type.endswith("+json")
        or content_type == "text/json"
    ):
        raise InvalidEvent(
            f"content-type {content_type!r} is not JSON; send application/json events",
            code="content_type",
        )
    if spec is not None and spec != "1.0":
        raise InvalidEvent(
            f"ce_specversion {spec!r} is not supported, expected CloudEvents 1.0",
            code="cloudevents",
        )
    return Decoded(parse_event(value, max_bytes=max_bytes), value)


def _structured(value: bytes, content_type: str, max_bytes: int) -> Decoded:
    if content_type != "application/cloudevents+json":
        raise InvalidEvent(
            f"CloudEvents content-type {content_type!r} is not supported, expected "
            "application/cloudevents+json",
            code="content_type",
        )
    try:
        envelope = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise UndecodableEvent(f"CloudEvents envelope is not JSON: {exc}") from None
    if not isinstance(envelope, dict):
        raise UndecodableEvent("CloudEvents envelope is not a JSON object")
    if envelope.get("specversion") != "1.0":
        raise InvalidEvent(
            f"CloudEvents specversion {envelope.get('specversion')!r} is not supported, "
            "expected 1.0",
            code="cloudevents",
        )
    data = envelope.get("data")
    if not isinstance(data, dict):
        raise SchemaViolation("data: the CloudEvents envelope's data must be the event object")
    body = orjson.dumps(data)
    return Decoded(validate_event(data), body, structured=True)


def reason_of(exc: BaseException) -> tuple[str, str]:
    """``(code, reason)`` for a rejected record; never the record's content."""
    if isinstance(exc, InvalidEvent):
        return exc.code, exc.reason[:_MAX_REASON]
    return "processing_error", f"{type(exc).__name__} while processing the event"


def dead_letter_headers(
    original: Headers | None,
    *,
    code: str,
    reason: str,
    topic: str,
    partition: int,
    offset: int,
    failed_at_ms: int,
) -> list[tuple[str, bytes]]:
    """The original headers plus agentwatch's reason and source position."""
    added = {
        H_CODE: code,
        H_REASON: reason[:_MAX_REASON],
        H_TOPIC: topic,
        H_PARTITION: str(partition),
        H_OFFSET: str(offset),
        H_FAILED_AT: str(failed_at_ms),
    }
    kept = [(k, bytes(v)) for k, v in (original or ()) if k.lower() not in added]
    return kept + [(k, v.encode("utf-8")) for k, v in added.items()]
