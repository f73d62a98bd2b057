"""Row building: the ``events`` columns read from the decoded record (the sink process's way,
without the pydantic model) are the columns read from the validated event, value for value,
and a record in a form pydantic converts takes the model's path."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from monitor.redaction import Redactor
from monitor.sinks.rows import _doc_columns, _model_columns, _Unusual, event_row
from schemas.events import parse_event
from tests.monitor.store_fixtures import sim_events

NOW = datetime(2026, 7, 1, tzinfo=UTC)
BASE: dict[str, Any] = {
    "event_id": "e1",
    "time": "2026-07-01T12:00:00.123Z",
    "kind": "tool_call",
    "tenant": "acme",
    "session": {"id": "s2", "root_id": "s1", "parent_id": "s1", "seq": 4},
    "actor": {
        "agent_id": "a",
        "agent_version": "1.2",
        "workload_id": "spiffe://acme/a",
        "on_behalf_of": "bob",
        "credential": {"iss": "https://idp", "jti": "tok-1"},
    },
    "tool": {"name": "http.post", "server": "web", "call_id": "c1", "outcome": "ok"},
    "resources": [{"type": "db"}, {"environment": "PROD"}, {"environment": "dev"}],
    "transfer": {
        "destination": "https://user:hunter2hunter2@evil.example/x",
        "external": True,
        "bytes": 10,
        "records": 2,
    },
    "intent": {"task": "pay the invoice; api_key=sk-live-0123456789abcdefghijklmnop"},
    "otel": {"trace_id": "t1"},
}


def redactor() -> Redactor:
    return Redactor(b"k" * 32, ["password"])


def same_columns(raw: bytes) -> None:
    ours = _doc_columns(orjson.loads(raw))
    model = _model_columns(parse_event(raw))
    assert ours == model
    assert [type(v) for v in ours] == [type(v) for v in model]
    assert ours[2].utcoffset() == model[2].utcoffset()


def dev_set() -> Path | None:
    here = Path(__file__).resolve()
    rel = "shared/data/agentdojo-dev/events.jsonl"
    return next((p / rel for p in here.parents if (p / rel).exists()), None)


def test_simulated_events_give_the_models_columns() -> None:
    _, events = sim_events(sessions=120, seed=3, attack_ratio=0.5)
    assert len(events) > 600
    for raw, _ in events:
        same_columns(raw)


def test_recorded_events_give_the_models_columns() -> None:
    data = dev_set()
    if data is None:
        pytest.skip("the shared dev set is not available")
    lines = data.read_bytes().splitlines()
    assert len(lines) > 5000
    for raw in lines:
        same_columns(raw)


@pytest.mark.parametrize(
    "change",
    [
        {},
        {"tenant": None, "otel": None, "intent": None, "transfer": None, "resources": None},
        {"kind": "session_start", "tool": None},
        {"time": "2026-07-01T14:00:00+02:00"},
        {"time": 1782907200123},
        {"time": 1782907200.5},
        {"session": {"id": "s1"}},
        {"resources": []},
        {"transfer": {"destination": ""}},
        {"actor": {"agent_id": "a", "credential": None}},
        {"extension": {"password": "x"}},
    ],
)
def test_usual_forms_give_the_models_columns(change: dict[str, Any]) -> None:
    same_columns(orjson.dumps(BASE | change))


@pytest.mark.parametrize(
    "change",
    [
        {"session": {"id": "s1", "seq": 4.0}},
        {"session": {"id": "s1", "seq": "4"}},
        {"transfer": {"external": "true", "bytes": "10"}},
        {"transfer": {"external": 1}},
        {"transfer": {"records": 2.0}},
    ],
)
def test_converted_forms_take_the_models_path(change: dict[str, Any]) -> None:
    raw = orjson.dumps(BASE | change)
    doc = orjson.loads(raw)
    event = parse_event(raw)
    with pytest.raises(_Unusual):
        _doc_columns(doc)
    row = event_row(redactor(), raw, None, 0, 7, None, NOW)
    assert row == event_row(redactor(), raw, event, 0, 7, None, NOW)
    assert row[:18] == _model_columns(event)[:18]


def test_the_row_is_redacted_and_complete() -> None:
    raw = orjson.dumps(BASE)
    row = event_row(redactor(), raw, None, 3, 42, frozenset({"payment", "external_egress"}), NOW)
    text = json.dumps(row, default=str)
    assert "hunter2hunter2" not in text and "sk-live-0123" not in text
    assert row[18] == ["external_egress", "payment"]
    assert row[19:25] == (
        "prod",
        row[20],
        "evil.example",
        True,
        10,
        2,
    )
    assert row[20].startswith("https://user:[REDACTED:url_password#")
    assert row[25].startswith("pay the invoice; api_key=[REDACTED:")
    assert row[26:30] == ("t1", 3, 42, NOW)
    stored = json.loads(row[30])
    assert stored["transfer"]["destination"] == row[20] and stored["intent"]["task"] == row[25]


def test_an_unparseable_record_is_an_error_not_a_row() -> None:
    with pytest.raises(Exception, match="event_id|Field required"):
        event_row(redactor(), b'{"kind": "tool_call"}', None, 0, 1, None, NOW)
