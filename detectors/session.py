"""Session state rebuilt from events: one :class:`SessionState` per root session.

A root session is a delegation tree: the root agent's session and every sub-agent session
spawned from it share ``session.root_id`` and are judged together. The state is small and
picklable (it is checkpointed by the worker): the recent steps (bounded), the members of the
tree with their scopes, which capabilities were seen first where, per-detector state, and the
alert and risk bookkeeping of the decisions taken so far.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, cast

from detectors.history import RecentIds, Step, StepLog
from detectors.intern import canonical
from detectors.smallmap import SmallMap
from schemas.events import Intent

__all__ = ["Member", "RecentIds", "Scope", "SessionState", "Step", "glob_match"]

#: Steps kept per root session for context and explanations (older steps are dropped;
#: detectors keep what they need in their own state).
DEFAULT_MAX_STEPS = 64
#: Sessions kept per delegation tree: beyond this, the oldest ended (else the oldest) sub-agent
#: session is forgotten; if it acts again it is re-created and re-linked to its parent from
#: the event's ``session.parent_id`` (inheriting the parent's scope, not its own narrower one).
DEFAULT_MAX_MEMBERS = 256
#: Risk contributions kept per root session (one per alert key, and keys may name a member
#: or a value): beyond this, the weakest is dropped. So many contributions already put the
#: noisy-OR risk near 1 whenever one of them is strong, and a session (or its sub-agents, which
#: come and go) cannot grow its state, or the per-event cost of fusing them, without bound.
MAX_CONTRIBUTIONS = 256


def _norm(items: Iterable[str] | None) -> tuple[str, ...] | None:
    if items is None:
        return None
    # shared: sessions of one agent declare the same lists
    return canonical(tuple(sorted({i.strip().lower() for i in items if i and i.strip()})))


_GLOBS: dict[tuple[str, ...], Callable[[str], object]] = {}


def glob_match(value: str, patterns: Iterable[str]) -> bool:
    """Case-insensitive shell-style match (``send_*``, ``*.acme.com``).

    Each set of patterns is compiled once into one regular expression (``fnmatch``'s own
    translation, joined): scopes and allow-lists are few, and they are asked on most events.
    """
    pats = patterns if isinstance(patterns, tuple) else tuple(patterns)
    match = _GLOBS.get(pats)
    if match is None:
        match = (
            re.compile("|".join(fnmatch.translate(p) for p in pats)).match
            if pats
            else (lambda _: None)
        )
        if len(_GLOBS) < 4096:
            _GLOBS[pats] = match
    return match(value.lower()) is not None


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
            return UNRESTRICTED
        scope = cls(
            task=intent.task,
            allowed_tools=_norm(intent.allowed_tools),
            allowed_destinations=_norm(intent.allowed_destinations),
            allowed_environments=_norm(intent.allowed_environments),
            max_duration_s=intent.max_duration_s,
        )
        return UNRESTRICTED if scope == UNRESTRICTED else scope

    def narrowed_by(self, child: Scope) -> Scope:
        """The child's scope, bounded by this (the parent's) scope (this very one when that is
        what it comes to: a sub-agent that repeats its parent's task and bounds, or declares
        none, shares the parent's scope instead of an equal copy)."""
        if child is UNRESTRICTED:
            return self
        dur = [d for d in (self.max_duration_s, child.max_duration_s) if d is not None]
        narrowed = Scope(
            task=child.task or self.task,
            allowed_tools=_intersect(self.allowed_tools, child.allowed_tools),
            allowed_destinations=_intersect(self.allowed_destinations, child.allowed_destinations),
            allowed_environments=_intersect(self.allowed_environments, child.allowed_environments),
            max_duration_s=min(dur) if dur else None,
        )
        return self if narrowed == self else narrowed

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
        """Any bound was declared (asked on most events: plain comparisons, no generator)."""
        return (
            self.allowed_tools is not None
            or self.allowed_destinations is not None
            or self.allowed_environments is not None
            or self.max_duration_s is not None
        )


#: The scope of a session that declared nothing (shared: scopes are frozen values).
UNRESTRICTED = Scope()


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
        self.scope: Scope = UNRESTRICTED
        self.workload_id: str | None = None
        self.credential_iss: str | None = None
        self.credential_jti: str | None = None
        self.started_ts: float | None = None
        self.ended_ts: float | None = None
        self.last_seq: int = -1
        self.granted_scopes: tuple[str, ...] | None = None

    def __getstate__(self) -> tuple[Any, ...]:
        return tuple(getattr(self, k) for k in self.__slots__)

    def __setstate__(self, state: tuple[Any, ...] | dict[str, Any]) -> None:
        if not isinstance(state, dict):
            state = dict(zip(self.__slots__, state, strict=True))
        for k, v in state.items():
            setattr(self, k, v)


_NO_DEFAULT: Any = object()


_mget = list.__getitem__
_mreversed = list.__reversed__


class Members(list):  # type: ignore[type-arg]
    """``session.members``: session id -> :class:`Member` of the delegation tree, least
    recently asked for first.

    The members themselves, in a list (each knows its ``session_id``), rather than a dict: most
    trees are one session, and a dict of one costs 184 bytes where this list costs 64. It answers
    the dict operations the engine, the pipeline and the detectors use; a lookup scans the
    members (a tree holds at most ``max_members``, most one or two), a Python call ~0.1 µs
    dearer than a dict's. Pickled as the list of members.
    """

    __slots__ = ()

    # (no __init__ of its own: the list's, ``Members(members)``, costs no Python call)

    def get(self, session_id: str, default: Any = None) -> Any:
        if self:
            m = _mget(self, -1)  # the member asked for last: most events are its
            if m.session_id == session_id:
                return m
        for m in _mreversed(self):
            if m.session_id == session_id:
                return m
        return default

    def _index(self, session_id: object) -> int:
        for i, m in enumerate(list.__iter__(self)):
            if m.session_id == session_id:
                return i
        return -1

    def __getitem__(self, session_id: str) -> Member:  # type: ignore[override]
        m = self.get(session_id)
        if m is None:
            raise KeyError(session_id)
        return m  # type: ignore[no-any-return]

    def __setitem__(self, session_id: str, member: Member) -> None:  # type: ignore[override]
        """Add ``member`` (or replace the one of its session id, in its place)."""
        if member.session_id != session_id:
            raise ValueError(f"member of session {member.session_id!r} filed under {session_id!r}")
        i = self._index(session_id)
        if i < 0:
            self.append(member)
        else:
            list.__setitem__(self, i, member)

    def __delitem__(self, session_id: str) -> None:  # type: ignore[override]
        i = self._index(session_id)
        if i < 0:
            raise KeyError(session_id)
        list.__delitem__(self, i)

    def pop(self, session_id: str, default: Any = _NO_DEFAULT) -> Any:  # type: ignore[override]
        i = self._index(session_id)
        if i < 0:
            if default is _NO_DEFAULT:
                raise KeyError(session_id)
            return default
        m = _mget(self, i)
        list.__delitem__(self, i)
        return m

    def touch(self, i: int) -> None:
        """Make the member at position ``i`` the most recently asked for."""
        if i != list.__len__(self) - 1:
            self.append(list.pop(self, i))

    def __contains__(self, session_id: object) -> bool:
        return self._index(session_id) >= 0

    def __iter__(self) -> Iterator[str]:
        return iter([m.session_id for m in list.__iter__(self)])

    def __reversed__(self) -> Iterator[str]:
        return iter([m.session_id for m in list.__reversed__(self)])

    def keys(self) -> list[str]:
        return [m.session_id for m in list.__iter__(self)]

    def values(self) -> list[Member]:
        return list(list.__iter__(self))

    def items(self) -> list[tuple[str, Member]]:
        return [(m.session_id, m) for m in list.__iter__(self)]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Members | dict):
            return dict(self.items()) == dict(other.items())
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Members({self.keys()!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Members, (list(list.__iter__(self)),))


#: detector name -> its position in every session's :class:`DetectorStates` (process-wide:
#: the few detector names of the engines in this process, in the order first written)
_SLOTS: dict[str, int] = {}
_lget = list.__getitem__
_lset = list.__setitem__
_llen = list.__len__

#: ``state_at(session.det, slot)``: the state at a detector's slot (``None``: none yet), for a
#: slot below ``states_len(session.det)`` (a session's list ends at its last state). Both are
#: the list's own methods: reading a state costs no Python call, where ``det.get(name)`` does.
state_at = _lget
states_len = _llen


#: the names of ``_SLOTS`` in slot order (``slot_names``)
_NAMES: list[str] = []


def slot_names() -> list[str]:
    """The detector names in slot order (``slot_names()[slot_of(name)] == name``)."""
    if len(_NAMES) != len(_SLOTS):
        _NAMES[:] = sorted(_SLOTS, key=_SLOTS.__getitem__)
    return _NAMES


def slot_of(name: str) -> int:
    """The position of detector ``name``'s state in every session's ``det``: asked once, when
    the detector is built, so the hot path reads its state by index::

        det = session.det
        st = state_at(det, slot) if slot < states_len(det) else None
    """
    i = _SLOTS.get(name)
    if i is None:
        i = _SLOTS[name] = len(_SLOTS)
    return i


class DetectorStates(list):  # type: ignore[type-arg]
    """``session.det``: detector name -> that detector's per-session state.

    A list of states at fixed positions (one per detector name in the process, ``None`` where
    a detector keeps nothing) rather than a dict: six or seven entries cost a dict 272 bytes,
    this list 120 (measured with ``sys.getsizeof`` on the simulated traffic). It answers the
    dict operations detectors use (``get``, ``[name]``, ``[name] = state``, ``in``, ``pop``,
    iteration over the names), each a Python call: ~0.1 µs more than a dict's, about a
    microsecond an event for ~150 bytes less per live session. A state is never ``None``
    (setting ``None`` removes it). Pickled as (name, state) pairs, so a checkpoint does not
    depend on the positions.
    """

    __slots__ = ()

    def get(self, name: str, default: Any = None) -> Any:
        try:
            v = _lget(self, _SLOTS[name])
        except (KeyError, IndexError):  # a name no detector wrote yet, or not in this session
            return default
        return default if v is None else v

    def __getitem__(self, name: str) -> Any:  # type: ignore[override]
        v = self.get(name)
        if v is None:
            raise KeyError(name)
        return v

    def __setitem__(self, name: str, state: Any) -> None:  # type: ignore[override]
        i = _SLOTS.get(name)
        if i is None:
            i = slot_of(name)
        n = _llen(self)
        if i >= n:
            self.extend([None] * (i + 1 - n))
        _lset(self, i, state)

    def __delitem__(self, name: str) -> None:  # type: ignore[override]
        if self.get(name) is None:
            raise KeyError(name)
        _lset(self, _SLOTS[name], None)

    def pop(self, name: str, default: Any = _NO_DEFAULT) -> Any:  # type: ignore[override]
        v = self.get(name)
        if v is None:
            if default is _NO_DEFAULT:
                raise KeyError(name)
            return default
        _lset(self, _SLOTS[name], None)
        return v

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def items(self) -> list[tuple[str, Any]]:
        names = slot_names()
        states = list.__iter__(self)
        return [(k, v) for k, v in zip(names, states, strict=False) if v is not None]

    def keys(self) -> list[str]:
        return [k for k, _ in self.items()]

    def values(self) -> list[Any]:
        return [v for _, v in self.items()]

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.items())

    def __bool__(self) -> bool:
        return any(v is not None for v in list.__iter__(self))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DetectorStates | dict):
            return dict(self.items()) == dict(other.items())
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"DetectorStates({dict(self.items())!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_states_from, (self.items(),))


