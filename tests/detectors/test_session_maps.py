"""The session's list-backed maps (members, detector states) answer like the dicts they
replace, and checkpoints that kept dicts are read."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from detectors.session import (
    STATE_VERSION,
    DetectorStates,
    Member,
    Members,
    SessionState,
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
