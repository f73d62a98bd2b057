"""The streaming pipeline's core, without Kafka: dedup, ordering, session lifecycle, detection.

``Pipeline.process(event, now=...)`` takes one valid event (in arrival order) and returns the
decisions it leads to. The stream worker calls it for each record; ``agentwatch score`` calls
it for each line of a file; tests call it directly. It owns the sessions (one
:class:`~detectors.session.SessionState` per root session) and:

* **deduplicates** on ``event_id`` (the last ``dedup_window`` ids of each root session);
* **orders** each session's events by ``session.seq``: an event whose predecessor is missing is
  held back until the gap fills or ``reorder_wait_s`` (processing time) passes, then the held
  events are processed in seq order;
* treats an event that arrives after later ones of its session were processed as **late**: if
  it is within ``grace_s`` (event time) of the session's newest event it is processed (flagged
  late); beyond that it is not evaluated and is returned as :class:`LateEvent` (the worker
  still stores it and counts it, and publishes it to the late-events topic);
* **evicts** ended sessions after ``ended_ttl_s`` and idle ones after ``idle_ttl_s``
  (processing time), and the least recently active ones beyond ``max_sessions``. Given the
  wall clock (``tick(now, wall=...)``, as the worker does), an ended session is also evicted
  once ``ended_ttl_s`` of *event* time has passed since its newest event (the event clock
  being the newest event time seen, never ahead of the wall clock), after at least
  ``ended_min_idle_s`` of processing time: so a worker catching up on a backlog holds the
  sessions that ended in the last ``ended_ttl_s`` of the traffic, not of its own reading, and
  its memory follows the load rather than its speed; an agent whose clock runs behind gets
  its ended session evicted no sooner than ``ended_min_idle_s`` after its last event. An
  ended or killed session leaves a small **tombstone** (its members' end, last seq, scope and
  credential, and the kill) for ``tombstone_ttl_s``, so a credential replayed minutes after
  its session ended, or a session acting on after its kill signal, is still recognised
  (tombstones are checkpointed with the sessions, so a restarted worker keeps them; their
  time to live starts again at the restore);
* **fires timers** (absence rules: "A not followed by B within T") on event time: when a
  later event of the session arrives, or on ``tick`` once the watermark (the newest event
  time seen, minus ``grace_s``) has passed their deadline;
* returns a :class:`~schemas.privileged.PrivilegedAction` audit record for every privileged
  action (secret retrieval, production write, export, payment, credential change,
  delegation with scopes...), before the decisions the action led to.

Time is passed in (``now``), so tests are deterministic.
"""

from __future__ import annotations

import pickle
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from detectors.engine import Decision, Engine
from detectors.flatstate import member_flat, member_from
from detectors.history import SMALL_IDS, id_key, key_bytes, remember, seen_has
from detectors.privileged import privileged_action
from detectors.session import Member, SessionState
from schemas.events import ActionEvent
from schemas.privileged import PrivilegedAction

_first = list.__getitem__
_SMALL_BYTES = 8 * SMALL_IDS


@dataclass
class PipelineSettings:
    """How long to wait, how much to keep."""

    reorder_wait_s: float = 2.0
    grace_s: float = 300.0
    ended_ttl_s: float = 300.0
    #: the least processing time an ended session is kept when event time says it is due
    ended_min_idle_s: float = 60.0
    idle_ttl_s: float = 3600.0
    max_sessions: int = 1_000_000
    dedup_window: int = 4096
    max_pending: int = 1024
    #: the seq a session's first event carries (0: ``session_start`` is seq 0)
    first_seq: int = 0
    #: return a PrivilegedAction audit record for each privileged action
    privileged_log: bool = True
    #: how long (processing time) an evicted ended or killed session's tombstone is kept,
    #: and at most how many are kept
    tombstone_ttl_s: float = 3600.0
    max_tombstones: int = 100_000


@dataclass(frozen=True, slots=True)
class LateEvent:
    """An event later than the grace window: stored and counted, not evaluated."""

    event: ActionEvent
    lateness_s: float


@dataclass(frozen=True, slots=True)
class Evicted:
    """A root session left memory (ended, idle or over capacity)."""

    root_session_id: str
    reason: str


Output = Decision | LateEvent | Evicted | PrivilegedAction


