"""A session's flat checkpoint form (``detectors.flatstate``): every part of simulated sessions
comes back as it was, checkpoints of the object-by-object layout still load, and a state of a
class the form does not know is pickled as it is."""

from __future__ import annotations

import copyreg
import dataclasses
import io
import pickle
import pickletools
from typing import Any

import orjson
import pytest

from detectors.alerting import AlertState
from detectors.flatstate import (
    _ALERT_FIELDS,
    _MEMBER_FIELDS,
    _SCOPE_FIELDS,
    FLAT_LAYOUT,
    session_from,
)
from detectors.history import RecentIds, id_key
from detectors.registry import build_engine
from detectors.session import UNRESTRICTED, Member, Scope, SessionState
from monitor.pipeline import Pipeline
from monitor.simulator import generate
from schemas.events import parse_event


def parts(x: Any) -> Any:
    """Everything a value holds, by type and content (objects by their slots or state)."""
    t = type(x)
    if t in (str, bytes, int, float, bool, type(None), frozenset):
        return x
    if t is SessionState:
        return ("session", [parts(getattr(x, k)) for k in t.__slots__ if k != "pending"])
    if isinstance(x, list):
        return (t.__name__, [parts(i) for i in list.__iter__(x)], getattr(x, "shape", None))
    if t is tuple:
        return tuple(parts(i) for i in x)
    if t is dict:
        return ("dict", [(k, parts(v)) for k, v in x.items()])
    if dataclasses.is_dataclass(x):
        return (t.__name__, [parts(getattr(x, f.name)) for f in dataclasses.fields(x)])
    if "__getstate__" in vars(t):
        return (t.__name__, parts(x.__getstate__()))
    if "__reduce__" in vars(t):
        return (t.__name__, parts(x.__reduce__()[1]))
    return (t.__name__, [parts(getattr(x, k)) for k in t.__slots__])


def simulated(sessions: int = 150, cut: int | None = None) -> Pipeline:
    """A pipeline after simulated traffic (attacks, sub-agents, alerts and kills included);
    with ``cut``, each session stops after that many events (left open)."""
    pipe = Pipeline(build_engine())
    for i, doc in enumerate(generate(5, sessions=sessions, attack_ratio=0.3)):
        if cut is not None and (doc["session"].get("seq") or 0) >= cut:
            continue
        pipe.process(parse_event(orjson.dumps(doc)), now=i * 0.001)
    return pipe


class _Before(pickle.Pickler):
    """Pickles a session as the object-by-object layout (3) did: its class, then its slots'
    objects, each on its own terms."""

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is SessionState:
            return (copyreg.__newobj__, (SessionState,), obj.__getstate__())  # type: ignore[attr-defined]
        return NotImplemented


def object_by_object(s: SessionState) -> bytes:
    """What a checkpoint held before the flat form."""
    buf = io.BytesIO()
    _Before(buf, pickle.HIGHEST_PROTOCOL).dump(s)
    return buf.getvalue()


@pytest.mark.parametrize("cut", [None, 4])
def test_simulated_sessions_come_back_whole(cut: int | None) -> None:
    pipe = simulated(cut=cut)
    sessions = list(pipe)
    assert any(s.alerts for s in sessions) and any(s.killed for s in sessions)
    assert any(len(s.members) > 1 for s in sessions) and any(s.det.get("rules") for s in sessions)
    for s in sessions:
        blob = pickle.dumps(s, pickle.HIGHEST_PROTOCOL)
        back = pickle.loads(blob)
        assert parts(back) == parts(s), s.root_id
        globals_ = [op.name for op, _, _ in pickletools.genops(blob) if "GLOBAL" in op.name]
        assert back.pending == () and len(globals_) == 1  # one reconstructor
        for m in back.members.values():
            if m.scope == UNRESTRICTED:
                assert m.scope is UNRESTRICTED  # the shared one
        assert len(blob) < len(object_by_object(s))


def test_checkpoints_of_the_object_by_object_layout_still_load() -> None:
    for s in simulated(60):
        back = pickle.loads(object_by_object(s))
        assert type(back) is SessionState and parts(back) == parts(s)


def test_a_restored_session_decides_as_the_one_it_was() -> None:
    """Sessions cut mid-way, checkpointed and restored in another pipeline, then fed the rest:
    the same decisions as without the restart."""
    docs = list(generate(9, sessions=80, attack_ratio=0.3))
    half = len(docs) // 2

    def decisions(restart: bool) -> list[str]:
        pipe = Pipeline(build_engine())
        out = []
        for i, doc in enumerate(docs):
            if restart and i == half:
                fresh = Pipeline(build_engine())
                for root in pipe.sessions:
                    fresh.restore(root, pipe.snapshot(root), now=i * 0.001)
                pipe = fresh
            out += pipe.process(parse_event(orjson.dumps(doc)), now=i * 0.001)
        out += pipe.tick(1e12)
        return [repr(d) for d in out if type(d).__name__ in ("AlertDecision", "KillDecision")]

    straight = decisions(False)
    assert straight and decisions(True) == straight


def test_the_alert_fields_are_every_field_of_an_alert() -> None:
    """A new ``AlertState`` field must be added to the flat form (with a new layout version)."""
    assert _ALERT_FIELDS == tuple(f.name for f in dataclasses.fields(AlertState))


def test_the_member_and_scope_fields_are_every_slot_and_field() -> None:
    """The flat form names a member's slots and a scope's fields itself (its layout must not
    move when a class does): a new one must be added there (with a new layout version)."""
    assert set(_MEMBER_FIELDS) == set(Member.__slots__) - {"scope"}
    assert _SCOPE_FIELDS == tuple(f.name for f in dataclasses.fields(Scope))


class Custom:
    """A detector state of a class the flat form does not know (pickled as it is)."""

    def __init__(self, n: int) -> None:
        self.n = n


def test_unknown_states_dedup_rings_and_scopes_come_back() -> None:
    s = SessionState("root", "acme", "agent")
    m = s.member("root")
    m.scope = Scope(task="t", allowed_tools=("a.*",), max_duration_s=60.0)
    s.member("child", "helper").parent_id = "root"
    s.det["AW-CUSTOM"] = Custom(7)
    s.det["AW-TEXT"] = "kept"
    ring = RecentIds(4096)
    for e in ("e1", "e2"):
        ring.add(id_key(e))
    s.seen = ring
    back: SessionState = pickle.loads(pickle.dumps(s))
    assert back.det["AW-CUSTOM"].n == 7 and back.det["AW-TEXT"] == "kept"
    assert isinstance(back.seen, RecentIds) and id_key("e2") in back.seen
    assert back.members["root"].scope == m.scope and back.members["child"].parent_id == "root"
    assert back.members["child"].scope is UNRESTRICTED


def test_an_unknown_flat_layout_is_refused() -> None:
    with pytest.raises(ValueError, match="layout version 99"):
        session_from((99,))
    assert FLAT_LAYOUT == 4


class Bounded(SessionState):
    """A session class with other bounds (a subclass keeps its class through a checkpoint)."""

    __slots__ = ()
    max_members = 4


def test_a_session_subclass_keeps_its_class() -> None:
    s = Bounded("root", None, "agent")
    s.member("root").last_seq = 2
    back = pickle.loads(pickle.dumps(s))
    assert type(back) is Bounded and back.max_members == 4
    assert back.members["root"].last_seq == 2
