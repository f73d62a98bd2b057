"""Alert hygiene: one alert per detection key and root session, updated, never repeated.

A finding for a key the session has no alert for creates one. A later finding for the same key
updates it (same ``finding_info.uid``, OCSF activity Update) only if it brings something new:
new evidence events, a new chain stage, a higher severity or score; otherwise it is suppressed
and counted. A new stage breaks suppression and escalates the severity at least one level.
Timestamps are event times, so the same input always gives the same alerts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from detectors.base import SEVERITIES, Finding, severity_rank
from schemas.alerts import finding_uid


@dataclass(slots=True)
class AlertState:
    """The current version of one alert."""

    uid: str
    key: str
    detector: str
    title: str
    message: str
    severity: str
    score: float
    mode: str
    action: str
    session_id: str
    evidence: list[str]
    tags: tuple[str, ...]
    attacks: tuple[str, ...]
    stage: str | None
    created_ts: float
    modified_ts: float
    first_seen_ts: float
    last_seen_ts: float
    trigger_event_id: str
    trigger_seq: int | None
    rule_version: str | None = None
    explanation: dict[str, Any] = field(default_factory=dict)
    version: int = 1
    suppressed: int = 0
    response: str = "alert"
    kill_jti: str | None = None
    risk: float = 0.0

    @property
    def update(self) -> bool:
        return self.version > 1


MAX_EVIDENCE = 64


def _escalate(severity: str, steps: int = 1) -> str:
    return SEVERITIES[min(len(SEVERITIES) - 1, severity_rank(severity) + steps)]


def apply_finding(
    alerts: dict[str, Any],
    finding: Finding,
    *,
    tenant: str | None,
    root_session_id: str,
    session_id: str,
    trigger_event_id: str,
    trigger_seq: int | None,
    ts: float,
    first_seen_ts: float | None = None,
) -> AlertState | None:
    """Fold ``finding`` into the session's alerts; return the alert if it must be (re)emitted."""
    key = finding.alert_key
    cur: AlertState | None = alerts.get(key)
    if cur is None:
        cur = AlertState(
            uid=finding_uid(tenant, root_session_id, key),
            key=key,
            detector=finding.detector,
            title=finding.title,
            message=finding.message,
            severity=finding.severity,
            score=finding.score,
            mode=finding.mode,
            action=finding.action,
            session_id=session_id,
            evidence=list(finding.evidence)[:MAX_EVIDENCE],
            tags=finding.tags,
            attacks=finding.attacks,
            stage=finding.stage,
            created_ts=ts,
            modified_ts=ts,
            first_seen_ts=first_seen_ts if first_seen_ts is not None else ts,
            last_seen_ts=ts,
            trigger_event_id=trigger_event_id,
            trigger_seq=trigger_seq,
            rule_version=finding.rule_version,
            explanation=dict(finding.explanation),
        )
        alerts[key] = cur
        return cur

    new_evidence = [e for e in finding.evidence if e not in cur.evidence]
    new_stage = finding.stage is not None and finding.stage != cur.stage
    higher = severity_rank(finding.severity) > severity_rank(cur.severity)
    stronger = finding.score > cur.score + 1e-9
    if not (new_evidence or new_stage or higher or stronger):
        cur.suppressed += 1
        return None
    severity = finding.severity if higher else cur.severity
    if new_stage and not higher:
        severity = _escalate(cur.severity)
    cur.severity = severity
    cur.score = max(cur.score, finding.score)
    cur.evidence = (cur.evidence + new_evidence)[-MAX_EVIDENCE:]
    cur.stage = finding.stage if finding.stage is not None else cur.stage
    cur.title = finding.title
    cur.message = finding.message
    cur.action = finding.action if finding.action == "kill_session" else cur.action
    cur.modified_ts = max(cur.modified_ts, ts)
    cur.last_seen_ts = max(cur.last_seen_ts, ts)
    cur.trigger_event_id = trigger_event_id
    cur.trigger_seq = trigger_seq
    cur.explanation = dict(finding.explanation) or cur.explanation
    cur.version += 1
    return cur
