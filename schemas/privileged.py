"""Privileged-action audit records, on ``agent.privileged`` and in their own table.

Every action the tool catalog classes as privileged (secret retrieval, production write,
external export, payment, credential or permission change, destructive change, code
execution, delegation with scopes, credential issuance) is written here as well, apart from
ordinary events, with who acted (identity, credential, delegation chain) and under what
authority (the session's effective scope and task), so an auditor can answer "which agent
touched production, under which task, on whose behalf" without replaying sessions.

The record is JSON (``model_dump_json``), keyed by root session id, and stable: fields are
only ever added. Tool arguments and outputs are never copied (they may hold secrets); only
the argument names are. ``uid`` is deterministic, so a replayed event gives the same record.

>>> rec = PrivilegedAction(uid="pa-1", time="2026-07-01T12:00:00Z", event_id="e1",
...     root_session_id="s1", session_id="s1", kind="tool_call", agent_id="a",
...     capabilities=["secret_retrieval"])
>>> rec.model_dump()["schema_version"], rec.capabilities
('1', ['secret_retrieval'])
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from schemas.ids import uuid5_text

SCHEMA_VERSION = "1"
_NS = uuid.UUID("0b5f8a59-61d4-4f6e-9a9c-3f0c7d0e2a77")


def privileged_uid(tenant: str | None, event_id: str) -> str:
    """Deterministic record id: one per (tenant, event)."""
    return "pa-" + uuid5_text(_NS, f"{tenant or ''}\x1f{event_id}")


class _Rec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AuditCredential(_Rec):
    """The credential presented (claims only)."""

    iss: str | None = None
    jti: str | None = None
    scope: str | None = None
    exp: float | None = None


class AuditScope(_Rec):
    """The session's effective scope when it acted (its intent, narrowed by its parents)."""

    task: str | None = None
    allowed_tools: list[str] | None = None
    allowed_destinations: list[str] | None = None
    allowed_environments: list[str] | None = None
    max_duration_s: float | None = None


class AuditDelegation(_Rec):
    """For delegations: the sub-agent and what it was granted."""

    child_session_id: str | None = None
    child_agent_id: str | None = None
    scopes_granted: list[str] | None = None


class PrivilegedAction(_Rec):
    """One privileged action, for the audit log."""

    schema_version: str = SCHEMA_VERSION
    uid: str
    time: datetime
    tenant: str | None = None
    event_id: str
    root_session_id: str
    session_id: str
    parent_session_id: str | None = None
    seq: int | None = None
    kind: str
    tool_name: str | None = None
    tool_server: str | None = None
    tool_call_id: str | None = None
    outcome: str | None = None
    argument_names: list[str] = Field(default_factory=list)
    #: the privileged capabilities of the action, and all of its capabilities
    capabilities: list[str]
    all_capabilities: list[str] = Field(default_factory=list)
    destinations: list[str] = Field(default_factory=list)
    external: bool | None = None
    environment: str | None = None
    resources: list[str] = Field(default_factory=list)
    agent_id: str
    agent_version: str | None = None
    workload_id: str | None = None
    on_behalf_of: str | None = None
    act_chain: list[str] = Field(default_factory=list)
    credential: AuditCredential | None = None
    scope: AuditScope | None = None
    in_scope: bool | None = None
    delegation: AuditDelegation | None = None
    #: the root session's fused risk after this action, and whether it had been killed
    risk: float = 0.0
    killed: bool = False

    def row(self) -> dict[str, Any]:
        """A flat row for a table: nested objects (credential, scope, delegation) as JSON text.

        Suggested ClickHouse table (``ORDER BY (tenant, root_session_id, time, uid)``,
        ``ReplacingMergeTree`` so a replayed record collapses on ``uid``): the scalar fields
        as columns, lists as ``Array(String)``, ``time`` as ``DateTime64(3, 'UTC')``.
        """
        out = self.model_dump(mode="json")
        for key in ("credential", "scope", "delegation"):
            value = out[key]
            out[key] = json.dumps(value, sort_keys=True) if value is not None else None
        return out
