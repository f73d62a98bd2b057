"""Surprise of each step: tool-to-tool transitions and argument shapes, per identity.

For each identity (agent, falling back to its template and to all agents while it has learned
from fewer than ``min_sessions`` sessions) a ``river.proba.Multinomial`` per previous tool
estimates which tool comes next, and one per tool estimates the shape of its arguments (the
set of argument names). A step the identity has never taken (a transition or an argument shape
of probability zero in a warm model) is reported as an observation with a small score: alone it
never alerts, combined with other evidence it raises the session's risk.

Learning is deferred to the close of the root session and skipped if the session was flagged.

Memory is bounded: at most ``max_identities`` identities are learned under their own key (a
later one is scored by its template's and the global model, as in ``session_anomaly``), and
each table holds at most ``max_keys`` distributions. A transition with no distribution in a
full table is not reported: its absence says the table had no room, not that the step is new.
Without the first bound, agent ids that keep changing (a replica or version number in the id)
grew the table of identities by one key each, for as long as the worker ran.

>>> from detectors.testing import ctx_for, new_session
>>> det = TransitionSurprise(min_sessions=1)
>>> s = new_session()
>>> for i, t in enumerate(["list_files", "read_file"], 1):
...     _ = det.process(ctx_for(t, seq=i), s)
>>> det.on_session_close(s, flagged=False)
>>> s2 = new_session("s2")
>>> _ = det.process(ctx_for("list_files", session="s2", seq=1), s2)
>>> found = det.process(ctx_for("send_money", session="s2", seq=2), s2)
>>> [f.explanation["transition"] for f in found]
[['list_files', 'send_money']]
"""

from __future__ import annotations

from typing import Any

from river import proba

from detectors import capabilities as C
from detectors.base import EventContext, Finding
from detectors.intern import canonical
from detectors.online.identity import identity_keys
from detectors.scoring import adds_nothing, mode_of
from detectors.session import DEFAULT_MAX_MEMBERS as MAX_MEMBERS
from detectors.session import SessionState, slot_of, state_at, states_len

START = "<start>"
#: steps of a session kept until it closes (learning needs no more)
MAX_STEPS = 512


def _sid(ctx: EventContext, session: SessionState) -> str:
    """The event's session id, as the session state's own copy when it is the root (the
    event's copy would be one more string per session kept)."""
    sid = ctx.session_id
    return session.root_id if sid == session.root_id else sid


class Walk:
    """A session's tool-to-tool walk: each tree member's last tool, and the steps to learn.

    ``lasts`` is a flat list of shared names (session id, tool, session id, tool...): a dict
    would cost more than the names it points at. ``steps`` holds one shared ``(previous tool,
    tool, argument shape)`` tuple per step: sessions of one agent take the same few steps, so
    a step costs a pointer. Both are tuples, rebuilt when they change: one allocation of
    exactly their size each, where a list is an object and a buffer that reserves room ahead
    (~100 bytes more for a session of a few steps).
    """

    __slots__ = ("lasts", "steps")

    def __init__(self) -> None:
        self.lasts: tuple[str, ...] = ()
        self.steps: tuple[tuple[str, str, str], ...] = ()

    def last(self, session_id: str) -> str:
        """The last tool ``session_id`` called (``START`` if none)."""
        lasts = self.lasts
        for i in range(0, len(lasts), 2):
            if lasts[i] == session_id:
                return lasts[i + 1]
        return START

    def set_last(self, session_id: str, tool: str) -> None:
        lasts = self.lasts
        for i in range(0, len(lasts), 2):
            if lasts[i] == session_id:
                if lasts[i + 1] is not tool:
                    self.lasts = (*lasts[: i + 1], tool, *lasts[i + 2 :])
                return
        if len(lasts) >= 2 * MAX_MEMBERS:
            lasts = lasts[2:]  # the member that called first (a tree is bounded too)
        self.lasts = (*lasts, session_id, tool)

    def add_step(self, step: tuple[str, str, str]) -> None:
        self.steps = (*self.steps, step)

    def __getstate__(self) -> tuple[list[str], list[tuple[str, str, str]]]:
        # lists, as the walk kept them before (code before reads these checkpoints)
        return (list(self.lasts), list(self.steps))

    def __setstate__(self, state: tuple[list[str], list[Any]]) -> None:
        lasts, steps = state
        if steps and isinstance(steps[0], str):  # the flat layout: prev, tool, shape, prev...
            steps = [canonical(tuple(steps[i : i + 3])) for i in range(0, len(steps), 3)]
        self.lasts, self.steps = tuple(lasts), tuple(steps)


