"""Building one simulated root session (a delegation tree) as contract events.

A :class:`Trace` is one agent session: it numbers its events (``session.seq`` from 0), moves
its clock forward by a human-looking think time between steps, carries the actor's identity
and credential, and can spawn sub-agent traces that share its root. The simulator
(``monitor.simulator``) and the scenarios (``monitor.scenarios``) use it; everything random
comes from the ``random.Random`` passed in, so a seed gives the same events.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any


def rand_id(rng: random.Random, prefix: str = "", n: int = 12) -> str:
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
    return prefix + "".join(rng.choice(alphabet) for _ in range(n))


def rand_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


@dataclass
class Trace:
    """One session of a simulated delegation tree; ``events`` collects what it emitted."""

    rng: random.Random
    tenant: str
    agent_id: str
    session_id: str
    root_id: str
    clock: datetime
    parent_id: str | None = None
    on_behalf_of: str | None = None
    agent_version: str = "1.0.0"
    credential: dict[str, Any] | None = None
    act_chain: list[str] = field(default_factory=list)
    trace_id: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)
    #: secret values this tree's tools returned (shared with sub-agents, like ``events``)
    planted: list[str] = field(default_factory=list)
    seq: int = 0
    ended: bool = False

    @property
    def workload_id(self) -> str:
        return f"spiffe://{self.tenant}.example/ns/agents/sa/{self.agent_id}"

    def tick(self, low: float = 0.3, high: float = 6.0) -> datetime:
        """Move the clock by a think time (log-uniform between ``low`` and ``high`` seconds)."""
        lo, hi = max(low, 0.001), max(high, low + 0.001)
        secs = lo * (hi / lo) ** self.rng.random()
        self.clock += timedelta(seconds=secs)
        return self.clock

    def _emit(self, kind: str, **members: Any) -> dict[str, Any]:
        actor: dict[str, Any] = {
            "agent_id": self.agent_id,
            "agent_version": self.agent_version,
            "workload_id": self.workload_id,
        }
        if self.on_behalf_of:
            actor["on_behalf_of"] = self.on_behalf_of
        if self.credential:
            actor["credential"] = dict(self.credential)
        if self.act_chain:
            actor["act_chain"] = list(self.act_chain)
        session: dict[str, Any] = {"id": self.session_id, "root_id": self.root_id, "seq": self.seq}
        if self.parent_id:
            session["parent_id"] = self.parent_id
        ev: dict[str, Any] = {
            "schema_version": "1",
            "event_id": rand_uuid(self.rng),
            "time": iso(self.clock),
            "tenant": self.tenant,
            "kind": kind,
            "session": session,
            "actor": actor,
        }
        if self.trace_id:
            ev["otel"] = {"trace_id": self.trace_id, "span_id": f"{self.rng.getrandbits(64):016x}"}
        ev.update({k: v for k, v in members.items() if v is not None})
        self.seq += 1
        self.events.append(ev)
        return ev

    def start(self, intent: dict[str, Any] | None) -> dict[str, Any]:
        return self._emit("session_start", intent=intent)

    def issue_credential(self, scope: str, ttl_s: int = 900) -> dict[str, Any]:
        """A short-lived token minted for this session (``credential_issued``), then carried
        by every later action as ``actor.credential``."""
        self.tick(0.05, 0.4)
        jti = rand_uuid(self.rng)
        exp = int(self.clock.timestamp()) + ttl_s
        iss = f"https://sts.{self.tenant}.example"
        ev = self._emit(
            "credential_issued",
            credential_issued={
                "jti": jti,
                "iss": iss,
                "sub": self.workload_id,
                "scope": scope,
                "aud": "https://api." + self.tenant + ".example",
                "exp": exp,
                "ttl_s": ttl_s,
                "token_type": "access_token",
                "bound_session_id": self.session_id,
            },
        )
        self.credential = {"iss": iss, "jti": jti, "scope": scope, "exp": exp}
        return ev

    def call(
        self,
        tool: str,
        arguments: dict[str, Any],
        output: str | None = None,
        *,
        resources: list[dict[str, Any]] | None = None,
        transfer: dict[str, Any] | None = None,
        outcome: str = "success",
        category: str | None = None,
        think: tuple[float, float] = (0.3, 6.0),
    ) -> dict[str, Any]:
        self.tick(*think)
        server = tool.split(".", 1)[0] + "-mcp" if "." in tool else None
        tool_doc: dict[str, Any] = {
            "name": tool,
            "call_id": rand_id(self.rng, "call_", 16),
            "arguments": arguments,
            "outcome": outcome,
        }
        if server:
            tool_doc["server"] = server
        if output is not None:
            tool_doc["output"] = output
        if category:
            tool_doc["category"] = category
        return self._emit("tool_call", tool=tool_doc, resources=resources, transfer=transfer)

    def delegate(
        self,
        child_agent: str,
        scopes: list[str],
        intent: dict[str, Any] | None,
    ) -> Trace:
        """Spawn a sub-agent: a ``delegation`` event here, a ``session_start`` in the child."""
        self.tick(0.2, 2.0)
        child_id = rand_id(self.rng, "sess-", 14)
        self._emit(
            "delegation",
            delegation={
                "child_session_id": child_id,
                "child_agent_id": child_agent,
                "scopes_granted": scopes,
            },
        )
        child = Trace(
            rng=self.rng,
            tenant=self.tenant,
            agent_id=child_agent,
            session_id=child_id,
            root_id=self.root_id,
            clock=self.clock + timedelta(milliseconds=self.rng.randint(20, 400)),
            parent_id=self.session_id,
            on_behalf_of=self.on_behalf_of,
            act_chain=[*self.act_chain, self.workload_id],
            trace_id=self.trace_id,
            events=self.events,
            planted=self.planted,
        )
        child.start(intent)
        return child

    def join(self, child: Trace) -> None:
        """Continue after a sub-agent finished (the parent's clock catches up)."""
        if child.clock > self.clock:
            self.clock = child.clock

    def end(self, reason: str = "completed") -> dict[str, Any]:
        self.tick(0.1, 1.5)
        self.ended = True
        return self._emit("session_end", tool=None, intent=None, end_reason=reason)
