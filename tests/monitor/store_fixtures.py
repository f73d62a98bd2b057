"""Fixtures for store tests: the real embedded ClickHouse engine (chdb) on a temporary path.

chdb runs one engine per process and per path: the tests share one path for the session and
isolate themselves with one database each; every sink and client is closed after its test,
which releases the engine for other tests (other paths) in the same process.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from monitor.redaction import Redactor
from monitor.simulator import Simulator
from monitor.sinks import ClickHouseSink
from schemas.alerts import DetectionFinding, detection_finding, finding_uid
from schemas.events import ActionEvent, validate_event
from schemas.signals import SessionRevokedClaims, session_revoked_claims

KEY = b"test-redaction-key-0123456789abcdef"


@pytest.fixture(scope="session")
def chdb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("chdb")


@pytest.fixture
def make_sink(chdb_dir: Path, tmp_path: Path) -> Iterator[Callable[..., ClickHouseSink]]:
    made: list[ClickHouseSink] = []

    def make(**kw: Any) -> ClickHouseSink:
        kw.setdefault("database", "t_" + uuid.uuid4().hex[:10])
        kw.setdefault("datadir", tmp_path / "data")
        kw.setdefault("redactor", Redactor(KEY, ["password", "secret", "token", "api_key"]))
        kw.setdefault("flush_interval_s", 0.05)
        url = kw.pop("url", f"chdb://{chdb_dir}")
        sink = ClickHouseSink(url, **kw)
        made.append(sink)
        return sink

    yield make
    for s in made:
        s.close(timeout=2)


@pytest.fixture
def client(chdb_dir: Path) -> Iterator[Any]:
    """An operator's own connection to the same engine (shares it: same process)."""
    import clickhouse_connect

    c = clickhouse_connect.get_client(dsn=f"chdb://{chdb_dir}")
    yield c
    c.close()


def sim_events(
    sessions: int = 30, seed: int = 1, attack_ratio: float = 0.3
) -> tuple[Simulator, list[tuple[bytes, ActionEvent]]]:
    sim = Simulator(seed=seed, sessions=sessions, attack_ratio=attack_ratio)
    out = []
    for doc in sim.events():
        out.append((orjson.dumps(doc), validate_event(doc)))
    return sim, out


def make_alert(
    event: ActionEvent,
    *,
    rule: str = "AW-TEST-001",
    update: bool = False,
    risk: float = 0.7,
    message: str = "test alert",
    response: str = "alert",
    kill_jti: str | None = None,
    modified_ms: int | None = None,
) -> DetectionFinding:
    root = event.root_session_id
    ms = int(event.ts * 1000)
    return detection_finding(
        uid=finding_uid(event.tenant, root, rule),
        rule_id=rule,
        rule_name="test rule",
        title="Test finding",
        message=message,
        severity="high",
        risk_score=risk,
        tenant=event.tenant,
        root_session_id=root,
        session_id=event.session.id,
        agent_id=event.actor.agent_id,
        workload_id=event.actor.workload_id,
        credential_iss=None,
        credential_jti=None,
        on_behalf_of=None,
        evidence=[event.event_id],
        tags=["ASI02"],
        attacks=[],
        created_ms=ms,
        modified_ms=modified_ms or ms,
        first_seen_ms=ms,
        last_seen_ms=ms,
        update=update,
        response=response,  # type: ignore[arg-type]
        mode="enforce",
        kill_signal_jti=kill_jti,
        trigger_event_id=event.event_id,
        trigger_seq=event.session.seq,
        session_risk=risk,
    )


def make_signal(event: ActionEvent, alert: DetectionFinding) -> SessionRevokedClaims:
    return session_revoked_claims(
        issuer="https://agentwatch.test",
        audience="urn:test",
        alert_uid=alert.finding_info.uid,
        session_id=event.session.id,
        tenant=event.tenant,
        workload_id=event.actor.workload_id,
        agent_id=event.actor.agent_id,
        credential_iss=None,
        credential_jti=None,
        iat=int(event.ts),
        event_timestamp=int(event.ts),
        reason="test kill",
    )