@dataclass
class PipelineStats:
    processed: int = 0
    duplicates: int = 0
    late_processed: int = 0
    late_dropped: int = 0
    held_back: int = 0
    released_on_timeout: int = 0
    evicted: dict[str, int] = field(default_factory=lambda: {"ended": 0, "idle": 0, "capacity": 0})


@dataclass(frozen=True, slots=True)
class Tombstone:
    """What is kept of an evicted ended or killed root session: enough for the rules on
    activity after the end (AW-REVOKE-001) or after a kill (AW-REVOKE-002) to fire if it acts
    again, and for its next events not to wait for predecessors that were processed long ago."""

    members: tuple[Member, ...]
    ended: bool
    kill_jti: str | None
    kill_ts: float | None
    started_ts: float | None
    last_ts: float | None

    @classmethod
    def of(cls, session: SessionState) -> Tombstone:
        kept = []
        for m in session.members.values():
            c = Member(m.session_id, m.agent_id, m.parent_id)
            c.scope, c.workload_id = m.scope, m.workload_id
            c.credential_iss, c.credential_jti = m.credential_iss, m.credential_jti
            c.started_ts, c.ended_ts, c.last_seq = m.started_ts, m.ended_ts, m.last_seq
            c.granted_scopes = m.granted_scopes
            kept.append(c)
        return cls(
            tuple(kept),
            session.ended,
            session.kill_jti,
            session.kill_ts,
            session.started_ts,
            session.last_ts,
        )

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled flat (a full checkpoint writes every tombstone again): the members as
        plain values (``detectors.flatstate``) rather than objects, and no dataclass
        ``__getstate__``; tombstones pickled before, as dataclasses, still load."""
        return (
            _tombstone_from,
            (
                TOMBSTONE_LAYOUT,
                tuple([member_flat(m) for m in self.members]),
                self.ended,
                self.kill_jti,
                self.kill_ts,
                self.started_ts,
                self.last_ts,
            ),
        )

    def revive(self, session: SessionState) -> None:
        """Put what was kept into a new state for the same root session."""
        for m in self.members:
            session.members[m.session_id] = m
        session.ended = self.ended
        session.kill_jti, session.kill_ts = self.kill_jti, self.kill_ts
        session.started_ts, session.last_ts = self.started_ts, self.last_ts


#: version of the flat pickled :class:`Tombstone`
TOMBSTONE_LAYOUT = 1


def _tombstone_from(layout: int, members: tuple[Any, ...], *rest: Any) -> Tombstone:
    """The tombstone ``Tombstone.__reduce__`` kept (the name pickles refer to: keep it)."""
    if layout != TOMBSTONE_LAYOUT:
        raise ValueError(f"tombstone of layout version {layout} is not supported")
    return Tombstone(tuple(member_from(m) for m in members), *rest)


class Pipeline:
    """Sessions, ordering and detection for a stream of events (one worker's share)."""

    def __init__(self, engine: Engine, settings: PipelineSettings | None = None) -> None:
        self.engine = engine
        self.settings = settings or PipelineSettings()
        #: root session id -> state, least recently active first
        self.sessions: OrderedDict[str, SessionState] = OrderedDict()
        #: root sessions changed since the last checkpoint
        self.dirty: set[str] = set()
        self.stats = PipelineStats()
        #: (partition -> offsets of held-back events), for safe checkpoint offsets
        self._held_offsets: dict[int, dict[int, None]] = {}
        #: root session -> earliest timer deadline (event time), for sessions with timers
        self._deadlines: dict[str, float] = {}
        #: root sessions holding events back (so ``tick`` need not look at every session)
        self._waiting: dict[str, None] = {}
        #: root session -> event ids of its held-back events (duplicate check in O(1); rebuilt
        #: from ``session.pending`` when missing, e.g. after a restore)
        self._pending_ids: dict[str, set[str]] = {}
        #: newest event time processed (the watermark is this minus the grace period)
        self.max_event_ts = float("-inf")
        #: root session -> (evicted at, tombstone) of ended or killed sessions, oldest first
        self._tombstones: OrderedDict[str, tuple[float, Tombstone]] = OrderedDict()
        #: the ended sessions among ``sessions``, in the same order (least recently active
        #: first): eviction scans them apart from the running ones, so a tick does not walk
        #: every session that idles between ``ended_ttl_s`` and ``idle_ttl_s``
        self._ended: OrderedDict[str, None] = OrderedDict()

    # -- input ----------------------------------------------------------------------------
    def process(
        self,
        event: ActionEvent,
        *,
        now: float,
        partition: int | None = None,
        offset: int | None = None,
    ) -> list[Output]:
        """Take one event; return the decisions (and late/evicted notices) it leads to."""
        root = event.root_session_id
        session = self.sessions.get(root)
        if session is None:
            session = self.engine.new_session(event)
            buried = self._tombstones.pop(root, None)
            if buried is not None:
                buried[1].revive(session)
            self.sessions[root] = session
        else:
            self.sessions.move_to_end(root)
        session.last_active = now
        if session.ended:  # revived ended, or acting after its end
            self._ended[root] = None
            self._ended.move_to_end(root)

        key = id_key(event.event_id)
        if seen_has(session.seen, key) or (
            session.pending and event.event_id in self._pending_ids_of(session)
        ):
            self.stats.duplicates += 1
            return []
        out: list[Output] = []
        sref = event.session
        seq = sref.seq
        members = session.members
        m = None
        if members:  # the member of the session's last event first (most events are its)
            m = _first(members, -1)
            if m.session_id != sref.id:
                m = members.get(sref.id)
        last = self.settings.first_seq - 1
        if m is not None and m.last_seq > last:
            last = m.last_seq
        if seq is not None and seq > last + 1:
            # A predecessor is missing: hold this one back until it arrives (or time runs out).
            if len(session.pending) < self.settings.max_pending:
                if not session.pending:
                    session.pending = []
                    self._waiting[root] = None
                session.pending.append(  # type: ignore[union-attr]
                    (now, offset if offset is not None else -1, event, partition)
                )
                self._pending_ids_of(session).add(event.event_id)
                self._hold(partition, offset)
                self.stats.held_back += 1
                self.dirty.add(root)
                return out
        self._run(session, event, out, now, key, m, True)
        if session.pending:
            self._release_ready(session, out, now)
        self.dirty.add(root)
        if len(self.sessions) > self.settings.max_sessions:
            self._evict_over_capacity(out)
        return out

    def tick(
        self, now: float, *, event_time: float | None = None, wall: float | None = None
    ) -> list[Output]:
        """Release held-back events whose wait is over, fire timers due by ``event_time``
        (default: the watermark), evict ended and idle sessions (with ``wall``, the wall
        clock in epoch seconds, ended ones on event time as well: see the module docstring)."""
        out: list[Output] = []
        wait = self.settings.reorder_wait_s
        for root in list(self._waiting):
            session = self.sessions.get(root)
            if session is None or not session.pending:
                self._waiting.pop(root, None)
            elif any(now - p[0] >= wait for p in session.pending):
                self._release_all(session, out, now)
        clock = self.watermark if event_time is None else event_time
        for root, due in list(self._deadlines.items()):
            if due < clock and root in self.sessions:
                session = self.sessions[root]
                out.extend(self.engine.tick(session, clock))
                self._track_deadline(session)
                self.dirty.add(root)
        self._evict(now, out, None if wall is None else min(self.max_event_ts, wall))
        horizon = now - self.settings.tombstone_ttl_s
        while self._tombstones and next(iter(self._tombstones.values()))[0] < horizon:
            self.dirty.add(self._tombstones.popitem(last=False)[0])
        return out

    @property
    def watermark(self) -> float:
        """Event time up to which the stream is taken as complete: newest seen minus grace."""
        return self.max_event_ts - self.settings.grace_s

    def _track_deadline(self, session: SessionState) -> None:
        due = self.engine.next_deadline(session)
        if due is None:
            self._deadlines.pop(session.root_id, None)
        else:
            self._deadlines[session.root_id] = due

    # -- processing ----------------------------------------------------------------------
    def _run(
        self,
        session: SessionState,
        event: ActionEvent,
        out: list[Output],
        now: float,
        key: int | None = None,
        m: Member | None = None,
        looked_up: bool = False,
    ) -> None:
        """Evaluate one event (``key``: its id's key, and ``m``: its member if ``looked_up``,
        when the caller has them)."""
        if key is None:
            key = id_key(event.event_id)
        seen = session.seen
        if type(seen) is bytes and len(seen) < _SMALL_BYTES:  # the common case, inline
            session.seen = seen + key_bytes(key)
        else:
            session.seen = remember(seen, key, self.settings.dedup_window)
        if not looked_up:
            m = session.members.get(event.session.id)
        seq = event.session.seq
        late = False
        if m is not None and seq is not None and seq <= m.last_seq:
            late = True
        elif session.last_ts is not None and event.ts < session.last_ts - self.settings.grace_s:
            late = True
        if late:
            lateness = (session.last_ts or event.ts) - event.ts
            if lateness > self.settings.grace_s:
                self.stats.late_dropped += 1
                out.append(LateEvent(event, lateness))
                return
            self.stats.late_processed += 1
        ctx = self.engine.context(event, late=late)
        decisions = self.engine.process(ctx, session)
        if session.ended and session.root_id not in self._ended:
            self._ended[session.root_id] = None
        if self.settings.privileged_log:
            record = privileged_action(ctx, session)
            if record is not None:
                out.append(record)
        out.extend(decisions)
        due = self.engine.due  # as the engine left the session (the timed detectors' answer)
        if due is None:
            self._deadlines.pop(session.root_id, None)
        else:
            self._deadlines[session.root_id] = due
        if ctx.ts > self.max_event_ts:
            self.max_event_ts = ctx.ts
        self.stats.processed += 1

    def _pending_ids_of(self, session: SessionState) -> set[str]:
        ids = self._pending_ids.get(session.root_id)
        if ids is None:
            ids = self._pending_ids[session.root_id] = {p[2].event_id for p in session.pending}
        return ids

    def _release_ready(self, session: SessionState, out: list[Output], now: float) -> None:
        """Process held-back events whose predecessor has now been processed, lowest seq
        first. One pass over the held events when none is ready (the common case while a gap
        stays open): a session holding ``max_pending`` events must not cost a sort per event."""
        members, floor = session.members, self.settings.first_seq - 1

        def ready(ev: ActionEvent) -> bool:
            m = members.get(ev.session.id)
            last = max(m.last_seq if m is not None else -1, floor)
            return ev.session.seq is not None and ev.session.seq <= last + 1

        if not any(ready(p[2]) for p in session.pending):
            return
        # sorted once: processing only ever makes later items of the same member ready, and
        # they come later in seq order, so passes over the sorted list keep the order the
        # previous one-at-a-time lowest-seq-first loop had
        items = sorted(session.pending, key=lambda p: p[2].session.seq or 0)
        ids = self._pending_ids_of(session)
        progressed = True
        while items and progressed:
            progressed = False
            rest = []
            for item in items:
                if ready(item[2]):
                    ids.discard(item[2].event_id)
                    self._unhold(item[3], item[1])
                    self._run(session, item[2], out, now)
                    progressed = True
                else:
                    rest.append(item)
            items = rest
        session.pending = items if items else ()
        if not session.pending:
            self._waiting.pop(session.root_id, None)
            self._pending_ids.pop(session.root_id, None)

    def _release_all(self, session: SessionState, out: list[Output], now: float) -> None:
        """The wait is over: process everything held back, in seq order (gaps stay gaps)."""
        items = sorted(session.pending, key=lambda p: (p[2].session.seq or 0, p[2].ts))
        session.pending = ()
        self._waiting.pop(session.root_id, None)
        self._pending_ids.pop(session.root_id, None)
        for item in items:
            self._unhold(item[3], item[1])
            self.stats.released_on_timeout += 1
            self._run(session, item[2], out, now)
        self.dirty.add(session.root_id)

    # -- lifecycle ------------------------------------------------------------------------
    def _evict(self, now: float, out: list[Output], event_now: float | None = None) -> None:
        """Two scans, each in processing-time order (least recently active first), each
        stopping at the first session too young to go: every session, for ``idle_ttl_s``;
        the ended ones, for ``ended_ttl_s`` and, given ``event_now``, on event time as well,
        where the scan also stops at the first ended session whose newest event is younger
        than ``ended_ttl_s`` (the orders agree but for clock skew; a session the scan stops
        short of still goes on processing time). A session holding events back stays.

        Running sessions that idle between the two TTLs (an agent that stopped without a
        ``session_end``: up to an hour with the defaults) are in neither scan's way: one
        scan over all sessions used to walk every one of them on every tick."""
        s = self.settings
        doomed: list[tuple[str, str]] = []
        idle_horizon = now - s.idle_ttl_s
        for root, session in self.sessions.items():
            if session.last_active > idle_horizon:
                break
            if not session.pending:
                ended = session.ended and now - session.last_active >= s.ended_ttl_s
                doomed.append((root, "ended" if ended else "idle"))
        ended_horizon = now - s.ended_ttl_s
        sessions = self.sessions
        for root in self._ended:
            session = sessions[root]
            if session.last_active <= idle_horizon:
                continue  # the first scan's
            if session.last_active > ended_horizon and (
                event_now is None
                or now - session.last_active < s.ended_min_idle_s
                or session.last_ts is None
                or event_now - session.last_ts < s.ended_ttl_s
            ):
                break
            if not session.pending:
                doomed.append((root, "ended"))
        for root, reason in doomed:
            self._drop(root, reason, out)

    def _evict_over_capacity(self, out: list[Output]) -> None:
        while len(self.sessions) > self.settings.max_sessions:
            root = next(iter(self.sessions))
            self._drop(root, "capacity", out)

    def _drop(self, root: str, reason: str, out: list[Output]) -> None:
        session = self.sessions.pop(root)
        self._ended.pop(root, None)
        self._deadlines.pop(root, None)
        self._waiting.pop(root, None)
        self._pending_ids.pop(root, None)
        for item in session.pending:
            self._unhold(item[3], item[1])
        self.engine.close(session)
        if session.ended or session.killed:
            self._tombstones[root] = (session.last_active, Tombstone.of(session))
            self._tombstones.move_to_end(root)
            while len(self._tombstones) > self.settings.max_tombstones:
                self.dirty.add(self._tombstones.popitem(last=False)[0])
        self.stats.evicted[reason] += 1
        self.dirty.add(root)
        out.append(Evicted(root, reason))

    # -- checkpoint support -------------------------------------------------------------
    def _hold(self, partition: int | None, offset: int | None) -> None:
        if partition is not None and offset is not None:
            self._held_offsets.setdefault(partition, {})[offset] = None

    def _unhold(self, partition: int | None, offset: int | None) -> None:
        if partition is not None and offset is not None:
            held = self._held_offsets.get(partition)
            if held is not None:
                held.pop(offset, None)

    def lowest_held_offset(self, partition: int) -> int | None:
        """The smallest source offset held back in ``partition`` (a checkpoint must not pass it)."""
        held = self._held_offsets.get(partition)
        return min(held) if held else None

    @property
    def tombstones(self) -> list[str]:
        """Root sessions that are evicted but still remembered by their tombstone."""
        return list(self._tombstones)

    def snapshot(self, root: str) -> bytes | None:
        """The session's state as bytes: the live session, else its tombstone, else None
        (forgotten)."""
        session = self.sessions.get(root)
        if session is not None:
            return pickle.dumps(session, protocol=pickle.HIGHEST_PROTOCOL)
        buried = self._tombstones.get(root)
        return None if buried is None else pickle.dumps(buried[1], protocol=pickle.HIGHEST_PROTOCOL)

    def restore(self, root: str, blob: bytes | None, *, now: float) -> None:
        """Load a checkpointed session or tombstone (None removes it)."""
        self._tombstones.pop(root, None)
        self._pending_ids.pop(root, None)
        if blob is None:
            self.sessions.pop(root, None)
            self._ended.pop(root, None)
            self._deadlines.pop(root, None)
            return
        state: SessionState | Tombstone = pickle.loads(blob)
        if isinstance(state, Tombstone):
            self.sessions.pop(root, None)
            self._ended.pop(root, None)
            self._deadlines.pop(root, None)
            self._tombstones[root] = (now, state)
            return
        state.last_active = now
        self.sessions[root] = state  # a root already held keeps its place, as before
        if not state.ended:
            self._ended.pop(root, None)
        elif root not in self._ended:
            self._ended[root] = None
        self._track_deadline(state)

    def take_dirty(self) -> set[str]:
        dirty, self.dirty = self.dirty, set()
        return dirty

    def __iter__(self) -> Iterator[SessionState]:
        return iter(self.sessions.values())

    def __len__(self) -> int:
        return len(self.sessions)
