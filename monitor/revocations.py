"""A revocation consumer: follow ``agent.revocations``, verify each SET, act once per ``jti``.

What a gateway or token service does with agentwatch's kill signals, as a small reference
(``agentwatch revocations follow``): verify the signature against the worker's JWKS (fetched
again when an unknown ``kid`` appears, which is how key rotation reaches receivers), check
``typ``, ``iss``, ``aud`` and ``iat``, and dedupe on ``jti`` so a signal delivered twice is
acted on once. Each verified, new signal is handed to ``on_signal``.
"""

from __future__ import annotations

import base64
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from monitor.signals import fetch_jwks, verify_set
from schemas.errors import InvalidSignal
from schemas.signals import SessionRevokedClaims


@dataclass(frozen=True, slots=True)
class Received:
    """One kill signal as a receiver saw it."""

    outcome: str  # "revoked" | "duplicate" | "invalid"
    jti: str | None
    claims: SessionRevokedClaims | None
    reason: str | None = None
    received_at: float = 0.0


class RevocationVerifier:
    """Verifies SETs against a JWKS URL and remembers the last ``memory`` jtis."""

    def __init__(
        self,
        jwks_url: str,
        *,
        issuer: str,
        audience: str,
        max_age_s: float = 300.0,
        memory: int = 100_000,
    ) -> None:
        self.jwks_url = jwks_url
        self.issuer = issuer
        self.audience = audience
        self.max_age_s = max_age_s
        self.memory = memory
        self.jwks: dict[str, Any] = fetch_jwks(jwks_url)
        self._fetched = time.monotonic()
        self.seen: OrderedDict[str, None] = OrderedDict()

    def _verify(self, compact: bytes) -> SessionRevokedClaims:
        kid = _kid_of(compact)
        known = {k.get("kid") for k in self.jwks.get("keys", ())}
        if kid is not None and kid not in known and time.monotonic() - self._fetched > 30:
            self.jwks = fetch_jwks(self.jwks_url)  # an unknown kid: the keys may have rotated
            self._fetched = time.monotonic()
        return verify_set(
            compact,
            self.jwks,
            issuer=self.issuer,
            audience=self.audience,
            max_age_s=self.max_age_s,
        )

    def receive(self, compact: bytes) -> Received:
        now = time.time()
        try:
            claims = self._verify(compact)
        except InvalidSignal as exc:
            return Received("invalid", None, None, str(exc), now)
        if claims.jti in self.seen:
            return Received("duplicate", claims.jti, claims, None, now)
        self.seen[claims.jti] = None
        if len(self.seen) > self.memory:
            self.seen.popitem(last=False)
        return Received("revoked", claims.jti, claims, None, now)


def _kid_of(compact: bytes) -> str | None:
    try:
        head = compact.split(b".", 1)[0]
        header = orjson.loads(base64.urlsafe_b64decode(head + b"=" * (-len(head) % 4)))
        return str(header["kid"]) if "kid" in header else None
    except (ValueError, TypeError):
        return None


def follow(
    bootstrap: str,
    topic: str,
    verifier: RevocationVerifier,
    on_signal: Callable[[Received], None],
    *,
    group_id: str | None = "agentwatch-revocation-consumer",
    from_beginning: bool = False,
    stop: Callable[[], bool] = lambda: False,
    consumer_options: dict[str, Any] | None = None,
) -> None:
    """Consume ``topic`` until ``stop()`` is true, handing every signal to ``on_signal``."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group_id,
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=group_id is not None,
        **(consumer_options or {}),
    )
    try:
        while not stop():
            for records in consumer.poll(timeout_ms=200).values():
                for r in records:
                    if r.value is not None:
                        on_signal(verifier.receive(r.value))
    finally:
        consumer.close()
