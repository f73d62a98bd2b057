"""Kill signals: CAEP ``session-revoked`` Security Event Tokens (RFC 8417) on ``agent.revocations``.

The record value is the compact JWS (header ``typ: secevent+jwt``, ES256, ``kid``); this module
holds the claim set's shape. Signing and verification are in ``monitor.signals``. The ``jti`` is
derived from the decision (the alert id), so a decision re-taken after a crash yields the same
``jti`` and receivers that dedupe on ``jti`` act once.

>>> set_jti("aw-1") == set_jti("aw-1") != set_jti("aw-2")
True
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

SESSION_REVOKED = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
SET_TYP = "secevent+jwt"
SET_CONTENT_TYPE = "application/secevent+jwt"
_NS = uuid.UUID("0b7f0f7e-2f0e-4c1e-8f65-3d8a4c5e9b21")


def set_jti(alert_uid: str, event_type: str = SESSION_REVOKED) -> str:
    """The SET id for one kill decision (deterministic: same decision, same jti)."""
    return str(uuid.uuid5(_NS, f"{alert_uid}\x1f{event_type}"))


class _M(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class OpaqueId(_M):
    format: str = "opaque"
    id: str


class UriId(_M):
    format: str = "uri"
    uri: str


class JwtId(_M):
    format: str = "jwt_id"
    iss: str
    jti: str


class ComplexSubject(_M):
    """RFC 9493 / SSF complex subject: the session, the agent, the token, the tenant."""

    format: str = "complex"
    session: OpaqueId
    agent: UriId | None = None
    token: JwtId | None = None
    tenant: OpaqueId | None = None


class SessionRevokedClaims(_M):
    """The claims of a CAEP session-revoked SET."""

    iss: str
    jti: str
    iat: int
    aud: str | list[str]
    txn: str
    sub_id: ComplexSubject
    events: dict[str, dict[str, Any]] = Field(default_factory=dict)


def session_revoked_claims(
    *,
    issuer: str,
    audience: str | list[str],
    alert_uid: str,
    session_id: str,
    tenant: str | None,
    workload_id: str | None,
    agent_id: str,
    credential_iss: str | None,
    credential_jti: str | None,
    iat: int,
    event_timestamp: int,
    reason: str,
    extra_event_claims: dict[str, Any] | None = None,
) -> SessionRevokedClaims:
    """Build the claim set of the kill signal for one decision."""
    agent_uri = workload_id or f"urn:agentwatch:agent:{agent_id}"
    token = (
        JwtId(iss=credential_iss, jti=credential_jti) if credential_iss and credential_jti else None
    )
    event: dict[str, Any] = {
        "initiating_entity": "policy",
        "reason_admin": {"en": reason},
        "event_timestamp": event_timestamp,
    }
    if extra_event_claims:
        event.update(extra_event_claims)
    return SessionRevokedClaims(
        iss=issuer,
        jti=set_jti(alert_uid),
        iat=iat,
        aud=audience,
        txn=alert_uid,
        sub_id=ComplexSubject(
            session=OpaqueId(id=session_id),
            agent=UriId(uri=agent_uri),
            token=token,
            tenant=OpaqueId(id=tenant) if tenant else None,
        ),
        events={SESSION_REVOKED: event},
    )
