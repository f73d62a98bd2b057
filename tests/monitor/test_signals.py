"""Signing and verifying kill signals (pure, no broker)."""

from __future__ import annotations

import base64
import os
import stat
import time
from pathlib import Path

import orjson
import pytest

from monitor.signals import Signer, verify_set
from schemas.errors import InvalidSignal, SigningError
from schemas.signals import SESSION_REVOKED, session_revoked_claims

ISS, AUD = "https://agentwatch.test", "urn:rc"


def _claims(iat: int) -> object:
    return session_revoked_claims(
        issuer=ISS,
        audience=AUD,
        alert_uid="aw-1",
        session_id="s1",
        tenant="acme",
        workload_id=None,
        agent_id="billing",
        credential_iss=None,
        credential_jti=None,
        iat=iat,
        event_timestamp=iat,
        reason="test",
    )


def test_key_is_created_once_private_and_reused(tmp_path: Path) -> None:
    a = Signer.load_or_create(None, tmp_path)
    b = Signer.load_or_create(None, tmp_path)
    assert a.kid == b.kid
    mode = stat.S_IMODE(os.stat(tmp_path / "signing-key.pem").st_mode)
    assert mode == 0o600
    (key,) = a.jwks()["keys"]
    assert key["kid"] == a.kid and "d" not in key and key["alg"] == "ES256"


def test_signed_set_verifies_and_has_the_set_header(tmp_path: Path) -> None:
    signer = Signer.load_or_create(None, tmp_path)
    now = int(time.time())
    token = signer.sign(_claims(now))  # type: ignore[arg-type]
    header = orjson.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header == {"alg": "ES256", "typ": "secevent+jwt", "kid": signer.kid}
    claims = verify_set(token, signer.jwks(), issuer=ISS, audience=AUD, max_age_s=60)
    assert claims.sub_id.session.id == "s1" and SESSION_REVOKED in claims.events


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"key": "other"}, "signature"),
        ({"issuer": "https://x"}, "iss"),
        ({"audience": "urn:other"}, "aud"),
        ({"now_delta": 3600}, "freshness"),
        ({"now_delta": -3600}, "freshness"),
        ({"tamper": True}, "signature"),
    ],
)
def test_verification_rejects_what_a_receiver_must_reject(
    tmp_path: Path, change: dict[str, object], words: str
) -> None:
    signer = Signer.load_or_create(None, tmp_path / "a")
    other = Signer.load_or_create(None, tmp_path / "b")
    now = int(time.time())
    token = signer.sign(_claims(now))  # type: ignore[arg-type]
    if change.get("tamper"):
        token = token[:-6] + ("AAAAAA" if not token.endswith("AAAAAA") else "BBBBBB")
    with pytest.raises(InvalidSignal, match=words):
        verify_set(
            token,
            (other if change.get("key") == "other" else signer).jwks(),
            issuer=str(change.get("issuer", ISS)),
            audience=str(change.get("audience", AUD)),
            max_age_s=60,
            now=now + int(change.get("now_delta", 0)),  # type: ignore[call-overload]
        )


def test_a_set_with_exp_is_refused(tmp_path: Path) -> None:
    signer = Signer.load_or_create(None, tmp_path)
    now = int(time.time())
    bad = signer.sign(
        {"iss": ISS, "aud": AUD, "iat": now, "exp": now + 60, "jti": "j",
         "events": {SESSION_REVOKED: {}}}
    )  # fmt: skip
    with pytest.raises(InvalidSignal, match="exp"):
        verify_set(bad, signer.jwks(), issuer=ISS, audience=AUD, max_age_s=60)


def test_a_public_or_wrong_key_is_refused(tmp_path: Path) -> None:
    signer = Signer.load_or_create(None, tmp_path)
    public = tmp_path / "public.pem"
    public.write_bytes(signer.key.as_pem(private=False))
    with pytest.raises(SigningError, match="public key"):
        Signer.load_or_create(public, tmp_path)
    junk = tmp_path / "junk.pem"
    junk.write_text("not a key")
    with pytest.raises(SigningError, match="cannot load"):
        Signer.load_or_create(junk, tmp_path)
