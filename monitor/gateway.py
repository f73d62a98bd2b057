"""A simulated agent gateway that honours kill signals (closes the loop in the demo).

Real deployments put a gateway (an MCP proxy, an API gateway, a token service) between agents
and their tools; it subscribes to ``agent.revocations`` and refuses every later call of a
revoked session. :class:`Gateway` plays that part for the simulator: a background thread
follows the revocation topic, verifies each SET against the worker's JWKS
(:class:`~monitor.revocations.RevocationVerifier`: signature, ``typ``, ``iss``, ``aud``,
freshness, one action per ``jti``), and :meth:`Gateway.admit` decides, event by event, what
the simulated agents still get to do:

* an event of a revoked session, or of a sub-agent under it, is not produced (the call never
  happens); in its place the gateway reports the session's end (``end_reason: revoked``) once;
* a share of root sessions (``ignore_share``) go through a gateway that ignores revocations,
  so the worker's "activity after a kill signal" rule (AW-REVOKE-002) has something to find;
* what was prevented is counted: events, and the labelled *harmful* events of attacks
  (an attack stopped before its harmful step), and the time from producing the event a kill
  was decided on to receiving the verified signal (the SET names its trigger event).
"""

from __future__ import annotations

import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from monitor.revocations import Received, RevocationVerifier


@dataclass
class GatewayStats:
    """What the gateway saw and did (read by the demo's summary)."""

    signals_verified: int = 0
    signals_invalid: int = 0
    signals_duplicate: int = 0
    sessions_revoked: int = 0
    events_blocked: int = 0
    ends_reported: int = 0
    harms_prevented: int = 0
    events_after_kill_ignored: int = 0
    #: seconds from producing a kill's trigger event to holding its verified signal
    kill_latencies: list[float] = field(default_factory=list)
    #: root sessions whose harmful event was prevented
    prevented_roots: set[str] = field(default_factory=set)

    def as_dict(self) -> dict[str, Any]:
        lat = sorted(self.kill_latencies)
        return {
            "signals_verified": self.signals_verified,
            "signals_invalid": self.signals_invalid,
            "signals_duplicate": self.signals_duplicate,
            "sessions_revoked": self.sessions_revoked,
            "events_blocked": self.events_blocked,
            "ends_reported": self.ends_reported,
            "harms_prevented": self.harms_prevented,
            "events_after_kill_ignored": self.events_after_kill_ignored,
            "prevented_roots": sorted(self.prevented_roots),
            "kill_latency_ms": {
                "n": len(lat),
                "p50": _pct(lat, 0.50),
                "p99": _pct(lat, 0.99),
                "max": round(lat[-1] * 1000, 1) if lat else None,
            },
        }


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return round(values[min(len(values) - 1, int(q * len(values)))] * 1000, 1)


class Gateway:
    """Decides which simulated events still happen, given the kill signals received."""

    def __init__(
        self,
        verifier: RevocationVerifier | None,
        *,
        harm_of: Callable[[str], str | None] = lambda event_id: None,
        ignore_share: float = 0.0,
        seed: int = 0,
        memory: int = 200_000,
    ) -> None:
        self.verifier = verifier
        #: event id -> the root session it harms (the simulator's labels)
        self.harm_of = harm_of
        self.ignore_share = ignore_share
        self._rng = random.Random(seed ^ 0x6A7E)
        self.stats = GatewayStats()
        self._lock = threading.Lock()
        #: session id -> when its verified kill signal arrived
        self.revoked: dict[str, float] = {}
        self._parent: OrderedDict[str, str | None] = OrderedDict()
        self._ignoring: OrderedDict[str, bool] = OrderedDict()
        self._ended: set[str] = set()
        self._sent_at: OrderedDict[str, float] = OrderedDict()
        self._memory = memory
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- kill signals -----------------------------------------------------------------------
    def receive(self, compact: bytes) -> Received | None:
        """Handle one record of the revocation topic (verified before anything is done)."""
        if self.verifier is None:
            return None
        r = self.verifier.receive(compact)
        now = time.monotonic()
        with self._lock:
            if r.outcome == "invalid":
                self.stats.signals_invalid += 1
            elif r.outcome == "duplicate":
                self.stats.signals_duplicate += 1
            elif r.claims is not None:
                self.stats.signals_verified += 1
                sid = r.claims.sub_id.session.id
                if sid not in self.revoked:
                    self.revoked[sid] = now
                    self.stats.sessions_revoked += 1
                trigger = _trigger_of(r.claims.events)
                sent = self._sent_at.get(trigger) if trigger else None
                if sent is not None:
                    self.stats.kill_latencies.append(max(0.0, now - sent))
        return r

    def follow(self, bootstrap: str, topic: str, partitions: int) -> None:
        """Follow ``topic`` in a background thread (every partition, from the beginning)."""
        from kafka import KafkaConsumer, TopicPartition

        consumer = KafkaConsumer(bootstrap_servers=bootstrap, fetch_max_wait_ms=10)
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)

        def loop() -> None:
            try:
                while not self._stop.is_set():
                    for records in consumer.poll(timeout_ms=100).values():
                        for rec in records:
                            if rec.value is not None:
                                self.receive(rec.value)
            finally:
                consumer.close()

        self._thread = threading.Thread(target=loop, name="gateway-revocations", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    # -- agent actions ----------------------------------------------------------------------
    def admit(self, ev: dict[str, Any]) -> dict[str, Any] | None:
        """The event to produce in place of ``ev``: itself, the session's end reported by the
        gateway (the first call of a revoked session), or None (refused)."""
        s = ev["session"]
        sid, root = s["id"], s.get("root_id") or s["id"]
        with self._lock:
            if sid not in self._parent:
                self._parent[sid] = s.get("parent_id")
                if len(self._parent) > self._memory:
                    self._parent.popitem(last=False)
            killed = self._revoked_over(sid)
            if killed and self._ignores(root):
                self.stats.events_after_kill_ignored += 1
                killed = False
            if not killed:
                self._sent_at[ev["event_id"]] = time.monotonic()
                if len(self._sent_at) > self._memory:
                    self._sent_at.popitem(last=False)
                return ev
            self.stats.events_blocked += 1
            if self.harm_of(ev["event_id"]) is not None:
                self.stats.harms_prevented += 1
                self.stats.prevented_roots.add(root)
            if sid in self._ended or ev["kind"] == "session_end":
                return None
            self._ended.add(sid)
            self.stats.ends_reported += 1
            end = {k: v for k, v in ev.items() if k in _END_KEYS}
            end.update(kind="session_end", end_reason="revoked")
            return end

    def _revoked_over(self, sid: str) -> bool:
        seen = set()
        cur: str | None = sid
        while cur is not None and cur not in seen:
            if cur in self.revoked:
                return True
            seen.add(cur)
            cur = self._parent.get(cur)
        return False

    def _ignores(self, root: str) -> bool:
        hit = self._ignoring.get(root)
        if hit is None:
            hit = self._ignoring[root] = self._rng.random() < self.ignore_share
            if len(self._ignoring) > self._memory:
                self._ignoring.popitem(last=False)
        return hit


#: what the session end the gateway reports keeps of the refused event
_END_KEYS = frozenset({"schema_version", "event_id", "time", "tenant", "session", "actor", "otel"})


def _trigger_of(events: dict[str, dict[str, Any]]) -> str | None:
    for event in events.values():
        aw = event.get("agentwatch")
        if isinstance(aw, dict) and aw.get("trigger_event_id"):
            return str(aw["trigger_event_id"])
    return None
