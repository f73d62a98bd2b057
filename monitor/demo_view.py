"""What ``agentwatch demo`` shows: the live view, and the summary when it stops.

:class:`Seen` accumulates what the demo watched (alerts from ``monitor.alerts``, verified kill
signals from ``agent.revocations``, the worker's metrics, the simulated gateway's totals and
the simulator's labels). :func:`live_view` renders it for any terminal width: at 80 columns
the event list keeps time, what, rule and a short session id; wider terminals also get the
agent, the full root session and the detail. :func:`summary` is the closing report: traffic
by kind, alerts by rule, kills, what the gateway prevented, benign sessions alerted or
killed, kill latencies, and ClickHouse row counts.
"""

from __future__ import annotations

import json
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Group
from rich.panel import Panel
from rich.table import Table

#: below this width the live view drops the agent and detail columns
WIDE = 110


@dataclass
class Seen:
    """What the demo has watched so far."""

    alerts: dict[str, dict[str, Any]] = field(default_factory=dict)
    recent: deque[list[str]] = field(default_factory=lambda: deque(maxlen=12))
    kills_verified: int = 0
    kills_invalid: int = 0
    kills_duplicate: int = 0
    by_rule: Counter[str] = field(default_factory=Counter)
    kills_by_rule: Counter[str] = field(default_factory=Counter)
    killed_sessions: set[str] = field(default_factory=set)
    #: root sessions with an (enforced) alert, and with a kill signal
    alerted_roots: set[str] = field(default_factory=set)
    killed_roots: set[str] = field(default_factory=set)
    metrics: dict[str, float] = field(default_factory=dict)
    #: worker histogram buckets: (metric, decision) -> [(upper bound, cumulative count)]
    histograms: dict[tuple[str, str], list[tuple[float, float]]] = field(default_factory=dict)
    simulator: dict[str, Any] = field(default_factory=dict)
    first_kill_after_s: float | None = None
    #: ids of the rules loaded with ``--rules`` that the built-in pack does not have
    user_rules: set[str] = field(default_factory=set)

    def on_alert(self, a: dict[str, Any]) -> list[str]:
        uid = a["finding_info"]["uid"]
        aw = a["unmapped"]["agentwatch"]
        rule = a["finding_info"]["analytic"]["uid"]
        if uid not in self.alerts:
            self.by_rule[rule] += 1
        self.alerts[uid] = a
        if aw.get("mode", "enforce") == "enforce":
            self.alerted_roots.add(aw["root_session_id"])
        kill = aw["response"] == "kill_session"
        row = [
            time.strftime("%H:%M:%S"),
            "[red]ALERT+KILL[/]" if kill else "[yellow]ALERT[/]",
            a["actor"]["app_name"],
            aw["root_session_id"],
            rule,
            f"{a['severity']} · risk {aw['risk']:.2f} · "
            f"{a['finding_info'].get('related_events_count', 0)} evidence events",
        ]
        self.recent.append(row)
        return row

    def on_kill(self, claims: Any, detail: str, started: float) -> list[str]:
        self.kills_verified += 1
        if self.first_kill_after_s is None:
            self.first_kill_after_s = time.monotonic() - started
        session = claims.sub_id.session.id
        self.killed_sessions.add(session)
        aw = _agentwatch_claims(claims)
        rule = str(aw.get("rule") or self.rule_of(claims))
        self.kills_by_rule[rule] += 1
        self.killed_roots.add(str(aw.get("root_session_id") or session))
        agent = ""
        if claims.sub_id.agent is not None:
            agent = claims.sub_id.agent.uri.rsplit("/", 1)[-1]
        row = [time.strftime("%H:%M:%S"), "[bold red]KILL SIGNAL[/]", agent, session, rule, detail]
        self.recent.append(row)
        return row

    def rule_of(self, claims: Any) -> str:
        """The rule behind a kill signal: its own claim, its alert (``txn``), its reason."""
        if claims is None:
            return "?"
        aw = _agentwatch_claims(claims)
        if aw.get("rule"):
            return str(aw["rule"])
        alert = self.alerts.get(claims.txn)
        if alert is not None:
            return str(alert["finding_info"]["analytic"]["uid"])
        for event in claims.events.values():
            reason = str(event.get("reason_admin", {}).get("en", ""))
            if reason.startswith("agentwatch "):  # "agentwatch AW-COMBO-001: ..."
                return reason.split()[1].rstrip(":")
        return "session-revoked"