class TransitionSurprise:
    """Flags never-seen transitions and argument shapes of a warm identity model."""

    #: identities learned under their own key (the class value serves objects pickled before it)
    max_identities: int = 10_000

    def __init__(
        self,
        name: str = "AW-SEQ-001",
        min_sessions: int = 5,
        score_new: float = 0.15,
        score_new_sensitive: float = 0.3,
        max_keys: int = 50_000,
        mode: str = "enforce",
        max_identities: int = 10_000,
    ) -> None:
        self.name = name
        self._slot = slot_of(name)
        self.min_sessions = min_sessions
        self.score_new = score_new
        self.score_new_sensitive = score_new_sensitive
        self.max_keys = max_keys
        self.max_identities = max_identities
        self.mode = mode
        #: identity -> sessions learned
        self.sessions: dict[str, int] = {}
        #: (identity, previous tool) -> next-tool distribution
        self.next_tool: dict[tuple[str, str], proba.Multinomial] = {}
        #: (identity, tool) -> argument-shape distribution
        self.arg_shape: dict[tuple[str, str], proba.Multinomial] = {}

    # -- learned state ---------------------------------------------------------------------
    def learned_state(self) -> dict[str, Any]:
        return {"sessions": self.sessions, "next": self.next_tool, "args": self.arg_shape}

    def load_learned_state(self, state: dict[str, Any]) -> None:
        self.sessions, self.next_tool, self.arg_shape = (
            state["sessions"],
            state["next"],
            state["args"],
        )

    def _warm(self, agent_id: str) -> str | None:
        for key in identity_keys(agent_id):
            if self.sessions.get(key, 0) >= self.min_sessions:
                return key
        return None

    def score_one(self, ctx: EventContext, session: SessionState) -> float:
        """How surprising this step is for the identity (0 = seen before or model cold)."""
        tool = ctx.event.tool
        if tool is None:
            return 0.0
        prev = self._state(session).last(ctx.session_id)
        return self._score(ctx, prev, tool.name, _shape(tool.arguments))[0]

    def _score(self, ctx: EventContext, prev: str, name: str, shape: str) -> tuple[float, str]:
        key = self._warm(ctx.event.actor.agent_id)
        if key is None:
            return 0.0, ""
        why = ""
        dist = self.next_tool.get((key, prev))
        if dist is None and len(self.next_tool) >= self.max_keys:
            return 0.0, ""  # no room was left to learn it: unknown, not new
        if dist is None or dist(name) == 0.0:
            why = "transition"
        else:
            shapes = self.arg_shape.get((key, name))
            if shapes is not None and shapes(shape) == 0.0:
                why = "arguments"
        if not why:
            return 0.0, ""
        sensitive = bool(ctx.caps & C.SENSITIVE_ACTIONS)
        return (self.score_new_sensitive if sensitive else self.score_new), why

    def _state(self, session: SessionState) -> Walk:
        det, slot = session.det, self._slot
        st: Walk | None = state_at(det, slot) if slot < states_len(det) else None
        if st is None:
            st = session.det[self.name] = Walk()
        return st

    def _learn(self, st: Walk, session_id: str, prev: str, name: str, shape: str) -> None:
        name = canonical(name)
        if len(st.steps) < MAX_STEPS:
            st.add_step(canonical((prev, name, shape)))
        st.set_last(session_id, name)

    def learn_one(self, ctx: EventContext, session: SessionState) -> None:
        """Buffer this step; it is learned when the session closes unflagged."""
        tool = ctx.event.tool
        if tool is None:
            return
        st = self._state(session)
        prev = st.last(ctx.session_id)
        self._learn(st, _sid(ctx, session), prev, tool.name, _shape(tool.arguments))

    def process(self, ctx: EventContext, session: SessionState) -> list[Finding]:
        tool = ctx.event.tool
        if tool is None:
            return []
        st = self._state(session)
        prev = st.last(ctx.session_id)
        shape = _shape(tool.arguments)
        score, why = self._score(ctx, prev, tool.name, shape)
        self._learn(st, _sid(ctx, session), prev, tool.name, shape)
        transition = [prev, tool.name]
        if score <= 0.0 or adds_nothing(session, self.name, score, "observe"):
            return []
        return [
            Finding(
                detector=self.name,
                title="Step this agent has never taken",
                message=(
                    f"{session.agent_id} called {transition[1]} "
                    + (f"after {transition[0]}" if why == "transition" else "with new arguments")
                    + f", never seen in its unflagged sessions; score {score:.2f}."
                ),
                score=score,
                severity="low",
                action="observe",
                mode=mode_of(self.mode),
                evidence=(ctx.event.event_id,),
                tags=("ASI10",),
                key=self.name,
                explanation={"transition": transition, "why": why},
            )
        ]

    def on_session_close(self, session: SessionState, *, flagged: bool) -> None:
        st: Walk | None = session.det.get(self.name)
        if flagged or st is None:
            return
        steps = st.steps
        for key in identity_keys(session.agent_id):
            learned = self.sessions.get(key)
            if learned is None and len(self.sessions) >= self.max_identities:
                continue  # no room: scored by its template's or the global model
            self.sessions[key] = (learned or 0) + 1
            for prev, tool, shape in steps:
                _update(self.next_tool, (key, prev), tool, self.max_keys)
                _update(self.arg_shape, (key, tool), shape, self.max_keys)


def _update(
    table: dict[tuple[str, str], proba.Multinomial], key: tuple[str, str], x: str, max_keys: int
) -> None:
    """Count ``x`` in ``table[key]`` (a new distribution only while the table has room)."""
    dist = table.get(key)
    if dist is None:
        if len(table) >= max_keys:
            return
        dist = table[key] = proba.Multinomial()
    dist.update(x)


def _shape(arguments: dict[str, Any] | None) -> str:
    """The shape of a call's arguments: their names, sorted."""
    return ",".join(sorted(arguments)) if arguments else ""
