"""Turning events, alerts and kill signals into table rows (``schema.py``), redacted.

These run in the sink's flusher thread, never on the event loop. Every free-text value that
could carry a secret (arguments, outputs, destinations, tasks, alert messages) goes through
the :class:`~monitor.redaction.Redactor`; identifiers and times are stored as they are.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import AwareDatetime, TypeAdapter, ValidationError

from detectors.catalog import host_of
from monitor.redaction import Redactor
from monitor.sinks.schema import PRIVILEGED_COLUMNS
from schemas.alerts import DetectionFinding
from schemas.events import ActionEvent, parse_event
from schemas.privileged import PrivilegedAction
from schemas.signals import SessionRevokedClaims

Row = tuple[Any, ...]


def _environment(event: ActionEvent) -> str:
    for r in event.resources:
        if r.environment:
            return r.environment.lower()
    return ""


class _Unusual(Exception):
    """A member of a decoded event is not in the form :func:`_doc_columns` reads as is."""


#: the event time as ``schemas.events`` parses it (same parser, same tzinfo)
_TIME: TypeAdapter[datetime] = TypeAdapter(AwareDatetime)


def _text(d: dict[str, Any], key: str) -> str | None:
    v = d.get(key)
    if v is None or type(v) is str:
        return v
    raise _Unusual(key)


def _section(doc: dict[str, Any], key: str) -> dict[str, Any]:
    v = doc.get(key)
    if v is None:
        return {}
    if type(v) is dict:
        return v
    raise _Unusual(key)


def _count(d: dict[str, Any], key: str) -> int | None:
    v = d.get(key)
    if v is None or type(v) is int:
        return v
    raise _Unusual(key)


def _doc_columns(doc: dict[str, Any]) -> tuple[Any, ...]:
    """The typed columns read from the decoded record itself, without building the pydantic
    event (~30 µs of the sink process's ~100 per event). The worker validated the record, so
    every member has its contract's type; where pydantic would convert a value (a number
    where an integer is due, a string where a boolean is), this raises :class:`_Unusual` and
    :func:`event_row` reads the columns from the model instead. ``tests/monitor/sinks/
    test_rows.py`` checks both give the same row."""
    session, actor = doc["session"], doc["actor"]
    if type(session) is not dict or type(actor) is not dict:
        raise _Unusual("session")
    tool, transfer = _section(doc, "tool"), _section(doc, "transfer")
    cred = _section(actor, "credential")
    environment = ""
    resources = doc.get("resources")
    if resources:
        if type(resources) is not list:
            raise _Unusual("resources")
        for r in resources:
            if type(r) is not dict:
                raise _Unusual("resources")
            env = _text(r, "environment")
            if env:
                environment = env.lower()
                break
    event_id, sid, kind, agent = doc["event_id"], session["id"], doc["kind"], actor["agent_id"]
    if type(event_id) is not str or type(sid) is not str or type(kind) is not str:
        raise _Unusual("event_id")
    if type(agent) is not str:
        raise _Unusual("agent_id")
    external = transfer.get("external")
    if external is not None and type(external) is not bool:
        raise _Unusual("external")
    return (
        _text(doc, "tenant") or "",
        _text(session, "root_id") or sid,
        _TIME.validate_python(doc["time"]),
        event_id,
        sid,
        _text(session, "parent_id") or "",
        _count(session, "seq"),
        kind,
        agent,
        _text(actor, "agent_version") or "",
        _text(actor, "workload_id") or "",
        _text(actor, "on_behalf_of") or "",
        _text(cred, "iss") or "",
        _text(cred, "jti") or "",
        _text(tool, "name") or "",
        _text(tool, "server") or "",
        _text(tool, "call_id") or "",
        _text(tool, "outcome") or "",
        environment,
        _text(transfer, "destination") or "",
        external,
        _count(transfer, "bytes") or 0,
        _count(transfer, "records") or 0,
        _text(_section(doc, "intent"), "task") or "",
        _text(_section(doc, "otel"), "trace_id") or "",
    )


def _model_columns(event: ActionEvent) -> tuple[Any, ...]:
    """:func:`_doc_columns` read from the validated event."""
    session, actor, tool, transfer = event.session, event.actor, event.tool, event.transfer
    cred = actor.credential
    return (
        event.tenant or "",
        event.root_session_id,
        event.time,
        event.event_id,
        session.id,
        session.parent_id or "",
        session.seq,
        event.kind,
        actor.agent_id,
        actor.agent_version or "",
        actor.workload_id or "",
        actor.on_behalf_of or "",
        (cred.iss or "") if cred else "",
        (cred.jti or "") if cred else "",
        tool.name if tool else "",
        (tool.server or "") if tool else "",
        (tool.call_id or "") if tool else "",
        (tool.outcome or "") if tool else "",
        _environment(event),
        (transfer.destination or "") if transfer is not None else "",
        transfer.external if transfer is not None else None,
        (transfer.bytes or 0) if transfer is not None else 0,
        (transfer.records or 0) if transfer is not None else 0,
        event.intent.task if event.intent is not None and event.intent.task else "",
        (event.otel.trace_id or "") if event.otel else "",
    )


def event_row(
    redactor: Redactor,
    raw: bytes,
    event: ActionEvent | None,
    partition: int,
    offset: int,
    caps: frozenset[str] | None,
    stored_at: datetime,
) -> Row:
    """One ``events`` row; the stored JSON is the original record (extra fields kept), redacted.

    ``raw`` is a record the worker validated; ``event`` its model, or None (the sink process
    does not rebuild it: the columns are read from the decoded record, see
    :func:`_doc_columns`, and the model is parsed here only for a record in an unusual
    form)."""
    doc: Any
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        doc = None
    cols: tuple[Any, ...] | None = None
    if isinstance(doc, dict):
        try:
            cols = _doc_columns(doc)
        except (_Unusual, KeyError, ValidationError):
            cols = None
    if cols is None:
        if event is None:
            event = parse_event(raw)
        cols = _model_columns(event)
        if not isinstance(doc, dict):
            doc = event.model_dump(mode="json", exclude_none=True)
    stored = redactor.event_doc(doc)
    head, (environment, destination, external, nbytes, records, task, trace_id) = (
        cols[:18],
        cols[18:],
    )
    host = ""
    # the redacted forms, as event_doc made them (the raw record has the same members)
    if destination:
        host = host_of(destination) or ""
        safe_dest = (stored.get("transfer") or {}).get("destination")
        destination = safe_dest if isinstance(safe_dest, str) else redactor.text(destination)
    if task:
        safe_task = (stored.get("intent") or {}).get("task")
        task = safe_task if isinstance(safe_task, str) else redactor.text(task)
    return (
        *head,
        sorted(caps) if caps else [],
        environment,
        destination,
        host,
        external,
        nbytes,
        records,
        task,
        trace_id,
        partition,
        offset,
        stored_at,
        orjson.dumps(stored).decode(),
    )


def _ms(ms: int | None) -> datetime:
    return datetime.fromtimestamp((ms or 0) / 1000, tz=UTC)


def alert_row(redactor: Redactor, alert: DetectionFinding, stored_at: datetime) -> Row:
    """One ``alerts`` row (one version of the alert)."""
    info = alert.finding_info
    aw: dict[str, Any] = dict(alert.unmapped.get("agentwatch") or {})
    doc = alert.model_dump(mode="json", exclude_none=True)
    stored = redactor.value(doc)
    return (
        aw.get("tenant") or "",
        str(aw.get("root_session_id") or alert.actor.session.uid),
        info.uid,
        _ms(info.created_time),
        _ms(info.modified_time),
        alert.activity_id,
        info.analytic.uid,
        info.analytic.name,
        redactor.text(info.title),
        alert.severity_id,
        alert.risk_score,
        float(aw.get("risk") or 0.0),
        str(aw.get("response") or "alert"),
        str(aw.get("mode") or ""),
        str(aw.get("kill_signal_jti") or ""),
        alert.actor.session.uid,
        alert.actor.app_name,
        alert.actor.user.uid if alert.actor.user else "",
        str(aw.get("trigger_event_id") or ""),
        aw.get("trigger_seq"),
        [e.uid for e in info.related_events],
        [t.value for t in info.tags],
        [a.technique.uid for a in info.attacks],
        redactor.text(alert.message),
        stored_at,
        orjson.dumps(stored).decode(),
    )


def signal_row(
    jti: str,
    compact_jws: str,
    claims: SessionRevokedClaims,
    root_session_id: str,
    stored_at: datetime,
) -> Row:
    """One ``kill_signals`` row. A SET carries identifiers only, no secret: stored as is."""
    sub = claims.sub_id
    reason = ""
    for ev in claims.events.values():
        admin = ev.get("reason_admin") if isinstance(ev, dict) else None
        if isinstance(admin, dict):
            reason = str(admin.get("en") or next(iter(admin.values()), ""))
    aud = claims.aud if isinstance(claims.aud, list) else [claims.aud]
    return (
        sub.tenant.id if sub.tenant else "",
        root_session_id,
        jti,
        datetime.fromtimestamp(claims.iat, tz=UTC),
        claims.txn,
        sub.session.id,
        sub.agent.uri if sub.agent else "",
        sub.token.jti if sub.token else "",
        list(aud),
        reason,
        stored_at,
        claims.model_dump_json(exclude_none=True),
        compact_jws,
    )


def privileged_row(redactor: Redactor, action: PrivilegedAction, stored_at: datetime) -> Row:
    """One ``privileged_actions`` row (``PrivilegedAction.row()``). Destinations and the
    scope (which holds the task's text) are redacted; the record has no argument values."""
    r = action.row()
    r["time"] = action.time
    r["tenant"] = r["tenant"] or ""
    r["destinations"] = [redactor.text(d) for d in action.destinations]
    r["resources"] = [redactor.text(u) for u in action.resources]
    for key in ("credential", "scope", "delegation"):
        r[key] = redactor.text(r[key]) if r[key] else ""
    for key in ("parent_session_id", "tool_name", "tool_server", "tool_call_id", "outcome",
                "environment", "agent_version", "workload_id", "on_behalf_of"):  # fmt: skip
        r[key] = r[key] or ""
    r["stored_at"] = stored_at
    return tuple(r[c] for c in PRIVILEGED_COLUMNS)
