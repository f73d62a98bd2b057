"""Helpers for the fault tests: how big to make them, traffic that spans time, reading back.

The fault tests run short in CI; ``AGENTWATCH_FAULT_SCALE`` (a factor, e.g. ``10``) makes
them longer (more sessions, more records), for a run by hand before a release:

    AGENTWATCH_FAULT_SCALE=10 .venv/bin/python -m pytest -q tests/monitor/test_crash_recovery.py
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaProducer

from tests.monitor.harness import event, trifecta


def scale() -> float:
    """The size factor of the fault tests (``AGENTWATCH_FAULT_SCALE``, default 1)."""
    return max(0.1, float(os.environ.get("AGENTWATCH_FAULT_SCALE", "1")))


def scaled(n: int) -> int:
    return max(1, int(n * scale()))


def benign(sid: str, reads: int = 2) -> list[dict[str, Any]]:
    """session_start, a few harmless reads, session_end."""
    docs = [event(sid, 0, "session_start")]
    docs += [event(sid, i, "tool_call", "fs.read_file") for i in range(1, reads + 1)]
    docs.append(event(sid, reads + 1, "session_end"))
    return docs


def sessions(prefix: str, attacks: int, benigns: int) -> dict[str, list[dict[str, Any]]]:
    """``root session id -> its events``: the combination (secret, prod write, export) in
    ``attacks`` sessions, harmless reads in the others."""
    out = {f"{prefix}-a{i}": trifecta(f"{prefix}-a{i}") for i in range(attacks)}
    out.update({f"{prefix}-b{i}": benign(f"{prefix}-b{i}") for i in range(benigns)})
    return out


def is_attack(root: str) -> bool:
    """Whether a root session of :func:`sessions` is an attack one (``<prefix>-a<n>``; the
    prefix itself may contain ``-a``, a uuid's hex digits)."""
    return root.rsplit("-", 1)[-1].startswith("a")


@dataclass
class Paced:
    """Produces sessions step by step in the background: every session's first event, then
    every session's second event, ..., ``step_s`` apart, so each session spans the run."""

    bootstrap: str
    topic: str
    docs: dict[str, list[dict[str, Any]]]
    step_s: float
    seed: int = 0
    #: event id -> monotonic time it was sent (acknowledged)
    sent: dict[str, float] = field(default_factory=dict)
    error: BaseException | None = None
    _thread: threading.Thread | None = None

    def start(self) -> Paced:
        self._thread = threading.Thread(target=self._run, name="paced-producer", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        rng = random.Random(self.seed)
        producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks=1, linger_ms=2)
        try:
            steps = max(len(d) for d in self.docs.values())
            for step in range(steps):
                batch = [d[step] for d in self.docs.values() if step < len(d)]
                rng.shuffle(batch)
                gap = self.step_s / max(1, len(batch))
                for doc in batch:
                    key = (doc["session"].get("root_id") or doc["session"]["id"]).encode()
                    producer.send(self.topic, key=key, value=json.dumps(doc).encode()).get(30)
                    self.sent[doc["event_id"]] = time.monotonic()
                    time.sleep(gap)
        except BaseException as exc:  # reported by join()
            self.error = exc
        finally:
            producer.close()

    def join(self, timeout: float) -> None:
        assert self._thread is not None
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the producer did not finish"
        if self.error is not None:
            raise self.error

    @property
    def done(self) -> bool:
        return self._thread is not None and not self._thread.is_alive()


def wait_until(check: Callable[[], bool], timeout: float, what: str, step: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(step)


def header(record: Any, name: str) -> str | None:
    for k, v in record.headers or ():
        if k == name:
            return bytes(v).decode()
    return None


def latest_alerts(records: Iterable[Any]) -> dict[str, dict[str, Any]]:
    """``alert uid -> its latest version`` on the alerts topic (an alert's versions share its
    key, the root session id, so they are in order on one partition)."""
    return {json.loads(r.value)["finding_info"]["uid"]: json.loads(r.value) for r in records}
