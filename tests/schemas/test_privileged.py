"""The audit record's fast paths give what pydantic gives: ``trusted`` builds what
``model_construct`` builds, ``to_json`` writes the bytes of ``model_dump_json``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from schemas.privileged import AuditCredential, AuditDelegation, AuditScope, PrivilegedAction


def _values(**changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "schema_version": "1",
        "uid": "pa-1",
        "time": datetime(2026, 7, 1, 12, 0, 0, 123000, tzinfo=UTC),
        "tenant": "acme",
        "event_id": "e1",
        "root_session_id": "s1",
        "session_id": "s2",
        "parent_session_id": "s1",
        "seq": 3,
        "kind": "tool_call",
        "tool_name": "vault.read_secret",
        "tool_server": None,
        "tool_call_id": "c1",
        "outcome": "success",
        "argument_names": ["path"],
        "capabilities": ["secret_retrieval"],
        "all_capabilities": ["secret_retrieval"],
        "destinations": [],
        "external": None,
        "environment": "prod",
        "resources": ["vault://kv/prod/x"],
        "agent_id": "billing-agent",
        "agent_version": None,
        "workload_id": "spiffe://acme/a",
        "on_behalf_of": "user:u_1",
        "act_chain": ["spiffe://acme/orchestrator"],
        "credential": AuditCredential.trusted(
            {"iss": "https://sts", "jti": "j1", "scope": None, "exp": 1751371200.0}
        ),
        "scope": AuditScope.trusted(
            {
                "task": "Refund the duplicate charge.",
                "allowed_tools": ["erp.*"],
                "allowed_destinations": None,
                "allowed_environments": ["staging"],
                "max_duration_s": 900.0,
            }
        ),
        "in_scope": False,
        "delegation": None,
        "risk": 0.4213,
        "killed": False,
    }
    values.update(changes)
    return values


def test_trusted_builds_what_model_construct_builds() -> None:
    trusted = PrivilegedAction.trusted(_values())
    constructed = PrivilegedAction.model_construct(**_values())
    assert trusted == constructed
    assert trusted.model_fields_set == constructed.model_fields_set
    assert trusted.model_dump() == constructed.model_dump()
    assert trusted.capabilities == ["secret_retrieval"] and trusted.scope is not None


def test_trusted_with_missing_or_reordered_fields_goes_through_model_construct() -> None:
    values = _values()
    del values["schema_version"]
    record = PrivilegedAction.trusted(values)
    assert record.schema_version == "1"  # the default, filled in by model_construct
    assert "schema_version" not in record.model_fields_set
    reordered = dict(reversed(list(_values().items())))
    assert (
        PrivilegedAction.trusted(reordered).to_json()
        == PrivilegedAction.trusted(_values()).to_json()
    )


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"time": datetime(2026, 7, 1, 12, 0, 0, tzinfo=UTC)},  # no fraction
        {"time": datetime(2026, 7, 1, 12, 0, 0, 1, tzinfo=timezone(timedelta(hours=2)))},
        {"risk": 0.0001, "seq": None, "credential": None, "scope": None},
        {"risk": 1e-05, "killed": True, "in_scope": None},
        {"risk": 123456789.125, "external": True, "destinations": ["https://x.example/a"]},
        {"tool_name": 'é\u2028"\\\n\t\x00\x1f\x7f 😀 <script>', "tenant": ""},
        {"seq": 2**53, "argument_names": []},
        {
            "kind": "delegation",
            "delegation": AuditDelegation.trusted(
                {"child_session_id": "s3", "child_agent_id": None, "scopes_granted": ["a", "b"]}
            ),
        },
    ],
)
def test_to_json_writes_what_model_dump_json_writes(changes: dict[str, Any]) -> None:
    record = PrivilegedAction.trusted(_values(**changes))
    assert record.to_json() == record.model_dump_json(exclude_none=True).encode()
    validated = PrivilegedAction.model_validate(record.model_dump())
    assert validated.to_json() == validated.model_dump_json(exclude_none=True).encode()


def test_to_json_falls_back_to_pydantic_on_what_orjson_refuses() -> None:
    big = PrivilegedAction.trusted(_values(seq=2**70))  # beyond orjson's 64-bit integers
    assert big.to_json() == big.model_dump_json(exclude_none=True).encode()
    surrogate = PrivilegedAction.trusted(_values(tool_name="x\ud800"))
    with pytest.raises(Exception) as orjson_error:  # noqa: PT011 (whatever pydantic raises)
        surrogate.model_dump_json(exclude_none=True)
    with pytest.raises(type(orjson_error.value)):
        surrogate.to_json()
