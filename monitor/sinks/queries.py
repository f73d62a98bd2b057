"""Reads for replay and the worker's read API: one root session's events, alerts, kill signals,
and the list of recent sessions with their risk.

Each function takes a clickhouse-connect client and the database name, so the same code
serves the sink (embedded chdb, whose path only the worker process may open), ``agentwatch
replay`` against a stopped worker's chdb path or a ClickHouse server, and the worker's HTTP
route. Reads are exactly-once as users should read (see ``schema.py``): events ``FINAL`` +
``LIMIT 1 BY event_id``, alerts latest version per ``alert_uid``, signals one per ``jti``.
A session's time range comes from the ``sessions`` lookup table first, so the events read
touches only that range's partitions.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

import orjson

from monitor.sinks.schema import EXACTLY_ONCE_READ

Client = Any  # clickhouse_connect.driver.Client (chdb or HTTP)


def _rows(client: Client, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    res = client.query(sql, parameters=params)
    names = res.column_names
    out = []
    for row in res.result_rows:
        d = dict(zip(names, row, strict=True))
        for k, v in d.items():  # DateTime64(3, 'UTC') columns come back naive
            if isinstance(v, datetime) and v.tzinfo is None:
                d[k] = v.replace(tzinfo=UTC)
        out.append(d)
    return out


def session_ranges(
    client: Client, db: str, root_session_id: str, tenant: str | None = None
) -> list[tuple[str, datetime, datetime]]:
    """``(tenant, first_time, last_time)`` of a root session, per tenant that has it."""
    where = "root_session_id = {root:String}"
    params: dict[str, Any] = {"root": root_session_id}
    if tenant is not None:
        where += " AND tenant = {tenant:String}"
        params["tenant"] = tenant
    sql = (
        f"SELECT tenant, min(first_time) AS first, max(last_time) AS last FROM {db}.sessions "
        f"WHERE {where} GROUP BY tenant ORDER BY first"
    )
    return [(r["tenant"], r["first"], r["last"]) for r in _rows(client, sql, params)]


def session_events(
    client: Client, db: str, root_session_id: str, tenant: str | None = None
) -> list[dict[str, Any]]:
    """Every event of a root session exactly once, in time order; ``event`` is the redacted
    stored JSON."""
    out: list[dict[str, Any]] = []
    for ten, first, last in session_ranges(client, db, root_session_id, tenant):
        sql = EXACTLY_ONCE_READ.format(db=db)
        params = {"tenant": ten, "root": root_session_id, "first": first, "last": last}
        for row in _rows(client, sql, params):
            row["event"] = orjson.loads(row.pop("event_json") or "{}")
            out.append(row)
    out.sort(key=lambda r: (r["time"], r["seq"] if r["seq"] is not None else -1))
    return out


def _scoped(root_session_id: str, tenant: str | None) -> tuple[str, dict[str, Any]]:
    where = "root_session_id = {root:String}"
    params: dict[str, Any] = {"root": root_session_id}
    if tenant is not None:
        where += " AND tenant = {tenant:String}"
        params["tenant"] = tenant
    return where, params


def session_alerts(
    client: Client, db: str, root_session_id: str, tenant: str | None = None
) -> list[dict[str, Any]]:
    """The latest version of each alert of a root session, oldest first; ``finding`` is the
    redacted OCSF document."""
    where, params = _scoped(root_session_id, tenant)
    sql = (
        f"SELECT * EXCEPT (finding_json), finding_json FROM {db}.alerts FINAL WHERE {where} "
        "ORDER BY modified_time DESC LIMIT 1 BY alert_uid"
    )
    rows = _rows(client, sql, params)
    for row in rows:
        row["finding"] = orjson.loads(row.pop("finding_json") or "{}")
    rows.sort(key=lambda r: (r["created_time"], r["alert_uid"]))
    return rows


def session_signals(
    client: Client, db: str, root_session_id: str, tenant: str | None = None
) -> list[dict[str, Any]]:
    """The kill signals published for a root session, one per ``jti``, oldest first."""
    where, params = _scoped(root_session_id, tenant)
    sql = f"SELECT * FROM {db}.kill_signals FINAL WHERE {where} ORDER BY iat, jti LIMIT 1 BY jti"
    rows = _rows(client, sql, params)
    for row in rows:
        row["claims"] = orjson.loads(row.pop("claims_json") or "{}")
    return rows


def _filter(roots: list[str] | None, tenant: str | None, limit: int) -> tuple[str, dict[str, Any]]:
    conds: list[str] = []
    params: dict[str, Any] = {"limit": limit}
    if roots is not None:
        conds.append("root_session_id IN {roots:Array(String)}")
        params["roots"] = roots
    if tenant is not None:
        conds.append("tenant = {tenant:String}")
        params["tenant"] = tenant
    return ("WHERE " + " AND ".join(conds)) if conds else "", params


def _alert_summary(
    client: Client, db: str, roots: list[str] | None, tenant: str | None, limit: int
) -> list[dict[str, Any]]:
    where, params = _filter(roots, tenant, limit)
    sql = (
        "SELECT tenant, root_session_id, count() AS alerts, max(session_risk) AS risk, "
        "max(severity_id) AS max_severity_id, countIf(response = 'kill_session') AS kills, "
        "groupUniqArray(rule_uid) AS rules, max(modified_time) AS last_alert_time "
        f"FROM {db}.alerts FINAL {where} GROUP BY tenant, root_session_id "
        "ORDER BY last_alert_time DESC LIMIT {limit:UInt32}"
    )
    return _rows(client, sql, params)


def sessions(
    client: Client,
    db: str,
    *,
    tenant: str | None = None,
    limit: int = 50,
    only_alerted: bool = False,
) -> list[dict[str, Any]]:
    """Recent root sessions (newest activity first) with time range, agents, event count,
    task, and their alerts: count, highest risk and severity, kill decisions, rules."""
    summaries: dict[tuple[str, str], dict[str, Any]] = {}
    roots: list[str] | None = None
    if only_alerted:
        for a in _alert_summary(client, db, None, tenant, limit):
            summaries[(a["tenant"], a["root_session_id"])] = a
        roots = sorted({k[1] for k in summaries})
        if not roots:
            return []
    where, params = _filter(roots, tenant, limit)
    sql = (
        "SELECT tenant, root_session_id, min(first_time) AS first_time, "
        "max(last_time) AS last_time, uniqExactMerge(events) AS events, "
        "groupUniqArrayArray(agents) AS agents, max(task) AS task, max(ended) AS ended "
        f"FROM {db}.sessions {where} GROUP BY tenant, root_session_id "
        "ORDER BY last_time DESC LIMIT {limit:UInt32}"
    )
    out = _rows(client, sql, params)
    if not only_alerted and out:
        for a in _alert_summary(
            client, db, [r["root_session_id"] for r in out], tenant, len(out) * 4
        ):
            summaries[(a["tenant"], a["root_session_id"])] = a
    for row in out:
        a = summaries.get((row["tenant"], row["root_session_id"]), {})
        row["alerts"] = int(a.get("alerts", 0))
        row["risk"] = float(a.get("risk", 0.0))
        row["max_severity_id"] = int(a.get("max_severity_id", 0))
        row["kills"] = int(a.get("kills", 0))
        row["rules"] = sorted(a.get("rules", []))
        row["ended"] = bool(row["ended"])
        row["agents"] = sorted(row["agents"])
    return out


class StoreReads:
    """The read methods of a sink or reader: each runs a function above on ``_reader()``."""

    database: str

    def _reader(self) -> contextlib.AbstractContextManager[Any]:
        raise NotImplementedError

    def session_events(
        self, root_session_id: str, tenant: str | None = None
    ) -> list[dict[str, Any]]:
        with self._reader() as c:
            return session_events(c, self.database, root_session_id, tenant)

    def session_alerts(
        self, root_session_id: str, tenant: str | None = None
    ) -> list[dict[str, Any]]:
        with self._reader() as c:
            return session_alerts(c, self.database, root_session_id, tenant)

    def session_signals(
        self, root_session_id: str, tenant: str | None = None
    ) -> list[dict[str, Any]]:
        with self._reader() as c:
            return session_signals(c, self.database, root_session_id, tenant)

    def sessions(
        self, *, tenant: str | None = None, limit: int = 50, only_alerted: bool = False
    ) -> list[dict[str, Any]]:
        with self._reader() as c:
            return sessions(c, self.database, tenant=tenant, limit=limit, only_alerted=only_alerted)
