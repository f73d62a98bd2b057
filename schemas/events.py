"""Action events: what agent gateways and SDKs produce on ``agent.actions``.

The wire contract is ``contracts.md`` ("Action event"). Required: ``event_id``, ``time``,
``kind``, ``session.id``, ``actor.agent_id``; everything else is optional, and unknown extra
fields are ignored (producers may extend the event). Events are a union tagged on ``kind``.

>>> ev = parse_event(b'{"event_id": "e1", "time": "2026-07-01T12:00:00Z", "kind": "tool_call",'
...                  b' "session": {"id": "s1"}, "actor": {"agent_id": "a"},'
...                  b' "tool": {"name": "vault.read_secret"}}')
>>> ev.kind, ev.tool.name, ev.root_session_id
('tool_call', 'vault.read_secret', 's1')
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar, overload

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    GetPydanticSchema,
    PlainValidator,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    field_validator,
)
from pydantic_core import core_schema

from schemas.errors import OversizedEvent, SchemaViolation, UndecodableEvent

SCHEMA_VERSION = "1"

#: Event kinds of the contract.
EventKind = Literal["session_start", "tool_call", "delegation", "credential_issued", "session_end"]
EVENT_KINDS: tuple[str, ...] = (
    "session_start",
    "tool_call",
    "delegation",
    "credential_issued",
    "session_end",
)

#: Event times outside these bounds are rejected as absurd (clock bugs, fuzzed input). The
#: upper bound stays below 2149-06-06, the end of ClickHouse's ``Date`` (the event store
#: partitions by day): a later event would be stored in a wrapped-around partition that
#: replay's time-range reads never find (found by the fuzz test).
MIN_EVENT_TIME = datetime(2000, 1, 1, tzinfo=UTC)
MAX_EVENT_TIME = datetime(2149, 1, 1, tzinfo=UTC)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: The event time: aware, within the bounds above. The bounds are checked in pydantic-core
#: (a Python validator cost ~0.5 µs per event); :func:`_describe` words their error as the
#: validator did.
_Time = Annotated[
    AwareDatetime,
    Field(ge=MIN_EVENT_TIME, lt=MAX_EVENT_TIME),
    WithJsonSchema({"format": "date-time", "type": "string"}),
]
_TIME_BOUND_ERRORS = frozenset({"greater_than_equal", "less_than"})
_time_adapter: TypeAdapter[datetime] = TypeAdapter(AwareDatetime)

_Id = Annotated[str, Field(min_length=1, max_length=512)]
_Name = Annotated[str, Field(min_length=1, max_length=1024)]

# Validation in pydantic-core rather than in Python where it comes to the same: a Python
# validator is called for each value it sees (~0.5 µs; the output and arguments of 63% of the
# simulator's events went through one). With the cheaper time check and ``ts`` below, parsing
# the simulator's events and reading ``ts`` went from ~13.7 to ~10.8 µs per event (in
# isolation; inside the worker, with cold caches, every cost is 2-3x that). The results and
# the error reasons are the same (checked against the previous schema on ~22,000 valid,
# fuzzed and mutated records, JSON and CloudEvents paths).


def _json_text(v: Any) -> str:
    # Producers sometimes send structured results; the contract says text.
    if isinstance(v, (dict, list, int, float, bool)):
        return json.dumps(v, ensure_ascii=False, default=str)
    raise ValueError("Input should be a valid string")  # not JSON: only from Python callers


#: Text; any other JSON value as its JSON text. A string is taken by the first member (in
#: pydantic-core); only other values call ``_json_text``. Producers are told "text".
_Text = Annotated[
    str | Annotated[str, PlainValidator(_json_text)] | None,
    Field(union_mode="left_to_right"),
    WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "null"}]}),
]

#: An object, with ``null`` read as an empty one (a missing member stays None): a union whose
#: second member only takes None; its error is the object's, as a plain dict field's would be.
_Arguments = Annotated[
    dict[str, Any] | None,
    GetPydanticSchema(
        lambda _type, _handler: core_schema.union_schema(
            [
                core_schema.dict_schema(core_schema.str_schema(), core_schema.any_schema()),
                core_schema.no_info_after_validator_function(
                    lambda _none: {}, core_schema.none_schema()
                ),
            ],
            mode="left_to_right",
            custom_error_type="dict_type",
        ),
        lambda _schema, handler: handler(
            core_schema.nullable_schema(
                core_schema.dict_schema(core_schema.str_schema(), core_schema.any_schema())
            )
        ),
    ),
]

_T = TypeVar("_T")


class _once(Generic[_T]):  # noqa: N801 (used as a decorator, like cached_property)
    """``functools.cached_property`` without its lock (Python 3.11 takes an RLock on every
    first access: ~0.3 µs per event for ``ts``); events are read on one thread at a time."""

    def __init__(self, fn: Callable[[Any], _T]) -> None:
        self.fn = fn
        self.name = fn.__name__
        self.__doc__ = fn.__doc__

    @overload
    def __get__(self, obj: None, cls: type | None = None) -> _once[_T]: ...
    @overload
    def __get__(self, obj: object, cls: type | None = None) -> _T: ...
    def __get__(self, obj: object | None, cls: type | None = None) -> _T | _once[_T]:
        if obj is None:
            return self
        value = obj.__dict__[self.name] = self.fn(obj)  # read from __dict__ from now on
        return value


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="ignore", frozen=True, str_strip_whitespace=False, ignored_types=(_once,)
    )


class SessionRef(_Model):
    """Where the event belongs: its session, the root of its delegation tree, its order."""

    id: _Id
    root_id: _Id | None = None
    parent_id: _Id | None = None
    seq: Annotated[int, Field(ge=0, le=2**53)] | None = None


class Credential(_Model):
    """The credential the actor presented (claims only, never the token itself)."""

    iss: str | None = None
    sub: str | None = None
    jti: str | None = None
    scope: str | None = None
    aud: str | list[str] | None = None
    exp: int | float | None = None
    client_id: str | None = None


class Actor(_Model):
    """Who acted: the agent, its workload identity, the principal it acts for."""

    agent_id: _Id
    agent_version: str | None = None
    workload_id: str | None = None
    on_behalf_of: str | None = None
    credential: Credential | None = None
    act_chain: list[str] = Field(default_factory=list)


class Tool(_Model):
    """The tool call: name, arguments, and (optionally) its result as text."""

    name: _Name
    call_id: str | None = None
    server: str | None = None
    #: ``null`` is read as ``{}``
    arguments: _Arguments = None
    #: a structured result is kept as its JSON text
    output: _Text = None
    outcome: str | None = None
    category: str | None = None


class Resource(_Model):
    """A resource the action touched (OCSF ``resources[]`` shape)."""

    type: str | None = None
    uid: str | None = None
    name: str | None = None
    environment: str | None = None
    classification: str | None = None
    owner: str | None = None


class Transfer(_Model):
    """Data leaving (or entering) through this action."""

    destination: str | None = None
    external: bool | None = None
    bytes: Annotated[int, Field(ge=0)] | None = None
    records: Annotated[int, Field(ge=0)] | None = None


class Intent(_Model):
    """The task-scoped authority a session was granted at ``session_start``."""

    task: str | None = None
    allowed_tools: list[str] | None = None
    allowed_destinations: list[str] | None = None
    allowed_environments: list[str] | None = None
    max_duration_s: Annotated[float, Field(gt=0)] | None = None


class Delegation(_Model):
    """A sub-agent spawned by this session (it joins the same root session)."""

    child_session_id: str | None = None
    child_agent_id: str | None = None
    scopes_granted: list[str] | None = None


class CredentialIssued(_Model):
    """A credential minted for the session (kind ``credential_issued``)."""

    jti: str | None = None
    iss: str | None = None
    sub: str | None = None
    scope: str | None = None
    aud: str | list[str] | None = None
    exp: int | float | None = None
    ttl_s: float | None = None
    token_type: str | None = None
    bound_session_id: str | None = None


class Otel(_Model):
    """Trace context, to join with OpenTelemetry GenAI spans."""

    trace_id: str | None = None
    span_id: str | None = None


class _EventBase(_Model):
    schema_version: str = SCHEMA_VERSION
    event_id: _Id
    time: _Time
    tenant: str | None = None
    category: str | None = None
    session: SessionRef
    actor: Actor
    tool: Tool | None = None
    resources: list[Resource] = Field(default_factory=list)
    transfer: Transfer | None = None
    intent: Intent | None = None
    delegation: Delegation | None = None
    credential_issued: CredentialIssued | None = None
    otel: Otel | None = None

    @field_validator("resources", mode="before")
    @classmethod
    def _resources_list(cls, v: Any) -> Any:
        return [] if v is None else v

    @property
    def root_session_id(self) -> str:
        """The root of the delegation tree (``session.root_id``, defaulting to ``session.id``)."""
        return self.session.root_id or self.session.id

    @_once
    def ts(self) -> float:
        """Event time as epoch seconds (computed once: detectors ask for it several times).

        ``(time - epoch).total_seconds()`` is what ``datetime.timestamp()`` computes for an
        aware time, at a third of its cost with pydantic's ``TzInfo`` (0.5 vs 1.6 µs)."""
        return (self.time - _EPOCH).total_seconds()


