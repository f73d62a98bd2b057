"""The fields rule conditions and outputs can read, each with its type and meaning.

A field is read from a :class:`Subject`: one event, what the catalog made of it, the root
session's state (delegation tree, scopes, kill) and the rules' own facts about the tree
(credentials issued, destinations used). ``agentwatch rules fields`` prints this table.

Missing values are ``None`` (a comparison on them is false). Scope fields say "allowed"
when the session declared nothing: an undeclared scope restricts nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterator
from typing import Any

from detectors.base import EventContext
from detectors.catalog import host_of
from detectors.rules.expr import ANY, BOOL, NUM, SET, STR, FieldSpec
from detectors.session import Scope, SessionState, glob_match
from detectors.smallmap import SmallMap
from schemas.events import CredentialIssued


class Subject:
    """What one rule evaluation looks at (built once per event, shared by every rule)."""

    __slots__ = ("ctx", "ev", "session", "facts", "member", "sid", "_memo")

    def __init__(self, ctx: EventContext, session: SessionState, facts: SmallMap) -> None:
        self.ctx = ctx
        ev = self.ev = ctx.event
        self.session = session
        self.facts = facts
        sid = ev.session.id
        member = self.member = session.members.get(sid)
        #: the event's session id, as the session's member holds it: rule state that keeps
        #: it shares that string rather than holding the event's copy (68 bytes or more)
        self.sid: str = member.session_id if member is not None else sid
        self._memo: dict[str, Any] | None = None

    def memo(self, key: str, make: Callable[[], Any]) -> Any:
        memo = self._memo
        if memo is None:
            memo = self._memo = {}
        elif key in memo:
            return memo[key]
        value = memo[key] = make()
        return value

    @property
    def scope(self) -> Scope:
        return self.member.scope if self.member is not None else Scope()


FIELDS: dict[str, FieldSpec] = {}


def _f(name: str, ftype: str, doc: str) -> Callable[[Callable[[Subject], Any]], None]:
    def register(get: Callable[[Subject], Any]) -> None:
        FIELDS[name] = FieldSpec(name, ftype, get, doc)

    return register


def resolve(name: str) -> FieldSpec | None:
    """The field called ``name`` (``tool.args.<argument>`` is a field for any argument)."""
    spec = FIELDS.get(name)
    if spec is not None:
        return spec
    if name.startswith("tool.args.") and len(name) > 10:
        key = name[10:]
        return FieldSpec(name, ANY, lambda x: _arg(x, key), f"argument '{key}' of the tool call")
    return None


def _arg(x: Subject, key: str) -> Any:
    tool = x.ev.tool
    if tool is None or not tool.arguments:
        return None
    return tool.arguments.get(key)


def _text_set(value: Any) -> frozenset[str]:
    if not value:
        return frozenset()
    if isinstance(value, str):
        return frozenset(value.replace(",", " ").split())
    return frozenset(str(v) for v in value)


# -- the event ------------------------------------------------------------------------------
_f("evt.kind", STR, "event kind: session_start, tool_call, delegation, credential_issued, ...")(
    lambda x: x.ev.kind
)
_f("evt.id", STR, "the event's id")(lambda x: x.ev.event_id)
_f("evt.time", NUM, "event time, epoch seconds")(lambda x: x.ctx.ts)
_f("evt.late", BOOL, "the event arrived after later events of its session")(lambda x: x.ctx.late)
_f("evt.tenant", STR, "tenant")(lambda x: x.ev.tenant)
_f("evt.category", STR, "the producer's own category for the call")(
    lambda x: x.ev.category or (x.ev.tool.category if x.ev.tool else None)
)
_f("caps", SET, "capabilities of the action (tool catalog)")(lambda x: x.ctx.caps)
_f("privileged", BOOL, "the action is privileged (goes to the privileged-action log)")(
    lambda x: x.ctx.cls.privileged
)

# -- the tool call --------------------------------------------------------------------------
_f("tool.name", STR, "tool name")(lambda x: x.ev.tool.name if x.ev.tool else None)
_f("tool.server", STR, "MCP server / tool provider")(
    lambda x: x.ev.tool.server if x.ev.tool else None
)
_f("tool.call_id", STR, "tool call id")(lambda x: x.ev.tool.call_id if x.ev.tool else None)
_f("tool.outcome", STR, "success, error, ...")(lambda x: x.ev.tool.outcome if x.ev.tool else None)
_f("tool.output", STR, "the tool's result as text (never put it in an output)")(
    lambda x: x.ev.tool.output if x.ev.tool else None
)
_f("tool.args", STR, "the arguments as JSON text (for contains/regex)")(
    lambda x: x.memo(
        "args", lambda: json.dumps(x.ev.tool.arguments, default=str) if x.ev.tool else None
    )
)
_f("tool.arg_names", SET, "names of the arguments")(
    lambda x: frozenset(x.ev.tool.arguments or ()) if x.ev.tool else None
)

# -- who ------------------------------------------------------------------------------------
_f("actor.agent_id", STR, "the acting agent")(lambda x: x.ev.actor.agent_id)
_f("actor.agent_version", STR, "its version")(lambda x: x.ev.actor.agent_version)
_f("actor.workload_id", STR, "its workload identity (SPIFFE id)")(lambda x: x.ev.actor.workload_id)
_f("actor.on_behalf_of", STR, "the principal it acts for")(lambda x: x.ev.actor.on_behalf_of)
_f("actor.act_chain", SET, "the delegation chain of actors")(
    lambda x: frozenset(x.ev.actor.act_chain)
)


def _cred(x: Subject) -> Any:
    return x.ev.actor.credential


_f("cred.jti", STR, "id of the credential presented")(lambda x: c.jti if (c := _cred(x)) else None)
_f("cred.iss", STR, "its issuer")(lambda x: c.iss if (c := _cred(x)) else None)
_f("cred.scopes", SET, "its scopes")(lambda x: _text_set(c.scope) if (c := _cred(x)) else None)
_f("cred.exp", NUM, "its expiry (epoch s): its own, or from when it was issued")(
    lambda x: _cred_exp(x)
)
_f("cred.expired", BOOL, "the credential had expired at the event's time")(
    lambda x: (e := _cred_exp(x)) is not None and x.ctx.ts > e
)
_f("cred.expired_age", NUM, "seconds since the credential expired (negative: still valid)")(
    lambda x: x.ctx.ts - e if (e := _cred_exp(x)) is not None else None
)
_f("cred.issued_to", STR, "the session the credential was issued to (if seen)")(
    lambda x: i[0] if (i := _issued(x)) else None
)
_f("cred.foreign", BOOL, "the credential was issued to another session of the tree")(
    lambda x: (i := _issued(x)) is not None and i[0] != x.ev.session.id
)


def _issued(x: Subject) -> tuple[str, float | None] | None:
    c = _cred(x)
    if c is None or not c.jti:
        return None
    hit = x.facts.get("issued", {}).get(c.jti)
    return (hit[0], hit[1]) if hit else None


def _cred_exp(x: Subject) -> float | None:
    c = _cred(x)
    if c is None:
        return None
    if c.exp is not None:
        return float(c.exp)
    i = _issued(x)
    return i[1] if i else None


# -- where it goes --------------------------------------------------------------------------
_f("dest", STR, "the call's (first outward) destination")(lambda x: x.ctx.cls.destination)
_f("dest.all", SET, "every destination of the call")(lambda x: frozenset(x.ctx.cls.destinations))
_f("dest.host", STR, "host of the destination")(
    lambda x: host_of(d) if (d := x.ctx.cls.destination) else None
)
_f("dest.hosts", SET, "hosts of every destination")(
    lambda x: frozenset(h for d in x.ctx.cls.destinations if (h := host_of(d)))
)
_f("dest.external", BOOL, "a destination is outside the organisation's domains")(
    lambda x: x.ctx.cls.external
)
_f("dest.count", NUM, "number of destinations")(lambda x: len(x.ctx.cls.destinations))
_f("dest.allowed", BOOL, "every destination is in the session's allowed destinations")(
    lambda x: _dest_allowed(x)
)
_f("dest.in_task", BOOL, "every destination is named in the task the session was given")(
    lambda x: _in_task(x) if x.ctx.cls.destinations else None
)
_f("dest.seen", BOOL, "every destination was already used earlier in the tree")(
    lambda x: bool(ds := x.ctx.cls.destinations) and all(d.lower() in _seen(x) for d in ds)
)
_f("dest.unknown", SET, "destinations outside the org that neither the task nor the scope name")(
    lambda x: x.memo("unknown", lambda: _unknown(x))
)


def _seen(x: Subject) -> Collection[str]:
    seen: Collection[str] = x.facts.get("dests", ())
    return seen


def _task_text(x: Subject) -> str:
    def make() -> str:
        parts = []
        m = x.member
        if m is not None:
            parts.append(m.scope.task or "")
            parts.extend(a.scope.task or "" for a in x.session.ancestors(m.session_id))
        root = x.session.members.get(x.session.root_id)
        if root is not None and root is not m:
            parts.append(root.scope.task or "")
        return " ".join(p for p in parts if p).lower()

    text: str = x.memo("task", make)
    return text


def _named_in(dest: str, text: str) -> bool:
    d = dest.strip().lower()
    if not d or not text:
        return False
    if d in text or d.replace(" ", "") in text.replace(" ", ""):
        return True
    host = host_of(d)
    if host and "@" not in d:
        bare = host[4:] if host.startswith("www.") else host
        return bare in text
    return False


def _in_task(x: Subject) -> bool:
    text = _task_text(x)
    return all(_named_in(d, text) for d in x.ctx.cls.destinations)


def _dest_allowed(x: Subject) -> bool:
    scope = x.scope
    return all(scope.allows_destination(d, host_of(d)) for d in x.ctx.cls.destinations)


def _unknown(x: Subject) -> frozenset[str]:
    outside = x.ctx.cls.outside
    if not outside:
        return frozenset()
    text = _task_text(x)
    scope = x.scope
    declared = scope.allowed_destinations is not None
    return frozenset(
        d
        for d in outside
        if not _named_in(d, text) and not (declared and scope.allows_destination(d, host_of(d)))
    )


_f("env", STR, "environment acted on (resource, argument or tool name)")(
    lambda x: x.ctx.cls.environment
)
_f("resource.types", SET, "types of the resources touched")(
    lambda x: frozenset(r.type for r in x.ev.resources if r.type)
)
_f("resource.uids", SET, "ids of the resources touched")(
    lambda x: frozenset(r.uid for r in x.ev.resources if r.uid)
)
_f("resource.classifications", SET, "data classifications of the resources")(
    lambda x: frozenset(r.classification for r in x.ev.resources if r.classification)
)
_f("transfer.bytes", NUM, "bytes moved")(lambda x: t.bytes if (t := x.ev.transfer) else None)
_f("transfer.records", NUM, "records moved")(lambda x: t.records if (t := x.ev.transfer) else None)

# -- delegation, intent, issued credentials -------------------------------------------------
_f("delegation.child_session_id", STR, "the sub-agent's session")(
    lambda x: d.child_session_id if (d := x.ev.delegation) else None
)
_f("delegation.child_agent_id", STR, "the sub-agent")(
    lambda x: d.child_agent_id if (d := x.ev.delegation) else None
)
_f("delegation.scopes", SET, "scopes granted to the sub-agent")(
    lambda x: frozenset(d.scopes_granted or ()) if (d := x.ev.delegation) else None
)
_f("delegation.authority", SET, "what the delegating session holds (granted or credential scopes)")(
    lambda x: _authority(x)
)
_f("delegation.excess", SET, "scopes granted beyond what the delegating session holds")(
    lambda x: _excess_scopes(x)
)


def _authority(x: Subject) -> frozenset[str] | None:
    m = x.member
    if m is not None and m.granted_scopes is not None:
        return frozenset(m.granted_scopes)
    c = _cred(x)
    if c is not None and c.scope:
        return _text_set(c.scope)
    return None


def _excess_scopes(x: Subject) -> frozenset[str] | None:
    d = x.ev.delegation
    if d is None:
        return None
    held = _authority(x)
    if held is None or not d.scopes_granted:
        return frozenset()
    pats = tuple(h.lower() for h in held)
    return frozenset(s for s in d.scopes_granted if not glob_match(s, pats))


_f("intent.task", STR, "the task stated at session_start")(
    lambda x: i.task if (i := x.ev.intent) else None
)
_f("intent.excess", SET, "what a sub-agent's declared intent asks beyond its parent's scope")(
    lambda x: _intent_excess(x)
)


def _intent_excess(x: Subject) -> frozenset[str] | None:
    intent = x.ev.intent
    m = x.member
    if intent is None or m is None or not m.parent_id:
        return None
    parent = x.session.members.get(m.parent_id)
    if parent is None:
        return frozenset()
    own = Scope.from_intent(intent)
    ps = parent.scope
    out: list[str] = []
    for label, mine, theirs in (
        ("tool", own.allowed_tools, ps.allowed_tools),
        ("destination", own.allowed_destinations, ps.allowed_destinations),
        ("environment", own.allowed_environments, ps.allowed_environments),
    ):
        if theirs is None or mine is None:
            continue
        out.extend(f"{label}:{v}" for v in mine if not glob_match(v, theirs))
    if ps.max_duration_s is not None and (
        own.max_duration_s is None or own.max_duration_s > ps.max_duration_s
    ):
        if own.max_duration_s is not None:
            out.append(f"duration:{own.max_duration_s:g}s")
    return frozenset(out)


def issued_expiry(issued: CredentialIssued, ts: float) -> float | None:
    """When a credential issued at ``ts`` expires: its ``exp``, or ``ts + ttl_s``."""
    if issued.exp is not None:
        return float(issued.exp)
    return ts + issued.ttl_s if issued.ttl_s is not None else None


def _issued_exp(x: Subject) -> float | None:
    c = x.ev.credential_issued
    return issued_expiry(c, x.ctx.ts) if c is not None else None


_f("issued.jti", STR, "id of the credential issued")(
    lambda x: c.jti if (c := x.ev.credential_issued) else None
)
_f("issued.scopes", SET, "its scopes")(
    lambda x: _text_set(c.scope) if (c := x.ev.credential_issued) else None
)
_f("issued.exp", NUM, "its expiry (epoch s)")(_issued_exp)
_f("issued.ttl", NUM, "its lifetime in seconds")(
    lambda x: e - x.ctx.ts if (e := _issued_exp(x)) is not None else None
)
_f("issued.bound_session_id", STR, "the session it is bound to")(
    lambda x: c.bound_session_id if (c := x.ev.credential_issued) else None
)

# -- the session and its scope --------------------------------------------------------------
_f("session.id", STR, "the event's session")(lambda x: x.ev.session.id)
_f("session.root_id", STR, "root of the delegation tree")(lambda x: x.session.root_id)
_f("session.parent_id", STR, "the parent session (sub-agents)")(
    lambda x: (m.parent_id if (m := x.member) else None) or x.ev.session.parent_id
)
_f("session.seq", NUM, "the event's position in its session")(lambda x: x.ev.session.seq)
_f("session.is_root", BOOL, "the event belongs to the root session")(
    lambda x: x.ev.session.id == x.session.root_id
)
_f("session.depth", NUM, "delegation depth (0 = root)")(
    lambda x: sum(1 for _ in x.session.ancestors(x.ev.session.id))
)
_f("session.members", NUM, "sessions in the delegation tree")(lambda x: len(x.session.members))
_f("session.event_count", NUM, "events of the tree processed before this one")(
    lambda x: x.session.event_count
)
_f("session.risk", NUM, "the tree's fused risk before this event")(lambda x: x.session.risk)
_f("session.elapsed", NUM, "seconds since the session started")(lambda x: _elapsed(x))
_f("session.ended", BOOL, "this session had ended before this event")(
    lambda x: (m := x.member) is not None and m.ended_ts is not None
)
_f("session.end_age", NUM, "seconds between the session's end and this event")(
    lambda x: x.ctx.ts - m.ended_ts if (m := x.member) and m.ended_ts is not None else None
)
_f("session.killed", BOOL, "a kill signal covering this session was issued before this event")(
    lambda x: _killed(x)
)
_f("session.kill_age", NUM, "seconds between the kill signal and this event")(
    lambda x: x.ctx.ts - k if _killed(x) and (k := x.session.kill_ts) is not None else None
)
_f("session.caps_seen", SET, "capabilities of the tree's earlier events (untrusted_content...)")(
    lambda x: frozenset(x.session.cap_first)
)
_f("root.agent_id", STR, "the root session's agent")(lambda x: x.session.agent_id)
_f("root.ended", BOOL, "the root session had ended before this event")(lambda x: x.session.ended)


def _elapsed(x: Subject) -> float | None:
    m = x.member
    start = m.started_ts if m is not None and m.started_ts is not None else x.session.started_ts
    return None if start is None else x.ctx.ts - start


def _killed(x: Subject) -> bool:
    s = x.session
    if s.kill_jti is None:
        return False

    def make() -> bool:
        target = next(
            (a.session_id for a in s.alerts.values() if a.kill_jti == s.kill_jti), s.root_id
        )
        sid = x.ev.session.id
        return sid == target or any(a.session_id == target for a in s.ancestors(sid))

    killed: bool = x.memo("killed", make)
    return killed


_f("scope.declared", BOOL, "the session declared a scope (intent) or inherited one")(
    lambda x: x.scope.declared
)
_f("scope.task", STR, "the task the session was given")(lambda x: x.scope.task)
_f("scope.allowed_tools", SET, "tools the session may call (globs)")(
    lambda x: frozenset(t) if (t := x.scope.allowed_tools) is not None else None
)
_f("scope.allowed_destinations", SET, "destinations it may reach (globs)")(
    lambda x: frozenset(t) if (t := x.scope.allowed_destinations) is not None else None
)
_f("scope.allowed_environments", SET, "environments it may act on")(
    lambda x: frozenset(t) if (t := x.scope.allowed_environments) is not None else None
)
_f("scope.max_duration", NUM, "its maximum duration (s)")(lambda x: x.scope.max_duration_s)
_f("scope.tool_allowed", BOOL, "the tool is in the allowed tools (true if none declared)")(
    lambda x: (
        (t := x.scope.allowed_tools) is None or x.ev.tool is None or glob_match(x.ev.tool.name, t)
    )
)
_f("scope.dest_allowed", BOOL, "every destination is allowed (true if none declared)")(
    _dest_allowed
)
_f("scope.env_allowed", BOOL, "the environment is allowed (true if none declared)")(
    lambda x: (
        (t := x.scope.allowed_environments) is None
        or (e := x.ctx.cls.environment) is None
        or glob_match(e, t)
    )
)
_f("scope.duration_exceeded", BOOL, "the session has run longer than its maximum duration")(
    lambda x: (d := x.scope.max_duration_s) is not None and (e := _elapsed(x)) is not None and e > d
)


def describe() -> Iterator[tuple[str, str, str]]:
    """(name, type, meaning) of every field, for documentation and ``rules fields``."""
    for spec in FIELDS.values():
        yield spec.name, spec.type, spec.doc
    yield "tool.args.<name>", ANY, "one argument of the tool call"
