"""Session anomaly: HalfSpaceTrees over a session's behaviour features, per identity.

Features (counts squashed to 0..1 with ``x / (x + k)``): tool calls, distinct tools, sensitive
actions and their share, untrusted reads, distinct destinations, tools the identity has never
used. They are scored at *milestones* (the 3rd, 6th, 12th, 24th... tool call and the session's
end), not on every event: a HalfSpaceTrees score costs ~15-20 µs. A warm identity model (one
that learned from ``min_sessions`` unflagged sessions) reporting a high anomaly score yields an
observation; alone it never alerts.

>>> from detectors.testing import ctx_for, new_session
>>> det = SessionAnomaly(min_sessions=2, seed=7)
>>> for n in range(3):
...     s = new_session(f"s{n}")
...     for i in range(1, 4):
...         _ = det.process(ctx_for("get_balance", session=f"s{n}", seq=i), s)
...     det.on_session_close(s, flagged=False)
>>> det.learned["agent-a"]
3
"""

from __future__ import annotations

from typing import Any

from river import anomaly

from detectors import capabilities as C
from detectors.base import EventContext, Finding
from detectors.intern import canonical
from detectors.online.identity import identity_keys
from detectors.scoring import adds_nothing, mode_of
from detectors.session import SessionState, slot_of, state_at, states_len

MILESTONES = frozenset({3, 6, 12, 24, 48, 96, 192})
#: distinct tools and destinations counted per session
MAX_DISTINCT = 256
#: identities (agents, templates, the global key) with a model of their own, per detector: a
#: model of the default size (10 trees of height 6) is ~290 KB in memory and ~45 KB pickled,
#: so 256 of them are ~74 MB at worst, where one per agent id seen would grow without end
#: with replica and version ids. An identity that finds no room is scored by its template's
#: or the global model (``identity_keys``), which its sessions still teach.
MAX_MODELS = 256


class Usage:
    """A session's counts behind the features: tool calls, sensitive and untrusted ones, and
    the distinct tools and destinations (tuples of shared names: a session has few, and a
    set costs 216 bytes before it holds anything)."""

    __slots__ = ("calls", "sensitive", "untrusted", "tools", "dests")

    def __init__(self) -> None:
        self.calls = 0
        self.sensitive = 0
        self.untrusted = 0
        self.tools: tuple[str, ...] = ()
        self.dests: tuple[str, ...] = ()

    def __getstate__(self) -> tuple[Any, ...]:
        return (self.calls, self.sensitive, self.untrusted, self.tools, self.dests)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self.calls, self.sensitive, self.untrusted, self.tools, self.dests = state


