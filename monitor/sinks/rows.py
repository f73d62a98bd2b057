"""Turning events, alerts and kill signals into table rows (``schema.py``), redacted.

These run in the sink's flusher thread, never on the event loop. Every free-text value that
could carry a secret (arguments, outputs, destinations, tasks, alert messages) goes through
the :class:`~monitor.redaction.Redactor`; identifiers and times are stored as they are.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from detectors.catalog import host_of
from monitor.redaction import Redactor
from monitor.sinks.schema import PRIVILEGED_COLUMNS
from schemas.alerts import DetectionFinding
from schemas.events import ActionEvent
from schemas.privileged import PrivilegedAction
from schemas.signals import SessionRevokedClaims

Row = tuple[Any, ...]


def _environment(event: ActionEvent) -> str:
    for r in event.resources:
        if r.environment:
            return r.environment.lower()
    return ""


def event_row(
    redactor: Redactor,
    raw: bytes,
    event: ActionEvent,
    partition: int,
    offset: int,
    caps: frozenset[str] | None,
    stored_at: datetime,
) -> Row:
    """One ``events`` row; the stored JSON is the original record (extra fields kept), redacted."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        doc = event.model_dump(mode="json", exclude_none=True)
    if not isinstance(doc, dict):
        doc = event.model_dump(mode="json", exclude_none=True)
    stored = redactor.event_doc(doc)
    session, actor, tool, transfer = event.session, event.actor, event.tool, event.transfer
    cred = actor.credential
    destination = transfer.destination if transfer is not None and transfer.destination else ""
    task = event.intent.task if event.intent is not None and event.intent.task else ""
    # the redacted forms, as event_doc made them (the raw record has the same members)
    if destination:
        safe_dest = (stored.get("transfer") or {}).get("destination")
        destination = safe_dest if isinstance(safe_dest, str) else redactor.text(destination)
    if task:
        safe_task = (stored.get("intent") or {}).get("task")
        task = safe_task if isinstance(safe_task, str) else redactor.text(task)
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
        sorted(caps) if caps else [],
        _environment(event),
        destination,
        (host_of(transfer.destination) or "") if transfer and transfer.destination else "",
        transfer.external if transfer is not None else None,
        (transfer.bytes or 0) if transfer is not None else 0,
        (transfer.records or 0) if transfer is not None else 0,
        task,
        (event.otel.trace_id or "") if event.otel else "",
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
