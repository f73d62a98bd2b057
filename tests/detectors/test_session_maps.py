"""The session's list-backed maps (members, detector states) answer like the dicts they
replace, and checkpoints that kept dicts are read."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from detectors.history import (
    SMALL_IDS,
    RecentIds,
    Step,
    StepLog,
    id_key,
    key_bytes,
    remember,
    seen_has,
)
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


def test_dedup_keys_start_as_bare_bytes_and_move_to_a_ring_when_many() -> None:
    keys = [id_key(f"e{i}") for i in range(SMALL_IDS + 5)]
    seen: RecentIds | bytes | None = None
    for k in keys[:SMALL_IDS]:
        seen = remember(seen, k, 4096)
    assert type(seen) is bytes and len(seen) == 8 * SMALL_IDS
    assert all(seen_has(seen, k) for k in keys[:SMALL_IDS]) and not seen_has(seen, keys[-1])
    for k in keys[SMALL_IDS:]:
        seen = remember(seen, k, 4096)
    assert isinstance(seen, RecentIds) and all(seen_has(seen, k) for k in keys)
    assert not seen_has(seen, id_key("other")) and not seen_has(None, keys[0])
    small = None  # a window smaller than the bare bytes' limit: a ring from the start
    for k in keys[:5]:
        small = remember(small, k, 3)
    assert isinstance(small, RecentIds) and [k in small for k in keys[:5]] == [0, 0, 1, 1, 1]


def test_only_whole_keys_are_found_in_bare_bytes() -> None:
    """Eight bytes across two kept keys are not a key that was seen."""
    a, b = key_bytes(0x0102030405060708), key_bytes(0x1112131415161718)
    across = int.from_bytes((a + b)[3:11], "little", signed=True)
    seen = remember(remember(None, 0x0102030405060708, 4096), 0x1112131415161718, 4096)
    assert seen_has(seen, 0x1112131415161718) and not seen_has(seen, across)
    seen = remember(seen, across, 4096)  # now it was seen, after the two
    assert seen_has(seen, across)


def test_bare_dedup_keys_survive_a_checkpoint() -> None:
    s = SessionState("root", None, "agent")
    s.seen = remember(remember(None, id_key("e1"), 4096), id_key("e2"), 4096)
    back: SessionState = pickle.loads(pickle.dumps(s))
    assert type(back.seen) is bytes and seen_has(back.seen, id_key("e2"))
    assert not seen_has(back.seen, id_key("e3"))


def test_a_step_log_pickled_with_its_earlier_containers_loads() -> None:
    """The log kept a bytearray and a list before (the same pickled tuple): read back."""
    log = StepLog(4)
    steps = [
        Step(i, float(i), "s1", "tool_call", "read", frozenset({"read"}), f"e{i}", None)
        for i in range(6)
    ]
    for step in steps:
        log.append(step)
    state = list(log.__getstate__())
    state[2], state[3], state[7] = bytearray(state[2]), list(state[3]), bytearray(state[7])
    back = StepLog.__new__(StepLog)
    back.__setstate__(tuple(state))
    assert list(back) == steps[-4:] and back.first_seen() == {"read": ("e0", "s1", 0.0)}
    back.append(steps[0])
    assert list(back) == [*steps[-3:], steps[0]]


def test_risk_contributions_are_a_small_map_and_dict_checkpoints_are_read_in_order() -> None:
    from detectors.session import NO_ENTRIES
    from detectors.smallmap import SmallMap

    s = SessionState("root", None, "agent")
    assert s.contributions is NO_ENTRIES
    own = s.own_contributions()
    own["B"], own["A"] = (0.5, "enforce", "B"), (0.2, "shadow", "A")
    assert type(s.contributions) is SmallMap and list(s.contributions.items()) == [
        ("B", (0.5, "enforce", "B")),
        ("A", (0.2, "shadow", "A")),
    ]
    back: SessionState = pickle.loads(pickle.dumps(s))
    assert type(back.contributions) is SmallMap and back.contributions == s.contributions
    old: list[Any] = [STATE_VERSION]  # what a checkpoint written before held: a dict
    for k in SessionState.__slots__:
        old.append(dict(s.contributions.items()) if k == "contributions" else getattr(s, k))
    loaded = SessionState.__new__(SessionState)
    loaded.__setstate__(tuple(old))
    assert type(loaded.contributions) is SmallMap
    assert list(loaded.contributions.keys()) == ["B", "A"]


def test_a_scope_that_narrows_nothing_is_the_parent_s_own() -> None:
    from detectors.session import UNRESTRICTED, Scope
    from schemas.events import Intent

    assert Scope.from_intent(None) is UNRESTRICTED
    assert Scope.from_intent(Intent(task=None)) is UNRESTRICTED
    parent = Scope(task="t", allowed_tools=("read_*",))
    assert parent.narrowed_by(UNRESTRICTED) is parent
    assert parent.narrowed_by(Scope(task="t", allowed_tools=("read_*",))) is parent
    child = parent.narrowed_by(Scope(allowed_tools=("read_file",)))
    assert child == Scope(task="t", allowed_tools=("read_file",)) and child is not parent
