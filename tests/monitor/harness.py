"""Helpers for tests on the real embedded broker: a worker subprocess, producing, collecting."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from monitor.processes import die_with_parent, free_port, stop_process
from monitor.settings import Settings
from monitor.topics import ensure_topics

TRIFECTA_TOOLS = ("vault.read_secret", "db.update_rows", "http.post")


def event(
    sid: str, seq: int, kind: str, tool: str | None = None, root: str | None = None, **extra: Any
) -> dict[str, Any]:
    """An action event of the contract (second ``seq`` of 2026-07-01 12:00 as its time)."""
    doc: dict[str, Any] = {
        "event_id": f"{sid}-e{seq}",
        "time": f"2026-07-01T12:{seq // 60:02d}:{seq % 60:02d}Z",
        "kind": kind,
        "session": {"id": sid, "seq": seq},
        "actor": {
            "agent_id": "billing-agent",
            "workload_id": "spiffe://prod.acme.com/ns/agents/sa/billing-agent",
        },
        "tenant": "acme",
    }
    if root:
        doc["session"]["root_id"] = root
    if tool:
        doc["tool"] = {"name": tool}
    doc.update(extra)
    return doc


def trifecta(sid: str) -> list[dict[str, Any]]:
    """session_start, secret retrieval, production write, external export, session_end."""
    return [
        event(sid, 0, "session_start"),
        event(sid, 1, "tool_call", "vault.read_secret"),
        event(
            sid,
            2,
            "tool_call",
            "db.update_rows",
            resources=[{"type": "table", "environment": "prod"}],
        ),
        event(
            sid,
            3,
            "tool_call",
            "http.post",
            transfer={"destination": "https://paste.example.net/x", "external": True},
        ),
        event(sid, 4, "session_end"),
    ]


def expected_alerts(events: list[dict[str, Any]]) -> dict[str, tuple[str, tuple[str, ...]]]:
    """``alert uid -> (rule, evidence)`` of an uninterrupted offline run of the same engine."""
    from detectors.engine import AlertDecision
    from monitor.detection import engine_from_settings
    from monitor.pipeline import Pipeline
    from schemas.events import validate_event

    pipeline = Pipeline(engine_from_settings(Settings()))
    out: dict[str, tuple[str, tuple[str, ...]]] = {}
    decisions = []
    for i, doc in enumerate(events):
        decisions += pipeline.process(validate_event(doc), now=float(i))
    decisions += pipeline.tick(1e9)
    for d in decisions:
        if isinstance(d, AlertDecision):
            out[d.alert.uid] = (d.alert.detector, tuple(d.alert.evidence))
    return out


def published_alerts(records: list[Any]) -> dict[str, tuple[str, tuple[str, ...]]]:
    """``alert uid -> (rule, evidence)`` of the latest version of each published alert."""
    out: dict[str, tuple[str, tuple[str, ...]]] = {}
    for r in records:
        a = json.loads(r.value)
        info = a["finding_info"]
        out[info["uid"]] = (
            info["analytic"]["uid"],
            tuple(e["uid"] for e in info["related_events"]),
        )
    return out


def topic_env(prefix: str) -> dict[str, str]:
    """Environment giving one test its own app id and topics on the shared broker."""
    names = {
        "APP_ID": f"{prefix}-aw",
        "TOPIC_ACTIONS": f"{prefix}.actions",
        "TOPIC_DLQ": f"{prefix}.actions.dlq",
        "TOPIC_LATE": f"{prefix}.actions.late",
        "TOPIC_ALERTS": f"{prefix}.alerts",
        "TOPIC_REVOCATIONS": f"{prefix}.revocations",
        "TOPIC_PRIVILEGED": f"{prefix}.privileged",
    }
    return {"AGENTWATCH_" + k: v for k, v in names.items()}


class Worker:
    """``agentwatch worker`` as a child process, on its own web port."""

    #: every worker a test made: the ``reap_workers`` fixture stops those still running
    started: list[Worker] = []

    def __init__(self, bootstrap: str, datadir: Path, env: dict[str, str]) -> None:
        self.bootstrap = bootstrap
        self.port = free_port()
        self.datadir = datadir
        self.env = {
            **os.environ,
            "AGENTWATCH_PROFILE": "embedded",
            "AGENTWATCH_BROKER": f"kafka://{bootstrap}",
            "AGENTWATCH_WEB_PORT": str(self.port),
            "AGENTWATCH_DATADIR": str(datadir),
            "AGENTWATCH_STORE_URL": f"chdb://{datadir.resolve()}/clickhouse",
            "AGENTWATCH_LOG_LEVEL": "info",
            **env,
        }
        self.settings = Settings.from_env(self.env)
        ensure_topics(bootstrap, self.settings)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = datadir / "worker.log"
        Worker.started.append(self)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> Worker:
        self.datadir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "monitor.cli", "worker"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                with urllib.request.urlopen(self.url + "/readyz", timeout=1) as resp:
                    if json.loads(resp.read())["ready"]:
                        return self
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()  # not left running (and loading the machine) for the rest of the session
        raise TimeoutError(f"worker not ready after {timeout}s:\n{self.tail()}")

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(self.url + path, timeout=5) as resp:
            return bytes(resp.read())

    def metric(self, name: str, **labels: str) -> float:
        """Sum of a metric's samples (matching ``labels``) from ``/metrics``."""
        total = 0.0
        for line in self.get("/metrics").decode().splitlines():
            if not line.startswith(name) or line.startswith("#"):
                continue
            head, _, value = line.rpartition(" ")
            metric, _, rest = head.partition("{")
            if metric != name:
                continue
            if all(f'{k}="{v}"' in rest for k, v in labels.items()):
                total += float(value)
        return total

    def wait_metric(
        self, name: str, at_least: float, timeout: float = 30.0, **labels: str
    ) -> float:
        deadline = time.monotonic() + timeout
        while True:
            value = self.metric(name, **labels)
            if value >= at_least or time.monotonic() > deadline:
                return value
            time.sleep(0.05)

    def stored(self, root: str) -> dict[str, list[dict[str, Any]]]:
        """What the event store holds for a root session (through the worker's read API)."""
        return dict(json.loads(self.get(f"/api/sessions/{root}/replay")))

    def wait_stored(
        self, root: str, events: int, alerts: int, signals: int, timeout: float = 30.0
    ) -> dict[str, list[dict[str, Any]]]:
        """Poll the store until the session has at least these rows (or the timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            doc = self.stored(root)
            have = (len(doc["events"]), len(doc["alerts"]), len(doc["signals"]))
            if (
                have >= (events, alerts, signals)
                and all(h >= w for h, w in zip(have, (events, alerts, signals), strict=True))
                or time.monotonic() > deadline
            ):
                return doc
            time.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL: no final checkpoint, no flush."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int | None:
        return stop_process(self.proc, 30.0) if self.proc is not None else None


def produce(
    bootstrap: str,
    topic: str,
    records: Iterable[tuple[bytes | None, bytes | None]] | Iterable[Any],
    headers: list[tuple[str, bytes]] | None = None,
) -> None:
    """Send records (``(key, value)`` pairs, or event dicts keyed by their root session)."""
    p = KafkaProducer(bootstrap_servers=bootstrap, max_request_size=16 * 1024 * 1024)
    try:
        for r in records:
            if isinstance(r, dict):
                key = (r["session"].get("root_id") or r["session"]["id"]).encode()
                p.send(topic, key=key, value=json.dumps(r).encode(), headers=headers)
            else:
                p.send(topic, key=r[0], value=r[1], headers=headers)
        p.flush()
    finally:
        p.close()


class Collector:
    """Reads topics from the beginning (no consumer group), keeping every record."""

    def __init__(self, bootstrap: str, topics: Iterable[str], partitions: int) -> None:
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, fetch_max_wait_ms=10)
        tps = [TopicPartition(t, i) for t in topics for i in range(partitions)]
        self.consumer.assign(tps)
        self.consumer.seek_to_beginning()
        self.records: dict[str, list[Any]] = {t: [] for t in topics}

    def poll(
        self,
        until: Callable[[dict[str, list[Any]]], bool],
        timeout: float = 20.0,
        settle: float = 0.0,
    ) -> dict[str, list[Any]]:
        """Poll until ``until(records)`` holds, then ``settle`` seconds more (to see extras)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not until(self.records):
            self._poll_once()
        end = time.monotonic() + settle
        while time.monotonic() < end:
            self._poll_once()
        return self.records

    def _poll_once(self) -> None:
        for tp, recs in self.consumer.poll(timeout_ms=100).items():
            self.records[tp.topic].extend(recs)

    def close(self) -> None:
        self.consumer.close()
