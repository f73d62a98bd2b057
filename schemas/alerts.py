"""Alerts: OCSF 1.6 Detection Findings (class_uid 2004) on ``monitor.alerts``.

SIEMs ingest them as they are. ``finding_info.uid`` is deterministic (the same detection in
the same root session always gets the same id), so replays and updates collapse: an alert
re-emitted as evidence grows keeps its uid and has ``activity_id`` 2 (Update). agentwatch's
own members live under ``unmapped.agentwatch``.

>>> uid = finding_uid("acme", "sess-7", "AW-COMBO-001")
>>> uid == finding_uid("acme", "sess-7", "AW-COMBO-001"), uid.startswith("aw-")
(True, True)
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.taxonomy import ATLAS_TECHNIQUES, ATLAS_VERSION, normalize_tag, tag_kind

OCSF_VERSION = "1.6.0"
PRODUCT = {"name": "agentwatch", "vendor_name": "agentwatch", "version": "0.1.0"}
_NS = uuid.UUID("6f1c1c1e-8a52-4f4b-9a3e-6d0e2b7c4a11")

Severity = Literal["informational", "low", "medium", "high", "critical"]
SEVERITY_IDS: dict[str, int] = {
    "informational": 1,
    "low": 2,
    "medium": 3,
    "high": 4,
    "critical": 5,
}
SEVERITY_NAMES = {v: k.capitalize() for k, v in SEVERITY_IDS.items()}
Response = Literal["alert", "kill_session"]
Mode = Literal["shadow", "enforce"]


def finding_uid(tenant: str | None, root_session_id: str, key: str) -> str:
    """Deterministic alert id for one detection ``key`` (rule id, ...) in one root session."""
    name = f"{tenant or ''}\x1f{root_session_id}\x1f{key}"
    return "aw-" + str(uuid.uuid5(_NS, name))


class _Out(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class Analytic(_Out):
    uid: str
    name: str
    type_id: int = 1
    type: str = "Rule"
    version: str | None = None


class AttackRef(_Out):
    uid: str
    name: str


class Attack(_Out):
    version: str = ATLAS_VERSION
    technique: AttackRef
    tactic: AttackRef | None = None


class Tag(_Out):
    name: str
    value: str


class RelatedEvent(_Out):
    uid: str
    product_uid: str = "agentwatch"


class FindingInfo(_Out):
    uid: str
    title: str
    desc: str | None = None
    analytic: Analytic
    attacks: list[Attack] = Field(default_factory=list)
    tags: list[Tag] = Field(default_factory=list)
    related_events: list[RelatedEvent] = Field(default_factory=list)
    related_events_count: int = 0
    types: list[str] = Field(default_factory=list)
    created_time: int
    modified_time: int
    first_seen_time: int | None = None
    last_seen_time: int | None = None


class SessionOut(_Out):
    uid: str
    issuer: str | None = None
    credential_uid: str | None = None


class UserOut(_Out):
    uid: str
    name: str | None = None
    type: str = "Service"
    type_id: int = 4


class ActorOut(_Out):
    app_name: str
    session: SessionOut
    user: UserOut | None = None


class DetectionFinding(_Out):
    """The alert as it goes on the wire (OCSF 1.6 Detection Finding)."""

    class_uid: int = 2004
    class_name: str = "Detection Finding"
    category_uid: int = 2
    category_name: str = "Findings"
    activity_id: int
    activity_name: str
    type_uid: int
    type_name: str
    time: int
    severity_id: int
    severity: str
    status_id: int = 1
    status: str = "New"
    risk_score: int
    confidence_score: int | None = None
    is_alert: bool = True
    message: str
    metadata: dict[str, Any]
    finding_info: FindingInfo
    actor: ActorOut
    unmapped: dict[str, Any]


def _attacks(ids: Sequence[str]) -> list[Attack]:
    out = []
    for tid in ids:
        name, tactic_id, tactic_name = ATLAS_TECHNIQUES.get(tid, (tid, "", ""))
        out.append(
            Attack(
                technique=AttackRef(uid=tid, name=name),
                tactic=AttackRef(uid=tactic_id, name=tactic_name) if tactic_id else None,
            )
        )
    return out


def _tags(tags: Sequence[str]) -> list[Tag]:
    out = []
    for t in tags:
        kind = tag_kind(t)
        out.append(Tag(name=kind or "tag", value=normalize_tag(t)))
    return out


def detection_finding(
    *,
    uid: str,
    rule_id: str,
    rule_name: str,
    title: str,
    message: str,
    severity: str,
    risk_score: float,
    tenant: str | None,
    root_session_id: str,
    session_id: str,
    agent_id: str,
    workload_id: str | None,
    credential_iss: str | None,
    credential_jti: str | None,
    on_behalf_of: str | None,
    evidence: Sequence[str],
    tags: Sequence[str],
    attacks: Sequence[str],
    created_ms: int,
    modified_ms: int,
    first_seen_ms: int | None,
    last_seen_ms: int | None,
    update: bool,
    response: Response,
    mode: Mode,
    kill_signal_jti: str | None,
    trigger_event_id: str,
    trigger_seq: int | None,
    session_risk: float,
    rule_version: str | None = None,
    explanation: dict[str, Any] | None = None,
    findings: list[dict[str, Any]] | None = None,
    desc: str | None = None,
) -> DetectionFinding:
    """Build the OCSF Detection Finding for one alert (created or updated)."""
    sev_id = SEVERITY_IDS.get(severity, 3)
    activity_id = 2 if update else 1
    agentwatch: dict[str, Any] = {
        "root_session_id": root_session_id,
        "tenant": tenant,
        "response": response,
        "mode": mode,
        "kill_signal_jti": kill_signal_jti,
        "trigger_event_id": trigger_event_id,
        "trigger_seq": trigger_seq,
        "risk": round(float(session_risk), 4),
        "on_behalf_of": on_behalf_of,
    }
    if explanation:
        agentwatch["explanation"] = explanation
    if findings:
        agentwatch["findings"] = findings
    return DetectionFinding(
        activity_id=activity_id,
        activity_name="Update" if update else "Create",
        type_uid=200400 + activity_id,
        type_name="Detection Finding: " + ("Update" if update else "Create"),
        time=modified_ms,
        severity_id=sev_id,
        severity=SEVERITY_NAMES[sev_id],
        status_id=1,
        status="New",
        risk_score=max(0, min(100, round(risk_score * 100))),
        message=message,
        metadata={
            "version": OCSF_VERSION,
            "product": PRODUCT,
            "uid": uid,
            "correlation_uid": f"{tenant or ''}:{root_session_id}",
            "log_name": "monitor.alerts",
        },
        finding_info=FindingInfo(
            uid=uid,
            title=title,
            desc=desc,
            analytic=Analytic(uid=rule_id, name=rule_name, version=rule_version),
            attacks=_attacks(attacks),
            tags=_tags(tags),
            related_events=[RelatedEvent(uid=e) for e in evidence],
            related_events_count=len(evidence),
            created_time=created_ms,
            modified_time=modified_ms,
            first_seen_time=first_seen_ms,
            last_seen_time=last_seen_ms,
        ),
        actor=ActorOut(
            app_name=agent_id,
            session=SessionOut(
                uid=session_id, issuer=credential_iss, credential_uid=credential_jti
            ),
            user=UserOut(uid=workload_id, name=agent_id) if workload_id else None,
        ),
        unmapped={"agentwatch": agentwatch},
    )
