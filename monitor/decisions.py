"""Decisions to records: OCSF alerts for ``monitor.alerts``, signed SETs for ``agent.revocations``,
privileged-action audit records for ``agent.privileged``.

Pure functions of the decision, the settings and the clock, so the worker, replay and tests
build the same records. Both records carry CloudEvents binary-mode headers (``ce_id``,
``ce_type``, ``ce_source``, ``ce_subject``, ``ce_time``) and a ``content-type``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

import orjson

from detectors.engine import AlertDecision, KillDecision
from monitor.settings import Settings
from monitor.signals import Signer
from schemas.alerts import DetectionFinding, detection_finding
from schemas.privileged import PrivilegedAction
from schemas.signals import (
    SESSION_REVOKED,
    SET_CONTENT_TYPE,
    SessionRevokedClaims,
    session_revoked_claims,
)

ALERT_CE_TYPE = "io.agentwatch.alert.detection_finding.v1"
PRIVILEGED_CE_TYPE = "io.agentwatch.privileged_action.v1"

Header = tuple[str, bytes]


@dataclass(frozen=True, slots=True)
class Record:
    """A record to produce (``None`` key or value: produced as such, e.g. dead letters)."""

    key: bytes | None
    value: bytes | None
    headers: list[Header]


@dataclass(frozen=True, slots=True)
class SignedKill:
    """A kill signal: its claims, its compact JWS and the record that carries it."""

    claims: SessionRevokedClaims
    compact: str
    record: Record


def _rfc3339(ts: float | datetime) -> str:
    when = ts if isinstance(ts, datetime) else datetime.fromtimestamp(ts, UTC)
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@lru_cache(maxsize=64)
def _encoded(text: str) -> bytes:
    """Header values that repeat on every record (types, issuer, content types), once."""
    return text.encode()


def _ce(
    id_: str, type_: str, source: str, subject: str, ts: float | datetime, content_type: str
) -> list[Header]:
    return [
        ("ce_specversion", b"1.0"),
        ("ce_id", id_.encode()),
        ("ce_type", _encoded(type_)),
        ("ce_source", _encoded(source)),
        ("ce_subject", subject.encode()),
        ("ce_time", _rfc3339(ts).encode()),
        ("content-type", _encoded(content_type)),
    ]


def alert_finding(decision: AlertDecision) -> DetectionFinding:
    """The OCSF Detection Finding for one alert decision."""
    a, who = decision.alert, decision.who
    return detection_finding(
        uid=a.uid,
        rule_id=a.detector,
        rule_name=a.title,
        title=a.title,
        message=a.message,
        severity=a.severity,
        risk_score=a.score,
        tenant=who.tenant,
        root_session_id=who.root_session_id,
        session_id=a.session_id,
        agent_id=who.agent_id,
        workload_id=who.workload_id,
        credential_iss=who.credential_iss,
        credential_jti=who.credential_jti,
        on_behalf_of=who.on_behalf_of,
        evidence=a.evidence,
        tags=a.tags,
        attacks=a.attacks,
        created_ms=int(a.created_ts * 1000),
        modified_ms=int(a.modified_ts * 1000),
        first_seen_ms=int(a.first_seen_ts * 1000),
        last_seen_ms=int(a.last_seen_ts * 1000),
        update=a.update,
        response="kill_session" if a.response == "kill_session" else "alert",
        mode="shadow" if a.mode == "shadow" else "enforce",
        kill_signal_jti=a.kill_jti,
        trigger_event_id=a.trigger_event_id,
        trigger_seq=a.trigger_seq,
        session_risk=a.risk,
        rule_version=a.rule_version,
        explanation=a.explanation or None,
    )


def alert_record(finding: DetectionFinding, settings: Settings) -> Record:
    """The ``monitor.alerts`` record: key = root session id, value = the finding's JSON."""
    root = finding.unmapped["agentwatch"]["root_session_id"]
    uid = finding.finding_info.uid
    return Record(
        key=root.encode(),
        value=orjson.dumps(finding.model_dump(mode="json", exclude_none=True)),
        headers=_ce(
            uid, ALERT_CE_TYPE, settings.issuer, root, finding.time / 1000, "application/json"
        ),
    )


def privileged_record(action: PrivilegedAction, settings: Settings) -> Record:
    """The ``agent.privileged`` audit record: key = root session id, value = its JSON."""
    root = action.root_session_id
    return Record(
        key=root.encode(),
        value=action.to_json(),
        headers=_ce(
            action.uid,
            PRIVILEGED_CE_TYPE,
            settings.issuer,
            root,
            action.time,
            "application/json",
        ),  # fmt: skip
    )


def kill_claims(decision: KillDecision, settings: Settings, now: float) -> SessionRevokedClaims:
    """The CAEP session-revoked claims for one kill decision (``jti`` from the decision)."""
    who = decision.who
    aud: str | list[str] = (
        settings.audience[0] if len(settings.audience) == 1 else list(settings.audience)
    )
    claims = session_revoked_claims(
        issuer=settings.issuer,
        audience=aud,
        alert_uid=decision.alert_uid,
        session_id=who.session_id,
        tenant=who.tenant,
        workload_id=who.workload_id,
        agent_id=who.agent_id,
        credential_iss=who.credential_iss,
        credential_jti=who.credential_jti,
        iat=int(now),
        event_timestamp=int(decision.event_ts),
        reason=decision.reason,
        # which event and rule the decision was taken on, for receivers that want to measure
        # or explain (an extension member of the event; CAEP receivers ignore unknown ones)
        extra_event_claims={
            "agentwatch": {
                "root_session_id": who.root_session_id,
                "trigger_event_id": decision.trigger_event_id,
                "trigger_seq": decision.trigger_seq,
                "rule": decision.detector,
            }
        },
    )
    if claims.jti != decision.jti:  # both are set_jti(alert uid); a mismatch is a bug
        raise AssertionError(
            f"kill signal jti {claims.jti} differs from the decision's {decision.jti}"
        )
    return claims


def signed_kill(
    decision: KillDecision, settings: Settings, signer: Signer, now: float
) -> SignedKill:
    """Sign the kill decision; the record for ``agent.revocations`` (key = session id)."""
    claims = kill_claims(decision, settings, now)
    compact = signer.sign(claims)
    sid = decision.who.session_id
    headers = _ce(
        claims.jti, SESSION_REVOKED, settings.issuer, sid, float(claims.iat), SET_CONTENT_TYPE
    )
    return SignedKill(claims, compact, Record(sid.encode(), compact.encode(), headers))