def _agentwatch_claims(claims: Any) -> dict[str, Any]:
    for event in claims.events.values():
        aw = event.get("agentwatch")
        if isinstance(aw, dict):
            return aw
    return {}


# -- metrics --------------------------------------------------------------------------------
def parse_metrics(text: str, seen: Seen) -> None:
    """Totals (counters, gauges) and the decision-latency histogram from /metrics text."""
    out: dict[str, float] = {}
    hist: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for line in text.splitlines():
        if not line.startswith("agentwatch_"):
            continue
        head, _, value = line.rpartition(" ")
        name = head.partition("{")[0]
        if name == "agentwatch_event_decision_latency_seconds_bucket":
            labels = dict(
                part.split("=", 1) for part in head.partition("{")[2].rstrip("}").split(",") if part
            )
            le = labels.get("le", "").strip('"')
            decision = labels.get("decision", "").strip('"')
            bound = float("inf") if le == "+Inf" else float(le)
            hist.setdefault(("decision", decision), []).append((bound, float(value)))
        elif name.endswith(("_total", "_sessions", "_rows")) or name.endswith("_count"):
            out[name] = out.get(name, 0.0) + float(value)
    seen.metrics = out
    seen.histograms = {k: sorted(v) for k, v in hist.items()}


def histogram_quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """Prometheus-style quantile (linear within the bucket) of cumulative buckets."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    target = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= target:
            if bound == float("inf"):
                return lower
            span = count - below
            return lower + (bound - lower) * ((target - below) / span if span else 1.0)
        lower, below = bound, count
    return lower


# -- rendering ------------------------------------------------------------------------------
def live_view(seen: Seen, started: float, where: str, width: int) -> Group:
    m = seen.metrics
    events = m.get("agentwatch_events_consumed_total", 0.0)
    elapsed = max(1e-6, time.monotonic() - started)
    head = (
        f"[bold]{events:,.0f}[/] events ({events / elapsed:,.0f}/s) · "
        f"[bold]{m.get('agentwatch_active_sessions', 0):,.0f}[/] active sessions · "
        f"[yellow]{len(seen.alerts)}[/] alerts · "
        f"[red]{seen.kills_verified}[/] kill signals verified"
        + (f" · [red]{seen.kills_invalid} INVALID[/]" if seen.kills_invalid else "")
        + f" · {m.get('agentwatch_events_rejected_total', 0):,.0f} dead-lettered"
    )
    g = seen.simulator.get("gateway")
    if g:
        lat = g["kill_latency_ms"]
        head += (
            f"\ngateway: [bold]{g['sessions_revoked']}[/] sessions revoked · "
            f"{g['events_blocked']} calls refused · [green]{g['harms_prevented']}[/] harmful "
            f"steps prevented"
            + (f" · kill p50 {lat['p50']:.0f} ms" if lat.get("p50") is not None else "")
        )
    wide = width >= WIDE
    table = Table(expand=True, box=None, pad_edge=False)
    table.add_column("time", width=8, no_wrap=True)
    table.add_column("what", width=11, no_wrap=True)
    if wide:
        table.add_column("agent", ratio=2, overflow="fold")
        table.add_column("root session", ratio=2, overflow="fold")
        table.add_column("rule", width=13, no_wrap=True)
        table.add_column("detail", ratio=5, overflow="fold")
    else:
        table.add_column("rule", width=13, no_wrap=True)
        table.add_column("session", ratio=1, no_wrap=True, overflow="ellipsis")
    for row in reversed(seen.recent):
        if wide:
            table.add_row(*row)
        else:
            table.add_row(row[0], row[1], row[4], f"{row[2]} …{row[3][-6:]}")
    return Group(Panel(head, title="agentwatch demo", subtitle=where, border_style="blue"), table)


def _labels(path: Path | None) -> list[dict[str, Any]]:
    if path is None or not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue  # the simulator was stopped while writing its last line
    return out


def summary(seen: Seen, stored: dict[str, int], elapsed: float, labels_path: Path | None) -> Table:
    """The closing report (two columns: fits 80 columns)."""
    m = seen.metrics
    labels = _labels(labels_path)
    t = Table(title=f"agentwatch demo: {elapsed:.0f}s", show_header=True)
    t.add_column("")
    t.add_column("count", justify="right")

    def section(name: str) -> None:
        t.add_row(f"[bold]{name}[/]", "", end_section=False)

    section("traffic")
    t.add_row("events processed", f"{m.get('agentwatch_events_consumed_total', 0):,.0f}")
    t.add_row("records dead-lettered", f"{m.get('agentwatch_events_rejected_total', 0):,.0f}")
    benign = [lab for lab in labels if lab["label"] == "benign"]
    attacks = [lab for lab in labels if lab["label"] == "attack"]
    g = seen.simulator.get("gateway") or {}
    # attacks that got to their harmful step (it happened, or the gateway stopped it): the
    # others were still on their way when the demo stopped
    reached = set(seen.simulator.get("harmed_roots", ())) | set(g.get("prevented_roots", ()))
    done = [lab for lab in attacks if lab["session_id"] in reached]
    if labels:
        t.add_row("sessions simulated: benign", f"{len(benign)}")
        t.add_row(
            "sessions simulated: attacks (reached their harmful step)",
            f"{len(attacks)} ({len(done)})",
        )
        by_family = Counter(lab["attack_type"] for lab in done)
        killed_by_family = Counter(
            lab["attack_type"] for lab in done if lab["session_id"] in seen.killed_roots
        )
        for fam, n in sorted(by_family.items()):
            t.add_row(f"  {fam}", f"{killed_by_family[fam]}/{n} killed")
    section("detections")
    t.add_row("alerts (distinct)", f"{len(seen.alerts)}")
    for rule, n in seen.by_rule.most_common():
        t.add_row(f"  {rule}", f"{n}")
    t.add_row("kill signals verified", f"{seen.kills_verified}")
    for rule, n in seen.kills_by_rule.most_common():
        t.add_row(f"  by {rule}", f"{n}")
    t.add_row("kill signals failing verification", f"{seen.kills_invalid}")
    t.add_row("sessions revoked", f"{len(seen.killed_sessions)}")
    if seen.first_kill_after_s is not None:
        t.add_row("first kill signal after start", f"{seen.first_kill_after_s:.1f}s")
    if labels:
        ids = {lab["session_id"] for lab in benign}
        t.add_row("benign sessions alerted", _frac(len(ids & seen.alerted_roots), len(ids)))
        t.add_row("benign sessions killed", _frac(len(ids & seen.killed_roots), len(ids)))
        atk = {lab["session_id"] for lab in done}
        t.add_row(
            "attacks killed (of those that reached their harmful step)",
            _frac(len(atk & seen.killed_roots), len(atk)),
        )
    if g:
        section("the gateway (honours kill signals)")
        stopped = len(set(g["prevented_roots"]))
        t.add_row("attacks stopped before their harmful step", _frac(stopped, len(done)))
        t.add_row("harmful steps prevented", f"{g['harms_prevented']}")
        t.add_row("agent calls refused after a kill", f"{g['events_blocked']}")
        ignored = g["events_after_kill_ignored"]
        t.add_row("calls let through by gateways ignoring kills", f"{ignored}")
        lat = g["kill_latency_ms"]
        if lat.get("n"):
            t.add_row(
                "kill latency: trigger event produced -> signal verified",
                f"p50 {lat['p50']:.0f} ms · p99 {lat['p99']:.0f} ms",
            )
    dec = seen.histograms.get(("decision", "kill"))
    p50, p99 = (histogram_quantile(dec, 0.5), histogram_quantile(dec, 0.99)) if dec else (None,) * 2
    if p50 is not None and p99 is not None:
        t.add_row(
            "worker: event time -> kill decision (simulator clock)", f"p50 {p50 * 1000:.0f} ms · "
            f"p99 {p99 * 1000:.0f} ms"
        )  # fmt: skip
    if stored:
        section("ClickHouse")
        for table, n in stored.items():
            t.add_row(f"ClickHouse {table} rows", f"{n:,}")
    return t


def _frac(n: int, d: int) -> str:
    return f"{n}/{d} ({100 * n / d:.1f}%)" if d else "0"
