"""Privileged actions come out of the pipeline as audit records, with intent and identity."""

from __future__ import annotations

import json

from detectors.registry import build_engine
from monitor.pipeline import Pipeline, PipelineSettings
from schemas.privileged import PrivilegedAction
from tests.detectors.rules.helpers import call, events


def records(evs: list[object], **settings: object) -> list[PrivilegedAction]:
    pipe = Pipeline(build_engine(), PipelineSettings(**settings))  # type: ignore[arg-type]
    out = [o for i, e in enumerate(evs) for o in pipe.process(e, now=float(i))]  # type: ignore[arg-type]
    return [o for o in out if isinstance(o, PrivilegedAction)]


def test_privileged_actions_carry_scope_identity_and_capabilities() -> None:
    evs = events(
        {
            "kind": "session_start",
            "intent": {"task": "Pay the invoice", "allowed_tools": ["read_*", "send_money"]},
        },
        call("read_file"),
        call(
            "send_money",
            tool={"arguments": {"recipient": "GB00X", "amount": 5, "password": "hunter2"}},
            actor={
                "agent_id": "billing",
                "workload_id": "spiffe://acme/billing",
                "on_behalf_of": "user:u1",
                "credential": {"iss": "https://sts", "jti": "tok", "scope": "payments:write"},
            },
        ),
        {"kind": "delegation", "delegation": {"child_session_id": "c", "scopes_granted": ["x"]}},
        {"kind": "delegation", "delegation": {"child_session_id": "d"}},
    )
    recs = records(evs)
    assert [(r.kind, r.capabilities) for r in recs] == [
        ("tool_call", ["payment"]),
        ("delegation", ["delegation"]),
    ]
    pay = recs[0]
    assert (pay.event_id, pay.session_id, pay.seq, pay.tool_name) == ("t-2", "s1", 2, "send_money")
    assert (pay.agent_id, pay.workload_id, pay.on_behalf_of) == (
        "billing",
        "spiffe://acme/billing",
        "user:u1",
    )
    assert pay.credential is not None and pay.credential.jti == "tok"
    assert pay.scope is not None and pay.scope.task == "Pay the invoice"
    assert pay.scope.allowed_tools == ["read_*", "send_money"] and pay.in_scope is True
    assert pay.destinations == ["GB00X"]
    assert pay.argument_names == ["amount", "password", "recipient"]
    assert "hunter2" not in pay.model_dump_json()  # argument values never copied


def test_out_of_scope_privileged_action_is_marked() -> None:
    evs = events(
        {"kind": "session_start", "intent": {"allowed_tools": ["read_*"]}},
        call("vault.read_secret"),
    )
    [rec] = records(evs)
    assert rec.in_scope is False and rec.capabilities == ["secret_retrieval"]


def test_records_are_stable_json_and_can_be_switched_off() -> None:
    evs = events(call("vault.read_secret"))
    [rec] = records(evs)
    again = records(events(call("vault.read_secret")))[0]
    assert rec.uid == again.uid and rec.uid.startswith("pa-")
    doc = json.loads(rec.model_dump_json())
    assert doc["schema_version"] == "1" and doc["time"] == "2026-07-01T12:00:00Z"
    assert PrivilegedAction.model_validate_json(rec.model_dump_json()) == rec
    assert records(evs, privileged_log=False) == []
    assert records(events(call("read_file"), call("get_webpage"))) == []


def test_rows_are_flat_for_a_table() -> None:
    [rec] = records(
        events(call("vault.read_secret", actor={"agent_id": "a", "credential": {"jti": "t"}}))
    )
    row = rec.row()
    assert row["credential"] == '{"exp": null, "iss": null, "jti": "t", "scope": null}'
    assert row["scope"] is None and row["capabilities"] == ["secret_retrieval"]
    assert all(not isinstance(v, dict) for v in row.values())
