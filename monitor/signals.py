"""Kill signals: sign CAEP session-revoked SETs (ES256), publish the JWKS, verify on receipt.

The worker signs with one EC P-256 key: loaded from ``signing_key_path`` (PEM), or generated
on first start and kept in ``<datadir>/signing-key.pem`` (mode 0600), so restarts keep the
same key and ``kid``. The ``kid`` is the key's RFC 7638 thumbprint unless ``signing_kid``
says otherwise. The public key is served as a JWKS at ``/.well-known/jwks.json``.

Receivers call :func:`verify_set`: signature against the JWKS (by ``kid``), ``typ``
``secevent+jwt``, ``iss``, ``aud``, and ``iat`` freshness; SSF forbids ``sub`` and ``exp``.

>>> import tempfile, pathlib
>>> signer = Signer.load_or_create(None, pathlib.Path(tempfile.mkdtemp()))
>>> claims = {"iss": "https://aw", "jti": "j1", "iat": 1_700_000_000, "aud": "rc", "txn": "a1",
...           "sub_id": {"format": "complex", "session": {"format": "opaque", "id": "s1"}},
...           "events": {SESSION_REVOKED: {}}}
>>> token = signer.sign(claims)
>>> verify_set(token, signer.jwks(), issuer="https://aw", audience="rc", max_age_s=60,
...            now=1_700_000_010).jti
'j1'
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet

from schemas.errors import InvalidSignal, SigningError
from schemas.signals import SESSION_REVOKED, SET_TYP, SessionRevokedClaims

ALG = "ES256"
KEY_FILE = "signing-key.pem"

__all__ = ["SESSION_REVOKED", "Signer", "fetch_jwks", "verify_set"]


class Signer:
    """Signs SETs with one ES256 key; knows its public JWKS."""

    def __init__(self, key: ECKey, kid: str | None = None) -> None:
        if key.as_dict().get("crv") != "P-256" or not key.is_private:
            raise SigningError("the signing key must be a private EC P-256 key (ES256)")
        self.key = key
        self.kid = kid or key.thumbprint()
        self._header = {"alg": ALG, "typ": SET_TYP, "kid": self.kid}

    @classmethod
    def load_or_create(cls, path: Path | None, datadir: Path, kid: str | None = None) -> Signer:
        """Load the PEM key at ``path``, or the one in ``datadir`` (created on first use)."""
        if path is not None:
            return cls(_load(path), kid)
        own = datadir / KEY_FILE
        if own.exists():
            return cls(_load(own), kid)
        key = ECKey.generate_key("P-256", private=True)
        datadir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(own, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it first: use theirs
            return cls(_load(own), kid)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key.as_pem(private=True))
        return cls(key, kid)

    def sign(self, claims: SessionRevokedClaims | Mapping[str, Any]) -> str:
        """The compact JWS of ``claims`` (header ``typ: secevent+jwt``, ``kid``)."""
        if isinstance(claims, SessionRevokedClaims):
            payload = claims.model_dump(mode="json", exclude_none=True)
        else:
            payload = dict(claims)
        try:
            return jws.serialize_compact(self._header, orjson.dumps(payload), self.key, [ALG])
        except JoseError as exc:
            raise SigningError(f"could not sign the kill signal: {exc}") from None

    def jwks(self) -> dict[str, Any]:
        """The public key set (one key) to publish at ``/.well-known/jwks.json``."""
        public = self.key.as_dict(private=False)
        public.update({"kid": self.kid, "use": "sig", "alg": ALG})
        return {"keys": [public]}


def _load(path: Path) -> ECKey:
    try:
        key = ECKey.import_key(path.read_bytes())
    except (OSError, ValueError, JoseError) as exc:
        raise SigningError(f"cannot load the signing key {path}: {exc}") from None
    if not key.is_private:
        raise SigningError(f"the signing key {path} is a public key; a private key is needed")
    return key


def fetch_jwks(url: str, timeout: float = 5.0) -> dict[str, Any]:
    """GET a JWKS document (``{"keys": [...]}``)."""
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (http(s) URLs only)
        doc = json.loads(resp.read())
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise InvalidSignal(f"{url} did not return a JWKS document ({{'keys': [...]}})")
    return doc


def verify_set(
    compact: str | bytes,
    jwks: Mapping[str, Any] | KeySet,
    *,
    issuer: str,
    audience: str | Iterable[str],
    max_age_s: float,
    now: float | None = None,
    leeway_s: float = 60.0,
) -> SessionRevokedClaims:
    """Verify a received SET and return its claims, or raise :class:`InvalidSignal`."""
    try:
        keys = jwks if isinstance(jwks, KeySet) else KeySet.import_key_set(dict(jwks))  # type: ignore[arg-type]
        obj = jws.deserialize_compact(compact, keys, [ALG])
    except JoseError as exc:
        raise InvalidSignal(
            f"kill signal signature does not verify: {exc.description or exc}"
        ) from None
    except (ValueError, TypeError, KeyError) as exc:
        raise InvalidSignal(f"kill signal is not a compact JWS: {exc}") from None
    typ = str(obj.headers().get("typ", "")).lower().removeprefix("application/")
    if typ != SET_TYP:
        raise InvalidSignal(f"kill signal header typ is {typ!r}, expected {SET_TYP!r}")
    try:
        claims = orjson.loads(obj.payload)
    except orjson.JSONDecodeError:
        raise InvalidSignal("kill signal payload is not JSON") from None
    if not isinstance(claims, dict):
        raise InvalidSignal("kill signal payload is not a JSON object")
    if claims.get("iss") != issuer:
        raise InvalidSignal(f"kill signal iss is {claims.get('iss')!r}, expected {issuer!r}")
    wanted = {audience} if isinstance(audience, str) else set(audience)
    aud = claims.get("aud")
    got = {aud} if isinstance(aud, str) else set(aud or [])
    if not wanted & got:
        raise InvalidSignal(f"kill signal aud {sorted(got)} does not name {sorted(wanted)}")
    for forbidden in ("sub", "exp"):
        if forbidden in claims:
            raise InvalidSignal(f"kill signal carries {forbidden!r}, which a SET must not")
    iat = claims.get("iat")
    now = time.time() if now is None else now
    if not isinstance(iat, int | float):
        raise InvalidSignal("kill signal has no numeric iat")
    if iat > now + leeway_s or now - iat > max_age_s:
        raise InvalidSignal(
            f"kill signal iat {iat} is outside the {max_age_s:.0f}s freshness window"
        )
    if not isinstance(claims.get("events"), dict) or not claims["events"]:
        raise InvalidSignal("kill signal has no events claim")
    try:
        return SessionRevokedClaims.model_validate(claims)
    except ValueError as exc:
        raise InvalidSignal(f"kill signal claims have the wrong shape: {exc}") from None