class SessionAnomaly:
    """Scores a session's feature vector against the identity's HalfSpaceTrees."""

    def __init__(
        self,
        name: str = "AW-ANOM-001",
        min_sessions: int = 20,
        threshold: float = 0.8,
        weight: float = 0.25,
        n_trees: int = 10,
        height: int = 6,
        window_size: int = 64,
        seed: int = 42,
        mode: str = "enforce",
        max_models: int = MAX_MODELS,
    ) -> None:
        self.name = name
        self._slot = slot_of(name)
        self.min_sessions = min_sessions
        self.threshold = threshold
        self.weight = weight
        self.n_trees = n_trees
        self.height = height
        self.window_size = window_size
        self.seed = seed
        self.mode = mode
        self.max_models = max_models
        self.models: dict[str, anomaly.HalfSpaceTrees] = {}
        self.learned: dict[str, int] = {}
        #: identity -> tools seen in its unflagged sessions
        self.known_tools: dict[str, set[str]] = {}
        #: (identity, sessions learned, features) -> score; memory only
        self._scores: dict[tuple[Any, ...], float] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_scores"] = {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("_scores", {})
        self.__dict__.setdefault("max_models", MAX_MODELS)  # pickled before the bound

    def learned_state(self) -> dict[str, Any]:
        return {"models": self.models, "learned": self.learned, "tools": self.known_tools}

    def load_learned_state(self, state: dict[str, Any]) -> None:
        self.models, self.learned, self.known_tools = (
            state["models"],
            state["learned"],
            state["tools"],
        )
        self._scores = {}

    def _model(self, key: str) -> anomaly.HalfSpaceTrees:
        m = self.models.get(key)
        if m is None:
            m = anomaly.HalfSpaceTrees(
                n_trees=self.n_trees,
                height=self.height,
                window_size=self.window_size,
                seed=self.seed,
            )
            self.models[key] = m
        return m

    def _warm(self, agent_id: str) -> str | None:
        for key in identity_keys(agent_id):
            if self.learned.get(key, 0) >= self.min_sessions:
                return key
        return None

    def _counts(self, session: SessionState) -> Usage:
        det, slot = session.det, self._slot
        st: Usage | None = state_at(det, slot) if slot < states_len(det) else None
        if st is None:
            st = session.det[self.name] = Usage()
        return st

    def features(self, session: SessionState) -> dict[str, float]:
        st = self._counts(session)
        known = self.known_tools.get(self._warm(session.agent_id) or "", set())
        calls = st.calls
        new_tools = sum(1 for t in st.tools if t not in known) if known else 0
        return {
            "calls": calls / (calls + 8.0),
            "tools": len(st.tools) / (len(st.tools) + 4.0),
            "sensitive": st.sensitive / (st.sensitive + 2.0),
            "sensitive_share": st.sensitive / calls if calls else 0.0,
            "untrusted": st.untrusted / (st.untrusted + 4.0),
            "destinations": len(st.dests) / (len(st.dests) + 2.0),
            "new_tools": new_tools / (new_tools + 1.0),
        }

    def score_one(self, ctx: EventContext, session: SessionState) -> float:
        key = self._warm(session.agent_id)
        if key is None:
            return 0.0
        x = self.features(session)
        # Sessions of one agent often reach a milestone with the same features, and a model
        # changes only when it learns: score each (model state, features) once.
        memo = (key, self.learned[key], tuple(x.values()))
        score = self._scores.get(memo)
        if score is None:
            score = float(self.models[key].score_one(x))
            if len(self._scores) >= 4096:
                self._scores.clear()
            self._scores[memo] = score
        return score

    def learn_one(self, ctx: EventContext, session: SessionState) -> None:
        """Count this step (the model learns at the session's close, if unflagged)."""
        self._count(ctx, session)

    def _count(self, ctx: EventContext, session: SessionState) -> Usage | None:
        """Count this step; the session's counts (None: not a tool call, nothing counted)."""
        tool = ctx.event.tool
        if tool is None:
            return None
        st = self._counts(session)
        st.calls += 1
        if len(st.tools) < MAX_DISTINCT and tool.name not in st.tools:
            # the tuple too: sessions of one agent call the same tools in the same order
            st.tools = canonical((*st.tools, canonical(tool.name)))
        st.sensitive += bool(ctx.caps & C.SENSITIVE_ACTIONS)
        st.untrusted += C.UNTRUSTED_INPUT in ctx.caps
        dest = ctx.cls.destination
        if dest and len(st.dests) < MAX_DISTINCT and dest not in st.dests:
            st.dests += (canonical(dest),)
        return st

    def process(self, ctx: EventContext, session: SessionState) -> list[Finding]:
        st = self._count(ctx, session)
        if st is None:
            st = self._counts(session)  # every event gives the session its counts (closing reads)
            at_milestone = ctx.event.kind == "session_end"
        else:
            at_milestone = ctx.event.kind == "session_end" or st.calls in MILESTONES
        if not at_milestone:
            return []
        score = self.score_one(ctx, session)
        if score < self.threshold or adds_nothing(
            session, self.name, round(self.weight * score, 4), "observe"
        ):
            return []
        return [
            Finding(
                detector=self.name,
                title="Session unlike this agent's normal sessions",
                message=(
                    f"Session {session.root_id} of {session.agent_id} after {st.calls} calls "
                    f"scores {score:.2f} on the agent's anomaly model."
                ),
                score=round(self.weight * score, 4),
                severity="low",
                action="observe",
                mode=mode_of(self.mode),
                evidence=(ctx.event.event_id,),
                tags=("ASI10",),
                key=self.name,
                explanation={"anomaly": round(score, 4), "features": self.features(session)},
            )
        ]

    def on_session_close(self, session: SessionState, *, flagged: bool) -> None:
        if flagged or self.name not in session.det:
            return
        x = self.features(session)
        st = self._counts(session)
        for key in identity_keys(session.agent_id):
            model = self.models.get(key)
            if model is None:
                if len(self.models) >= self.max_models:
                    continue  # no room: scored by its template's or the global model
                model = self._model(key)
            model.learn_one(x)
            self.learned[key] = self.learned.get(key, 0) + 1
            tools = self.known_tools.setdefault(key, set())
            if len(tools) < 4096:
                tools.update(st.tools)