class SessionStartEvent(_EventBase):
    """A session begins; ``intent`` states what it was asked and allowed to do."""

    kind: Literal["session_start"]


class ToolCallEvent(_EventBase):
    """The agent called a tool."""

    kind: Literal["tool_call"]
    tool: Tool


class DelegationEvent(_EventBase):
    """The agent spawned a sub-agent (``delegation`` names the child)."""

    kind: Literal["delegation"]


class CredentialIssuedEvent(_EventBase):
    """A credential was issued to the session."""

    kind: Literal["credential_issued"]


class SessionEndEvent(_EventBase):
    """The session ended."""

    kind: Literal["session_end"]


ActionEvent = Annotated[
    SessionStartEvent | ToolCallEvent | DelegationEvent | CredentialIssuedEvent | SessionEndEvent,
    Field(discriminator="kind"),
]

#: Strings are not looked up in pydantic-core's cache of recent strings (~0.5 µs an event): an
#: event's values are mostly new (ids, times, outputs), and the ones that repeat (tool and
#: agent names) are shared by the detectors' own tables (``detectors.intern``).
_adapter: TypeAdapter[ActionEvent] = TypeAdapter(
    ActionEvent, config=ConfigDict(cache_strings=False)
)

#: Default maximum size of one record (bytes); larger records go to the dead-letter topic.
DEFAULT_MAX_EVENT_BYTES = 1_048_576


