"""An incident responder's timeline of one root session, from ClickHouse.

``load(source, root_session_id)`` reads the session's events, alerts and kill signals (each
exactly once, see ``monitor.sinks.schema``) from anything with the sink's read methods: the
worker's sink (its HTTP route calls :func:`session_replay`), or a :class:`StoreReader` on a
ClickHouse server URL or a *stopped* worker's chdb path. ``timeline`` interleaves them: each
alert right after the event it was decided on (``trigger_event_id``), each kill signal right
after its alert (``txn``), sub-agents indented under the agent that delegated to them.
``render_table`` prints it with rich, ``write_png`` draws it with matplotlib.
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
from schemas.errors import SinkError


class SessionSource(Protocol):
    def session_events(self, root_session_id: str, tenant: str | None = None) -> list[Any]: ...
    def session_alerts(self, root_session_id: str, tenant: str | None = None) -> list[Any]: ...
    def session_signals(self, root_session_id: str, tenant: str | None = None) -> list[Any]: ...


class StoreReader:
    """Read-only access to a store by URL (``http(s)://...`` server or ``chdb:///path``)."""

    def __init__(self, url: str, database: str = "agentwatch") -> None:
        import clickhouse_connect

        self.url, self.database = url, database
        try:
            self.client = clickhouse_connect.get_client(dsn=url)
        except Exception as exc:
            msg = str(exc)
            if "lock" in msg.lower() or _locked_by_other_process(url):
                raise SinkError(
                    f"the embedded store {url} is open in a running worker (one process per "
                    "path): stop the worker, or ask its read API (agentwatch replay --worker URL)"
                ) from None
            raise SinkError(f"cannot open the store {url}: {msg.splitlines()[0]}") from None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()

    def session_events(self, root: str, tenant: str | None = None) -> list[dict[str, Any]]:
        return queries.session_events(self.client, self.database, root, tenant)

    def session_alerts(self, root: str, tenant: str | None = None) -> list[dict[str, Any]]:
        return queries.session_alerts(self.client, self.database, root, tenant)

    def session_signals(self, root: str, tenant: str | None = None) -> list[dict[str, Any]]:
        return queries.session_signals(self.client, self.database, root, tenant)

    def sessions(self, **kw: Any) -> list[dict[str, Any]]:
        return queries.sessions(self.client, self.database, **kw)


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


_SEV_STYLE = {1: "dim", 2: "cyan", 3: "yellow", 4: "bold red", 5: "bold white on red"}


def render_table(rec: SessionRecord, rows: list[dict[str, Any]], console: Any = None) -> None:
    """Print the timeline as a rich table."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table(
        title=f"session {rec.root_session_id}: {len(rec.events)} events, "
        f"{len(rec.alerts)} alerts, {len(rec.signals)} kill signals",
        show_lines=False,
        expand=True,
    )
    for col, kw in (
        ("time", {"no_wrap": True}),
        ("seq", {"justify": "right", "no_wrap": True}),
        ("agent", {"no_wrap": True, "max_width": 28}),
        ("action", {"ratio": 2, "overflow": "fold"}),
        ("capabilities", {"ratio": 2}),
        ("destination", {"ratio": 2, "overflow": "fold"}),
        ("arguments / detail", {"ratio": 3, "overflow": "fold"}),
    ):
        table.add_column(col, **kw)
    for r in rows:
        indent = "  " * r["depth"] + ("└ " if r["depth"] else "")
        stamp = f"+{r['offset_s']:8.3f}s"
        if r["type"] == "event":
            table.add_row(
                stamp,
                "" if r["seq"] is None else str(r["seq"]),
                indent + r["agent"],
                r["what"],
                ", ".join(r["capabilities"]),
                r["destination"],
                r["detail"],
            )
        elif r["type"] == "alert":
            style = _SEV_STYLE.get(int(r["severity_id"] or 0), "")
            table.add_row(
                stamp,
                "",
                indent + "⚠ ALERT",
                r["what"],
                f"risk {r['risk']:.2f} · {r['response']} ({r['mode']})",
                "",
                r["detail"],
                style=style,
            )
        else:
            table.add_row(
                stamp,
                "",
                indent + "✖ KILL",
                r["what"],
                "",
                "",
                r["detail"],
                style="bold white on red",
            )
    console.print(table)


def write_jsonl(rows: list[dict[str, Any]], out: Any) -> None:
    for r in rows:
        out.write(orjson.dumps(r, option=orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z).decode() + "\n")


_CAP_COLORS = (
    ("secret_retrieval", "#d62728"),
    ("payment", "#8c564b"),
    ("destructive_change", "#000000"),
    ("production_write", "#9467bd"),
    ("external_egress", "#ff7f0e"),
    ("untrusted_content", "#17becf"),
    ("credential_change", "#e377c2"),
)


def write_png(rec: SessionRecord, rows: list[dict[str, Any]], path: Path) -> Path:
    """Draw the timeline: one lane per session of the tree, actions coloured by capability,
    alerts as dashed lines, kill signals as red lines."""
    try:
        import matplotlib
    except ImportError:
        raise SinkError("--png needs matplotlib: pip install matplotlib") from None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lanes: dict[str, int] = {}
    labels: list[str] = []
    for r in rows:
        if r["type"] == "event" and r["session_id"] not in lanes:
            lanes[r["session_id"]] = len(lanes)
            labels.append("  " * r["depth"] + f"{r['agent']} ({r['session_id'][:12]})")
    height = 3.2 + 0.5 * max(1, len(lanes))
    fig, ax = plt.subplots(figsize=(13, height))
    markers = {"session_start": ">", "session_end": "s", "delegation": "D"}
    for r in rows:
        if r["type"] != "event":
            continue
        y = lanes[r["session_id"]]
        color = next((c for cap, c in _CAP_COLORS if cap in r["capabilities"]), "#7f7f7f")
        marker = markers.get(r["what"].split(" ")[0], "o")
        ax.scatter(r["offset_s"], y, s=60, color=color, zorder=3, edgecolors="white", marker=marker)
        if r["capabilities"] and color != "#7f7f7f":
            ax.annotate(
                r["what"],
                (r["offset_s"], y),
                textcoords="offset points",
                xytext=(0, 7),
                fontsize=7,
                rotation=25,
            )
    band = ax.get_xaxis_transform()  # x in data, y in axes fractions: labels above the plot
    for r in rows:
        if r["type"] == "alert":
            ax.axvline(r["offset_s"], color="#ff9900", linestyle="--", linewidth=1.2, zorder=2)
            ax.text(
                r["offset_s"],
                1.02,
                "⚠ " + r["what"][:48],
                transform=band,
                fontsize=7,
                rotation=20,
                ha="left",
                va="bottom",
                color="#b36b00",
            )
        elif r["type"] == "kill":
            ax.axvline(r["offset_s"], color="#d62728", linewidth=2.5, zorder=2, alpha=0.8)
            ax.text(
                r["offset_s"],
                -0.08,
                "KILL",
                transform=band,
                color="#d62728",
                fontsize=9,
                weight="bold",
                ha="center",
                va="top",
            )
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_ylim(-0.8, max(1, len(lanes)) - 0.2)
    ax.invert_yaxis()
    ax.set_xlabel("seconds since the session started", labelpad=14)
    ax.set_title(f"agentwatch replay: {rec.root_session_id}", loc="left", pad=30)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], marker="o", ls="", color=c, label=cap) for cap, c in _CAP_COLORS]
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
