"""Privileged-action audit records, on ``agent.privileged`` and in their own table.

Every action the tool catalog classes as privileged (secret retrieval, production write,
external export, payment, credential or permission change, destructive change, code
execution, delegation with scopes, credential issuance) is written here as well, apart from
ordinary events, with who acted (identity, credential, delegation chain) and under what
authority (the session's effective scope and task), so an auditor can answer "which agent
touched production, under which task, on whose behalf" without replaying sessions.

The record is JSON (``PrivilegedAction.to_json``: the bytes ``model_dump_json`` would write),
keyed by root session id, and stable: fields are only ever added. Tool arguments and outputs
are never copied (they may hold secrets); only the argument names are. ``uid`` is
deterministic, so a replayed event gives the same record.

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
from typing import Any, ClassVar, Self, get_args

import orjson
from pydantic import BaseModel, ConfigDict, Field

from schemas.ids import uuid5_text

SCHEMA_VERSION = "1"
_NS = uuid.UUID("0b5f8a59-61d4-4f6e-9a9c-3f0c7d0e2a77")


def privileged_uid(tenant: str | None, event_id: str) -> str:
    """Deterministic record id: one per (tenant, event)."""
    return "pa-" + uuid5_text(_NS, f"{tenant or ''}\x1f{event_id}")


_object_setattr = object.__setattr__


class _Rec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: the field names, in declaration order (the JSON's member order), and those of them
    #: that hold a nested record
    _names: ClassVar[tuple[str, ...]] = ()
    _nested: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls._names = tuple(cls.model_fields)
        cls._nested = tuple(
            name
            for name, info in cls.model_fields.items()
            if any(isinstance(t, type) and issubclass(t, _Rec) for t in get_args(info.annotation))
        )

    @classmethod
    def trusted(cls, values: dict[str, Any]) -> Self:
        """A record from values already of their fields' types: every field, in order (the
        dict becomes the record's; the caller gives it up).

        What ``model_construct`` makes (no validation: the worker builds audit records from a
        validated event), without its per-field look-ups of aliases and defaults: ~1 µs instead
        of ~8 µs for :class:`PrivilegedAction`, built for every privileged action. Anything but
        exactly the model's fields in declaration order goes through ``model_construct``.

        >>> AuditDelegation.trusted({"child_session_id": "s2", "child_agent_id": None,
        ...                          "scopes_granted": ["read"]})
        AuditDelegation(child_session_id='s2', child_agent_id=None, scopes_granted=['read'])
        """
        if tuple(values) != cls._names:
            return cls.model_construct(**values)
        record = cls.__new__(cls)
        _object_setattr(record, "__dict__", values)
        _object_setattr(record, "__pydantic_fields_set__", set(values))
        _object_setattr(record, "__pydantic_extra__", None)
        _object_setattr(record, "__pydantic_private__", None)
        return record

    def _members(self) -> dict[str, Any]:
        """The fields that are not None, in declaration order (pydantic keeps ``__dict__`` in
        that order, and :meth:`trusted` checks it), nested records as such dicts."""
        out = {k: v for k, v in self.__dict__.items() if v is not None}
        for name in self._nested:
            value = out.get(name)
            if value is not None:
                out[name] = value._members()
        return out


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

    def to_json(self) -> bytes:
        """The record as JSON: the bytes of ``model_dump_json(exclude_none=True)``.

        orjson over the field values (~2x faster than pydantic's serializer, measured on the
        simulator's audit records; the worker writes one per privileged action). orjson writes
        datetimes, floats and text as pydantic does (``tests/schemas/test_privileged.py``
        compares them); a value it cannot write (text with a lone surrogate, an integer beyond
        64 bits) falls back to pydantic, which decides as before.
        """
        try:
            return orjson.dumps(self._members(), option=orjson.OPT_UTC_Z)
        except (TypeError, orjson.JSONEncodeError):
            return self.model_dump_json(exclude_none=True).encode()

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