def _states_from(pairs: Iterable[tuple[str, Any]]) -> DetectorStates:
    placed = [(slot_of(k), v) for k, v in pairs]
    # exactly as long as the last slot needs (a list grown one slot at a time reserves more)
    states = DetectorStates([None] * (max((i for i, _ in placed), default=-1) + 1))
    for i, v in placed:
        _lset(states, i, v)
    return states


#: The alerts and risk contributions of a session that has none yet: one shared empty dict
#: (an empty dict is 64 bytes, and most sessions never alert). Never written: the engine gives
#: a session a dict of its own before its first entry (:meth:`SessionState.own_alerts`).
NO_ENTRIES: dict[str, Any] = {}

#: Alerts kept per root session (one per alert key): beyond this, the oldest alert that
#: neither killed nor is the session's risk alert is forgotten (a later finding for its key
#: starts it over, under the same uid).
MAX_ALERTS = 256

#: Version of the object-by-object :class:`SessionState` layout, ``__getstate__`` (checkpoints
#: of version-less dicts, and of version 2, written before it, are still read). Sessions are
#: pickled in the flat layout of ``detectors.flatstate`` (4) since; ``__setstate__`` reads
#: the checkpoints written before it.
STATE_VERSION = 3
#: the slots of layout version 2 (which kept the per-worker ``max_steps`` and ``max_members``
#: in every session, and its source partition, written but never read)
_SLOTS_V2 = (
    "root_id",
    "tenant",
    "agent_id",
    "members",
    "log",
    "max_steps",
    "max_members",
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
_DROPPED_V2 = frozenset({"max_steps", "max_members", "partition"})


class SessionState:
    """Everything agentwatch knows about one root session (a delegation tree).

    Containers that most sessions never fill are created on first use: ``log`` and ``seen``
    start as ``None``, ``pending`` as an empty tuple. The step history, and the first step of
    each capability, are a compact :class:`~detectors.history.StepLog` (``steps`` and
    ``cap_first`` decode it).

    ``max_steps`` and ``max_members`` are the same for every session of a worker: class
    attributes, not slots (with the partition no longer kept, 18 slots: 176 bytes, 32 less); a
    subclass with ``__slots__ = ()`` sets other bounds.
    """

    #: steps kept (see ``DEFAULT_MAX_STEPS``)
    max_steps: int = DEFAULT_MAX_STEPS
    #: sessions kept per tree (see ``DEFAULT_MAX_MEMBERS``)
    max_members: int = DEFAULT_MAX_MEMBERS

    __slots__ = (
        "root_id",
        "tenant",
        "agent_id",
        "members",
        "log",
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
    )

    def __init__(self, root_id: str, tenant: str | None, agent_id: str, *, states: int = 0) -> None:
        """``states``: how many detector slots to make room for (the engine's), at once: a
        list that grows a slot at a time reserves more than it holds (96 bytes for 7)."""
        self.root_id = root_id
        self.tenant = canonical(tenant)
        self.agent_id = canonical(agent_id)
        self.members = Members()
        #: the last ``max_steps`` steps (None until the first)
        self.log: StepLog | None = None
        #: detector name -> that detector's per-session state
        self.det = DetectorStates([None] * states) if states else DetectorStates()
        #: alert key -> AlertState (detectors.alerting); the shared ``NO_ENTRIES`` until the
        #: first (written only through :meth:`own_alerts`)
        self.alerts: dict[str, Any] = NO_ENTRIES
        #: finding key -> (score, mode, detector) currently contributing to risk (likewise,
        #: :meth:`own_contributions`)
        self.contributions: dict[str, tuple[float, str, str]] = NO_ENTRIES
        self.risk = 0.0
        self.started_ts: float | None = None
        self.last_ts: float | None = None
        #: processing-time clock of the last event (for idle eviction)
        self.last_active = 0.0
        self.ended = False
        self.kill_jti: str | None = None
        self.kill_ts: float | None = None
        self.event_count = 0
        # Pipeline bookkeeping (monitor.pipeline): keys of recent event ids (dedup) and events
        # held back waiting for a missing predecessor (each with its source partition and
        # offset; a pipeline serves one partition, so the session keeps none of its own).
        #: (bare bytes of the first few keys, then a RecentIds: ``history.remember``)
        self.seen: RecentIds | bytes | None = None
        self.pending: list[Any] | tuple[()] = ()

    # -- pickling ------------------------------------------------------------------------
    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled in the flat form of ``detectors.flatstate`` (one tuple of plain values:
        a checkpoint pickles every changed session, and object by object cost ~46 µs)."""
        from detectors.flatstate import reduce_session  # (it imports this module)

        return reduce_session(self)

    def __getstate__(self) -> tuple[Any, ...]:
        # the object-by-object layout (version 3), which ``__setstate__`` reads
        # Held-back events are not state: they are re-read from the source after a restart.
        return (STATE_VERSION,) + tuple(
            () if k == "pending" else getattr(self, k) for k in SessionState.__slots__
        )

    def __setstate__(self, state: tuple[Any, ...] | dict[str, Any]) -> None:
        if isinstance(state, dict):  # the first layout: a dict of every attribute
            self._load_v1(state)
            return
        if state[0] == 2:  # kept the worker's max_steps and max_members, and the partition
            for k, v in zip(_SLOTS_V2, state[1:], strict=True):
                if k not in _DROPPED_V2:
                    setattr(self, k, v)
        elif state[0] != STATE_VERSION:
            raise ValueError(f"session state of layout version {state[0]} is not supported")
        else:
            for k, v in zip(SessionState.__slots__, state[1:], strict=True):
                setattr(self, k, v)
        # checkpoints written before kept these maps in dicts
        if isinstance(self.members, dict):
            self.members = Members(self.members.values())
        if isinstance(self.det, dict):
            self.det = _states_from(self.det.items())
        # empty ones come back as one dict for both (pickle's memo): share ours again
        if not self.alerts:
            self.alerts = NO_ENTRIES
        if not self.contributions:
            self.contributions = NO_ENTRIES
        elif type(self.contributions) is dict:  # checkpoints written before kept a dict
            self.contributions = cast(
                "dict[str, tuple[float, str, str]]", SmallMap(self.contributions)
            )

    def own_alerts(self) -> dict[str, Any]:
        """The session's alerts, as a dict of its own to write to."""
        if self.alerts is NO_ENTRIES:
            self.alerts = {}
        return self.alerts

    def own_contributions(self) -> dict[str, tuple[float, str, str]]:
        """The session's risk contributions, as a map of its own to write to: a
        :class:`~detectors.smallmap.SmallMap`, which answers the dict operations the engine,
        the fusion policy and the detectors use, in a dict's order (most sessions hold one or
        two contributions: a dict of them cost 184-232 bytes, the map 72-88)."""
        if self.contributions is NO_ENTRIES:
            self.contributions = cast("dict[str, tuple[float, str, str]]", SmallMap())
        return self.contributions

    def _load_v1(self, state: dict[str, Any]) -> None:
        fresh = SessionState(state["root_id"], state["tenant"], state["agent_id"])
        for k in SessionState.__slots__:
            setattr(self, k, getattr(fresh, k))
        steps = state.pop("steps", [])
        state.pop("seen", None)  # keys of a per-process hash(): meaningless here
        # the detectors' per-session states changed layout with this one: they start over
        state.pop("det", None)
        for k, v in state.items():
            if k in SessionState.__slots__:
                setattr(self, k, v)
        first = state.get("cap_first") or {}
        self.pending = ()
        log = self._log()
        for cap, (eid, sid, ts) in first.items():
            log._pin(cap, eid, sid, ts)  # noqa: SLF001 (the log's own format)
        for step in steps:
            log.append(Step(*step))
        if not self.alerts:
            self.alerts = NO_ENTRIES
        if not self.contributions:
            self.contributions = NO_ENTRIES

    # -- tree -----------------------------------------------------------------------------
    def member(self, session_id: str, agent_id: str | None = None) -> Member:
        """The member ``session_id`` (created if new); members are kept in the order they
        were last asked for, so the one an event is about is never the one forgotten."""
        members = self.members
        if members:
            last = _mget(members, -1)
            if last.session_id == session_id:  # most events: the member of the one before
                return last  # type: ignore[no-any-return]
        i = members._index(session_id)  # noqa: SLF001 (its position, to move it)
        if i < 0:
            if len(members) >= self.max_members:
                self._forget_member()
            if session_id == self.root_id:
                session_id = self.root_id  # one copy of the id
            m = Member(session_id, canonical(agent_id) if agent_id else self.agent_id)
            # a list of exactly its members (``append`` would reserve room for 4 at once, 24
            # bytes for most trees, which have one member); adding a member is rare
            list.__init__(members, [*list.__iter__(members), m])
            return m
        members.touch(i)
        return _mget(members, -1)  # type: ignore[no-any-return]

    def _forget_member(self) -> None:
        """Make room for one more member: the least recently active ended sub-agent, else the
        least recently active sub-agent."""
        members = self.members
        doomed = next(
            (k for k, m in members.items() if m.ended_ts is not None and k != self.root_id),
            None,
        )
        if doomed is None:
            doomed = next((k for k in members if k != self.root_id), None)
        if doomed is not None:
            del members[doomed]

    def scope_of(self, session_id: str) -> Scope:
        m = self.members.get(session_id)
        return m.scope if m is not None else UNRESTRICTED

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
    def _log(self) -> StepLog:
        log = self.log
        if log is None:
            log = self.log = StepLog(self.max_steps)
        return log

    def add_step(self, step: Step) -> None:
        self._log().append(step)

    @property
    def cap_first(self) -> dict[str, tuple[str, str, float]]:
        """capability -> (event id, session id, ts) of its first occurrence in the tree."""
        return self.log.first_seen() if self.log is not None else {}

    @property
    def steps(self) -> list[Step]:
        """The recent steps, oldest first (at most ``max_steps``)."""
        return list(self.log) if self.log is not None else []

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
