"""An incident responder's timeline of one root session, from ClickHouse.

``load(source, root_session_id)`` reads the session's events, alerts and kill signals (each
exactly once, see ``monitor.sinks.schema``) from anything with the sink's read methods: the
worker's sink (its HTTP route calls :func:`session_replay`), or a :class:`StoreReader` on a
ClickHouse server URL or a *stopped* worker's chdb path. ``timeline`` interleaves them: each
alert right after the event it was decided on (``trigger_event_id``), each kill signal right
after its alert (``txn``), sub-agents indented under the agent that delegated to them.
``monitor.replay_render`` prints it (rich), writes it (JSON lines) and draws it (PNG).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import orjson

from monitor.sinks import queries
from monitor.sinks.connection import new_client, safe_url
from schemas.errors import SinkError


class SessionSource(Protocol):
    def session_events(self, root_session_id: str, tenant: str | None = None) -> list[Any]: ...
    def session_alerts(self, root_session_id: str, tenant: str | None = None) -> list[Any]: ...
    def session_signals(self, root_session_id: str, tenant: str | None = None) -> list[Any]: ...


class StoreReader(queries.StoreReads):
    """Read-only access to a store by URL (``http(s)://...`` server or ``chdb:///path``)."""

    def __init__(self, url: str, database: str = "agentwatch") -> None:
        self.url, self.database = url, database
        try:
            self.client = new_client(url)
        except Exception as exc:
            msg = str(exc)
            if "lock" in msg.lower() or _locked_by_other_process(url):
                raise SinkError(
                    f"the embedded store {url} is open in a running worker (one process per "
                    "path): stop the worker, or ask its read API (agentwatch replay --worker URL)"
                ) from None
            raise SinkError(
                f"cannot open the store {safe_url(url)}: {msg.splitlines()[0]}"
            ) from None

    @contextlib.contextmanager
    def _reader(self) -> Iterator[Any]:
        yield self.client

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()


def _locked_by_other_process(url: str) -> bool:
    """Whether another process holds the chdb path (ClickHouse flocks ``<path>/status``)."""
    if not url.startswith("chdb:///"):
        return False
    import fcntl

    status = Path(url[len("chdb://") :]) / "status"
    try:
        with open(status, "rb") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return True
            fcntl.flock(f, fcntl.LOCK_UN)
    except OSError:
        return False
    return False


@dataclass
class SessionRecord:
    root_session_id: str
    events: list[dict[str, Any]]
    alerts: list[dict[str, Any]]
    signals: list[dict[str, Any]]


def load(source: SessionSource, root: str, tenant: str | None = None) -> SessionRecord:
    return SessionRecord(
        root,
        source.session_events(root, tenant),
        source.session_alerts(root, tenant),
        source.session_signals(root, tenant),
    )


def session_replay(source: SessionSource, root: str, tenant: str | None = None) -> dict[str, Any]:
    """The JSON document the worker's read route returns (times as RFC 3339 strings)."""
    rec = load(source, root, tenant)
    doc = {
        "root_session_id": root,
        "events": rec.events,
        "alerts": rec.alerts,
        "signals": rec.signals,
    }
    return dict(orjson.loads(orjson.dumps(doc, option=orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z)))


def sessions_document(source: Any, **kw: Any) -> list[dict[str, Any]]:
    """The JSON list the worker's ``GET /api/sessions`` route returns: ``source.sessions(
    tenant=..., limit=..., only_alerted=...)`` with times as RFC 3339 strings."""
    rows = source.sessions(**kw)
    return list(orjson.loads(orjson.dumps(rows, option=orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z)))


def from_document(doc: dict[str, Any]) -> SessionRecord:
    """A :func:`session_replay` document (from the worker's API) back as a record."""

    def times(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> list[dict[str, Any]]:
        for r in rows:
            for k in keys:
                if isinstance(r.get(k), str):
                    r[k] = datetime.fromisoformat(r[k].replace("Z", "+00:00"))
        return rows

    return SessionRecord(
        doc["root_session_id"],
        times(doc.get("events", []), ("time", "stored_at")),
        times(doc.get("alerts", []), ("created_time", "modified_time", "stored_at")),
        times(doc.get("signals", []), ("iat", "stored_at")),
    )


def fetch_from_worker(base_url: str, root: str, tenant: str | None = None) -> SessionRecord:
    """The record from a running worker's read API (``GET /api/sessions/<root>/replay``)."""
    import urllib.error
    import urllib.parse
    import urllib.request

    url = f"{base_url.rstrip('/')}/api/sessions/{urllib.parse.quote(root, safe='')}/replay"
    if tenant is not None:
        url += "?" + urllib.parse.urlencode({"tenant": tenant})
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return from_document(orjson.loads(resp.read()))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise SinkError(
            f"cannot read session {root} from the worker at {base_url}: {exc}"
        ) from None


def _depths(events: list[dict[str, Any]], root: str) -> dict[str, int]:
    parent: dict[str, str] = {}
    for e in events:
        if e.get("parent_session_id"):
            parent[e["session_id"]] = e["parent_session_id"]
        deleg = (e.get("event") or {}).get("delegation") or {}
        if deleg.get("child_session_id"):
            parent.setdefault(deleg["child_session_id"], e["session_id"])

    def depth(s: str, seen: int = 0) -> int:
        if s == root or s not in parent or seen > 32:
            return 0
        return 1 + depth(parent[s], seen + 1)

    return {e["session_id"]: depth(e["session_id"]) for e in events}


def _short(v: Any, n: int = 80) -> str:
    s = v if isinstance(v, str) else orjson.dumps(v).decode()
    return s if len(s) <= n else s[: n - 1] + "…"


def timeline(rec: SessionRecord) -> list[dict[str, Any]]:
    """One row per step: events in order, alerts and kills where they were decided."""
    depths = _depths(rec.events, rec.root_session_id)
    t0 = rec.events[0]["time"] if rec.events else None
    by_trigger: dict[str, list[dict[str, Any]]] = {}
    placed: set[str] = set()
    ids = {e["event_id"] for e in rec.events}
    for a in rec.alerts:
        if a.get("trigger_event_id") in ids:
            by_trigger.setdefault(a["trigger_event_id"], []).append(a)
    kills = {s["txn"]: s for s in rec.signals}
    rows: list[dict[str, Any]] = []

    def alert_rows(a: dict[str, Any], depth: int) -> Iterator[dict[str, Any]]:
        placed.add(a["alert_uid"])
        yield {
            "type": "alert",
            "time": a["modified_time"],
            "offset_s": (a["modified_time"] - t0).total_seconds() if t0 else 0.0,
            "depth": depth,
            "seq": a.get("trigger_seq"),
            "agent": a.get("agent_id", ""),
            "session_id": a.get("session_id", ""),
            "what": f"{a['rule_uid']} {a['title']}",
            "detail": a.get("message", ""),
            "severity_id": a.get("severity_id", 0),
            "response": a.get("response", "alert"),
            "mode": a.get("mode", ""),
            "risk": a.get("session_risk", 0.0),
            "alert_uid": a["alert_uid"],
        }
        sig = kills.pop(a["alert_uid"], None)
        if sig is not None:
            yield _kill_row(sig, t0, depth, not_before=a["modified_time"])

    for e in rec.events:
        ev = e.get("event") or {}
        tool = ev.get("tool") or {}
        what = e["tool_name"] or e["kind"]
        if e["kind"] == "delegation":
            d = ev.get("delegation") or {}
            what = f"delegation → {d.get('child_agent_id', '?')} {d.get('scopes_granted') or ''}"
        args = tool.get("arguments") if tool else (ev.get("intent") or ev.get("credential_issued"))
        depth = depths.get(e["session_id"], 0)
        rows.append(
            {
                "type": "event",
                "time": e["time"],
                "offset_s": (e["time"] - t0).total_seconds() if t0 else 0.0,
                "depth": depth,
                "seq": e["seq"],
                "agent": e["agent_id"],
                "session_id": e["session_id"],
                "what": what,
                "capabilities": list(e.get("capabilities") or []),
                "destination": e.get("destination", ""),
                "environment": e.get("environment", ""),
                "detail": _short(args) if args else "",
                "event_id": e["event_id"],
            }
        )
        for a in by_trigger.get(e["event_id"], []):
            rows.extend(alert_rows(a, depth))
    orphans: list[dict[str, Any]] = []
    for a in rec.alerts:  # alerts whose trigger event is not stored: at their time
        if a["alert_uid"] not in placed:
            orphans.extend(alert_rows(a, 0))
    orphans.extend(_kill_row(sig, t0, 0) for sig in kills.values())
    for o in orphans:
        at = len(rows)
        while at > 0 and rows[at - 1]["time"] > o["time"]:
            at -= 1
        rows.insert(at, o)
    return rows


def _kill_row(
    sig: dict[str, Any], t0: datetime | None, depth: int, not_before: datetime | None = None
) -> dict[str, Any]:
    # ``iat`` has whole seconds: a kill decided on an alert is shown no earlier than the alert
    at = max(sig["iat"], not_before) if not_before is not None else sig["iat"]
    return {
        "type": "kill",
        "time": at,
        "offset_s": (at - t0).total_seconds() if t0 else 0.0,
        "depth": depth,
        "seq": None,
        "agent": sig.get("agent_uri", ""),
        "session_id": sig.get("session_id", ""),
        "what": f"KILL session {sig.get('session_id', '')}",
        "detail": f"jti={sig['jti']} {sig.get('reason', '')}",
    }
