"""Session state rebuilt from events: one :class:`SessionState` per root session.

A root session is a delegation tree: the root agent's session and every sub-agent session
spawned from it share ``session.root_id`` and are judged together. The state is small and
picklable (it is checkpointed by the worker): the recent steps (bounded), the members of the
tree with their scopes, which capabilities were seen first where, per-detector state, and the
alert and risk bookkeeping of the decisions taken so far.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from schemas.events import Intent

#: Steps kept per root session for context and explanations (older steps are dropped;
#: detectors keep what they need in their own state).
DEFAULT_MAX_STEPS = 64


def _norm(items: Iterable[str] | None) -> tuple[str, ...] | None:
    if items is None:
        return None
    return tuple(sorted({i.strip().lower() for i in items if i and i.strip()}))


def glob_match(value: str, patterns: Iterable[str]) -> bool:
    """Case-insensitive shell-style match (``send_*``, ``*.acme.com``)."""
    v = value.lower()
    return any(fnmatch.fnmatchcase(v, p) for p in patterns)


def host_allowed(host: str, patterns: Iterable[str]) -> bool:
    """``host`` matches a pattern; ``*.example.com`` also allows ``example.com`` itself."""
    h = host.lower()
    return any(fnmatch.fnmatchcase(h, p) or (p.startswith("*.") and h == p[2:]) for p in patterns)


def _intersect(
    parent: tuple[str, ...] | None, child: tuple[str, ...] | None
) -> tuple[str, ...] | None:
    """The narrower of two allow-lists of globs: a child never gets more than its parent."""
    if parent is None:
        return child
    if child is None:
        return parent
    # keep what both allow: a child pattern inside a parent one, or a parent pattern inside a
    # child one (child "*" under parent "read_*" leaves "read_*")
    kept = [c for c in child if glob_match(c, parent)]
    kept += [p for p in parent if glob_match(p, child)]
    return tuple(sorted(set(kept)))


@dataclass(frozen=True, slots=True)
class Scope:
    """Task-scoped authority: what a session may do. ``None`` members are unrestricted."""

    task: str | None = None
    allowed_tools: tuple[str, ...] | None = None
    allowed_destinations: tuple[str, ...] | None = None
    allowed_environments: tuple[str, ...] | None = None
    max_duration_s: float | None = None

    @classmethod
    def from_intent(cls, intent: Intent | None) -> Scope:
        if intent is None:
            return cls()
        return cls(
            task=intent.task,
            allowed_tools=_norm(intent.allowed_tools),
            allowed_destinations=_norm(intent.allowed_destinations),
            allowed_environments=_norm(intent.allowed_environments),
            max_duration_s=intent.max_duration_s,
        )

    def narrowed_by(self, child: Scope) -> Scope:
        """The child's scope, bounded by this (the parent's) scope."""
        dur = [d for d in (self.max_duration_s, child.max_duration_s) if d is not None]
        return Scope(
            task=child.task or self.task,
            allowed_tools=_intersect(self.allowed_tools, child.allowed_tools),
            allowed_destinations=_intersect(self.allowed_destinations, child.allowed_destinations),
            allowed_environments=_intersect(self.allowed_environments, child.allowed_environments),
            max_duration_s=min(dur) if dur else None,
        )

    def allows_tool(self, name: str) -> bool:
        """The tool is allowed (always, when no tools were declared)."""
        return self.allowed_tools is None or glob_match(name, self.allowed_tools)

    def allows_destination(self, destination: str, host: str | None = None) -> bool:
        """The destination is allowed (always, when none were declared).

        A pattern matches the destination as written (``s3://acme-*``, ``*@acme.com``), the
        destination without its URL scheme (``acme.slack.com/archives/*``), or its host (the
        host of a URL, the domain of an e-mail address): ``*.acme.com`` allows
        ``https://wiki.acme.com/x``, ``bob@eng.acme.com`` and the domain itself,
        ``acme.com`` / ``bob@acme.com``.
        """
        allowed = self.allowed_destinations
        if allowed is None:
            return True
        if glob_match(destination, allowed):
            return True
        scheme = destination.find("://")
        if scheme > 0 and glob_match(destination[scheme + 3 :], allowed):
            return True
        return host is not None and host_allowed(host, allowed)

    def allows_environment(self, environment: str | None) -> bool:
        """The environment is allowed (always, when none were declared or it is unknown)."""
        allowed = self.allowed_environments
        return allowed is None or environment is None or glob_match(environment, allowed)

    @property
    def declared(self) -> bool:
        return any(
            x is not None
            for x in (
                self.allowed_tools,
                self.allowed_destinations,
                self.allowed_environments,
                self.max_duration_s,
            )
        )


class Step(NamedTuple):
    """One processed event, compactly."""

    seq: int | None
    ts: float
    session_id: str
    kind: str
    tool: str | None
    caps: frozenset[str]
    event_id: str
    destination: str | None


class Member:
    """One session of the delegation tree."""

    __slots__ = (
        "session_id",
        "agent_id",
        "parent_id",
        "scope",
        "workload_id",
        "credential_iss",
        "credential_jti",
        "started_ts",
        "ended_ts",
        "last_seq",
        "granted_scopes",
    )

    def __init__(self, session_id: str, agent_id: str, parent_id: str | None = None) -> None:
        self.session_id = session_id
        self.agent_id = agent_id
        self.parent_id = parent_id
        self.scope: Scope = Scope()
        self.workload_id: str | None = None
        self.credential_iss: str | None = None
        self.credential_jti: str | None = None
        self.started_ts: float | None = None
        self.ended_ts: float | None = None
        self.last_seq: int = -1
        self.granted_scopes: tuple[str, ...] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            setattr(self, k, v)


class SessionState:
    """Everything agentwatch knows about one root session (a delegation tree)."""

    __slots__ = (
        "root_id",
        "tenant",
        "agent_id",
        "members",
        "steps",
        "max_steps",
        "cap_first",
        "det",
        "alerts",
        "contributions",
        "risk",
        "started_ts",
        "last_ts",
        "last_active",
        "ended",
        "kill_jti",
        "kill_ts",
        "event_count",
        "seen",
        "pending",
        "partition",
    )

    def __init__(
        self, root_id: str, tenant: str | None, agent_id: str, *, max_steps: int = DEFAULT_MAX_STEPS
    ) -> None:
        self.root_id = root_id
        self.tenant = tenant
        self.agent_id = agent_id
        self.members: dict[str, Member] = {}
        self.steps: list[Step] = []
        self.max_steps = max_steps
        #: capability -> (event id, session id, ts) of its first occurrence in the tree
        self.cap_first: dict[str, tuple[str, str, float]] = {}
        #: detector name -> that detector's per-session state
        self.det: dict[str, Any] = {}
        #: alert key -> AlertState (detectors.alerting)
        self.alerts: dict[str, Any] = {}
        #: finding key -> (score, mode, detector) currently contributing to risk
        self.contributions: dict[str, tuple[float, str, str]] = {}
        self.risk = 0.0
        self.started_ts: float | None = None
        self.last_ts: float | None = None
        #: processing-time clock of the last event (for idle eviction)
        self.last_active = 0.0
        self.ended = False
        self.kill_jti: str | None = None
        self.kill_ts: float | None = None
        self.event_count = 0
        # Pipeline bookkeeping (monitor.pipeline): dedup keys of recent events, events held
        # back waiting for a missing predecessor, and the source partition of the session.
        self.seen: dict[int, None] = {}
        self.pending: list[Any] = []
        self.partition: int | None = None

    # -- pickling (slots) ---------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        # Held-back events are not state: they are re-read from the source after a restart.
        state = {k: getattr(self, k) for k in self.__slots__}
        state["pending"] = []
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            setattr(self, k, v)

    # -- tree -----------------------------------------------------------------------------
    def member(self, session_id: str, agent_id: str | None = None) -> Member:
        m = self.members.get(session_id)
        if m is None:
            m = Member(session_id, agent_id or self.agent_id)
            self.members[session_id] = m
        return m

    def scope_of(self, session_id: str) -> Scope:
        m = self.members.get(session_id)
        return m.scope if m is not None else Scope()

    def ancestors(self, session_id: str) -> Iterator[Member]:
        """The session's parent, grandparent, ... up to the root (cycles are cut)."""
        seen = {session_id}
        m = self.members.get(session_id)
        while m is not None and m.parent_id and m.parent_id not in seen:
            seen.add(m.parent_id)
            m = self.members.get(m.parent_id)
            if m is not None:
                yield m

    # -- history --------------------------------------------------------------------------
    def add_step(self, step: Step) -> None:
        self.steps.append(step)
        if len(self.steps) > self.max_steps:
            del self.steps[: len(self.steps) - self.max_steps]
        for cap in step.caps:
            if cap not in self.cap_first:
                self.cap_first[cap] = (step.event_id, step.session_id, step.ts)

    @property
    def killed(self) -> bool:
        return self.kill_jti is not None

    @property
    def flagged(self) -> bool:
        """True once any alert was raised in this session (learners must not learn from it)."""
        return bool(self.alerts)

    def duration(self) -> float:
        if self.started_ts is None or self.last_ts is None:
            return 0.0
        return max(0.0, self.last_ts - self.started_ts)
