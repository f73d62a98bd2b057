"""The session's list-backed maps (members, detector states) answer like the dicts they
replace, and checkpoints that kept dicts are read."""

from __future__ import annotations

import pickle
from array import array
from typing import Any

import pytest

from detectors.history import SMALL_IDS, RecentIds, id_key, remember
from detectors.session import (
    _SLOTS_V2,
    STATE_VERSION,
    DetectorStates,
    Member,
    Members,
    SessionState,
    slot_of,
    state_at,
    states_len,
)


def test_members_answer_like_a_dict_in_the_order_last_asked() -> None:
    s = SessionState("root", None, "agent")
    root = s.member("root")
    child = s.member("child", "helper")
    assert s.members.get("child") is child and s.members["root"] is root
    assert s.members.get("nobody") is None and "child" in s.members and "x" not in s.members
    assert list(s.members) == ["root", "child"] and len(s.members) == 2
    s.member("root")  # asked again: now the most recent
    assert list(s.members) == ["child", "root"] and next(reversed(s.members)) == "root"
    assert [m.session_id for m in s.members.values()] == ["child", "root"]
    assert s.members.pop("child") is child and list(s.members) == ["root"]
    with pytest.raises(KeyError):
        del s.members["child"]
    with pytest.raises(ValueError, match="filed under"):
        s.members["other"] = Member("root", "agent")


def test_detector_states_answer_like_a_dict() -> None:
    det = DetectorStates()
    assert det.get("A") is None and "A" not in det and not det
    det["A"] = {"n": 1}
    det["B"] = [1]
    assert det["A"] == {"n": 1} and det.get("B") == [1] and "B" in det and len(det) == 2
    assert dict(det.items()) == {"A": {"n": 1}, "B": [1]}
    assert det.pop("A") == {"n": 1} and "A" not in det and det.pop("A", 0) == 0
    with pytest.raises(KeyError):
        det["A"]


def test_both_maps_survive_a_checkpoint_round_trip() -> None:
    s = SessionState("root", None, "agent")
    s.member("root").last_seq = 4
    s.member("child", "helper")
    s.det["X"] = ("state",)
    back: SessionState = pickle.loads(pickle.dumps(s))
    assert isinstance(back.members, Members) and isinstance(back.det, DetectorStates)
    assert list(back.members) == ["root", "child"] and back.members["root"].last_seq == 4
    assert back.det["X"] == ("state",) and back.det == s.det


def test_checkpoints_that_kept_dicts_are_read() -> None:
    s = SessionState("root", None, "agent")
    m = s.member("root")
    m.last_seq = 9
    old: list[Any] = [STATE_VERSION]
    for k in SessionState.__slots__:
        v = getattr(s, k)
        if k == "members":
            v = {"root": m}
        elif k == "det":
            v = {"AW-X": ["kept"]}
        old.append(v)
    back = SessionState.__new__(SessionState)
    back.__setstate__(tuple(old))
    assert isinstance(back.members, Members) and back.members["root"].last_seq == 9
    assert isinstance(back.det, DetectorStates) and back.det.get("AW-X") == ["kept"]


def test_version_2_checkpoints_with_the_bounds_in_every_session_are_read() -> None:
    """Layout 2 kept ``max_steps`` and ``max_members`` per session: they are dropped on load
    (the worker's constants now), every other slot is kept."""
    s = SessionState("root", "acme", "agent")
    s.member("root").last_seq = 3
    s.det["AW-X"] = ("kept",)
    s.kill_jti, s.event_count = "j", 4
    seen = RecentIds(8)
    seen.add(id_key("e1"))
    s.seen = seen
    values = {k: getattr(s, k) for k in SessionState.__slots__}
    values.update(max_steps=64, max_members=256, partition=3)
    v2 = pickle.dumps((2, *[values[k] for k in _SLOTS_V2]))
    back = SessionState.__new__(SessionState)
    back.__setstate__(pickle.loads(v2))
    assert back.members["root"].last_seq == 3 and back.det["AW-X"] == ("kept",)
    assert back.kill_jti == "j" and back.event_count == 4 and back.tenant == "acme"
    assert isinstance(back.seen, RecentIds) and id_key("e1") in back.seen
    assert back.max_steps == 64 and back.max_members == 256  # the class's
    assert not {"max_steps", "max_members", "partition"} & set(SessionState.__slots__)


def test_an_unknown_layout_version_is_refused() -> None:
    back = SessionState.__new__(SessionState)
    with pytest.raises(ValueError, match="layout version 99"):
        back.__setstate__((99,))


def test_a_detector_reads_its_state_by_its_slot() -> None:
    s = SessionState("root", None, "agent")
    slot = slot_of("AW-SLOT-TEST")
    assert slot == slot_of("AW-SLOT-TEST")  # one position per name, asked again
    assert not slot < states_len(s.det)  # nothing written: the list ends before the slot
    s.det["AW-SLOT-TEST"] = ["mine"]
    assert slot < states_len(s.det) and state_at(s.det, slot) == ["mine"]
    back: SessionState = pickle.loads(pickle.dumps(s))
    assert state_at(back.det, slot) == ["mine"] and back.det.get("AW-SLOT-TEST") == ["mine"]


def test_dedup_keys_start_as_a_bare_array_and_move_to_a_ring_when_many() -> None:
    keys = [id_key(f"e{i}") for i in range(SMALL_IDS + 5)]
    seen = None
    for k in keys[:SMALL_IDS]:
        seen = remember(seen, k, 4096)
    assert type(seen) is array and len(seen) == SMALL_IDS
    for k in keys[SMALL_IDS:]:
        seen = remember(seen, k, 4096)
    assert isinstance(seen, RecentIds) and all(k in seen for k in keys)
    assert id_key("other") not in seen
    small = None  # a window smaller than the bare array's limit: a ring from the start
    for k in keys[:5]:
        small = remember(small, k, 3)
    assert isinstance(small, RecentIds) and [k in small for k in keys[:5]] == [0, 0, 1, 1, 1]


def test_bare_array_dedup_keys_survive_a_checkpoint() -> None:
    s = SessionState("root", None, "agent")
    s.seen = remember(remember(None, id_key("e1"), 4096), id_key("e2"), 4096)
    back: SessionState = pickle.loads(pickle.dumps(s))
    assert type(back.seen) is array and id_key("e2") in back.seen and id_key("e3") not in back.seen
