"""The reference revocation consumer: verify, act once per jti, report what is invalid."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from monitor.broker import EmbeddedBroker
from monitor.revocations import Received, RevocationVerifier, follow
from monitor.settings import Settings
from monitor.signals import Signer
from monitor.topics import ensure_topics
from schemas.signals import session_revoked_claims
from tests.monitor.harness import produce, topic_env

ISS, AUD = "https://agentwatch.test", "urn:gateway"


@pytest.fixture()
def jwks_url(tmp_path: Path) -> Iterator[tuple[str, Signer]]:
    signer = Signer.load_or_create(None, tmp_path)
    body = json.dumps(signer.jwks()).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/.well-known/jwks.json", signer
    server.shutdown()


@pytest.mark.kafka
def test_follow_acts_once_per_jti_and_reports_invalid_signals(
    broker: EmbeddedBroker, jwks_url: tuple[str, Signer]
) -> None:
    url, signer = jwks_url
    settings = Settings.from_env(topic_env(f"rev-{uuid.uuid4().hex[:6]}"))
    ensure_topics(broker.bootstrap, settings)
    claims = session_revoked_claims(
        issuer=ISS, audience=AUD, alert_uid="aw-x", session_id="s1", tenant=None,
        workload_id=None, agent_id="a", credential_iss=None, credential_jti=None,
        iat=int(time.time()), event_timestamp=int(time.time()), reason="test",
    )  # fmt: skip
    token = signer.sign(claims).encode()
    produce(broker.bootstrap, settings.topic_revocations,
            [(b"s1", token), (b"s1", token), (b"s1", token[:-8] + b"AAAAAAAA")])  # fmt: skip
    got: list[Received] = []
    verifier = RevocationVerifier(url, issuer=ISS, audience=AUD)
    follow(
        broker.bootstrap, settings.topic_revocations, verifier, got.append,
        group_id=None, from_beginning=True, stop=lambda: len(got) >= 3,
    )  # fmt: skip
    assert [r.outcome for r in got] == ["revoked", "duplicate", "invalid"]
    assert got[0].jti == claims.jti and "signature" in (got[2].reason or "")