def _time_reason(value: Any) -> str:
    """Why an event time pydantic-core found out of bounds was rejected, as the event's Python
    validator said it: pydantic-core checks the bounds before the time zone, so a naive time
    out of bounds is reported as naive, as it was (only called for such a time)."""
    try:
        v = _time_adapter.validate_python(value)  # what the event's validation parsed it to
    except ValidationError as exc:
        return str(exc.errors(include_url=False)[0]["msg"])
    return (
        f"Value error, event time {v.isoformat()} is outside "
        f"{MIN_EVENT_TIME:%Y-%m-%d}..{MAX_EVENT_TIME:%Y-%m-%d}"
    )


def _describe(err: ValidationError) -> str:
    parts = []
    for e in err.errors(include_url=False)[:5]:
        loc = ".".join(str(p) for p in e.get("loc", ()))
        msg = e.get("msg", "invalid")
        if e.get("type") == "union_tag_not_found":
            loc, msg = "kind", "Field required (one of " + ", ".join(EVENT_KINDS) + ")"
        elif e.get("type") in _TIME_BOUND_ERRORS and len(e["loc"]) == 2 and e["loc"][1] == "time":
            msg = _time_reason(e.get("input"))
        elif e.get("type") == "model_attributes_type" and not loc:
            msg = "expected a JSON object"
        parts.append(f"{loc or '<root>'}: {msg}")
    more = err.error_count() - len(parts)
    if more > 0:
        parts.append(f"(+{more} more)")
    return "; ".join(parts)


def parse_event(raw: bytes | str, *, max_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> ActionEvent:
    """Decode and validate one record, or raise an ``InvalidEvent`` subclass saying why."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    if len(raw) > max_bytes:
        raise OversizedEvent(f"record is {len(raw)} bytes, over the {max_bytes}-byte limit")
    try:
        return _adapter.validate_json(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        if first.get("type") == "json_invalid":
            raise UndecodableEvent(f"not UTF-8 JSON: {first.get('msg')}") from None
        raise SchemaViolation(_describe(exc)) from None
    except RecursionError:
        raise SchemaViolation("event is nested too deeply") from None


def validate_event(doc: dict[str, Any]) -> ActionEvent:
    """Validate an already decoded event document."""
    try:
        return _adapter.validate_python(doc)
    except ValidationError as exc:
        raise SchemaViolation(_describe(exc)) from None
    except RecursionError:
        raise SchemaViolation("event is nested too deeply") from None


def event_json_schema() -> dict[str, Any]:
    """The JSON Schema of the action event, for producers."""
    schema = _adapter.json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "agentwatch action event"
    schema["description"] = (
        "One agent action on the agent.actions topic (schema_version 1). Unknown extra "
        "fields are ignored."
    )
    return schema
