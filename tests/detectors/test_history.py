"""The compact session history: the same answers as plain Python containers, bounded memory,
and pickles that mean the same in another process."""

from __future__ import annotations

import pickle
import subprocess
import sys
from collections import OrderedDict

from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.history import RecentIds, Step, StepLog, id_key
from detectors.session import SessionState

_text = st.text(min_size=1, max_size=50)
_step = st.builds(
    Step,
    seq=st.one_of(st.none(), st.integers(min_value=0, max_value=2**40)),
    ts=st.floats(allow_nan=False, allow_infinity=False, width=64),
    session_id=st.sampled_from(["s1", "s2", "sub-é"]),
    kind=st.sampled_from(["tool_call", "session_start", "delegation"]),
    tool=st.one_of(st.none(), st.sampled_from(["read", "send", "vault.read_secret"])),
    caps=st.frozensets(st.sampled_from(["read", "send", "egress", "secret_retrieval"])),
    event_id=st.one_of(
        st.uuids().map(str),
        st.uuids().map(lambda u: str(u).upper()),  # not canonical: kept as text
        _text,
        st.text(min_size=37, max_size=80),
    ),
    destination=st.one_of(st.none(), _text),
)


@settings(max_examples=200, deadline=None)
@given(cap=st.integers(min_value=1, max_value=8), steps=st.lists(_step, max_size=40))
def test_step_log_keeps_the_last_steps_and_the_first_of_each_capability(
    cap: int, steps: list[Step]
) -> None:
    log = StepLog(cap)
    first: dict[str, tuple[str, str, float]] = {}
    for s in steps:
        log.append(s)
        for c in s.caps:
            first.setdefault(c, (s.event_id, s.session_id, s.ts))
    assert list(log) == steps[-cap:]
    assert log.first_seen() == first
    again = pickle.loads(pickle.dumps(log))
    assert list(again) == steps[-cap:] and again.first_seen() == first
    # the table of shared values stays bounded however long the log runs
    assert len(log.atoms) <= 6 * cap + 64 + 8


@settings(max_examples=200, deadline=None)
@given(cap=st.integers(min_value=1, max_value=70), ids=st.lists(_text, max_size=200))
def test_recent_ids_answer_like_a_bounded_ordered_set(cap: int, ids: list[str]) -> None:
    recent = RecentIds(cap)
    model: OrderedDict[str, None] = OrderedDict()
    for e in ids:
        assert (id_key(e) in recent) == (e in model)
        if e in model:
            continue
        recent.add(id_key(e))
        model[e] = None
        if len(model) > cap:
            model.popitem(last=False)
    assert all(id_key(e) in recent for e in model)
    again = pickle.loads(pickle.dumps(recent))
    assert all(id_key(e) in again for e in model) and len(again) == len(recent)


def test_id_keys_are_the_same_in_another_process() -> None:
    """The dedup keys are checkpointed: a restarted worker (another hash seed) must compute
    the same ones, or it re-processes events a restored session already holds."""
    ids = ["e-1", "0190a7c2-5b1e-7c3e-9d2a-5b1f3c7e8a90", "sub-\u00e9-\ud800"]
    code = f"from detectors.history import id_key; print([id_key(e) for e in {ids!r}])"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345"},
    ).stdout
    assert out.strip() == str([id_key(e) for e in ids])


def test_a_tree_keeps_a_bounded_number_of_members_and_never_the_one_acting() -> None:
    class SmallTree(SessionState):
        __slots__ = ()
        max_members = 4

    s = SmallTree("root", None, "agent")
    s.member("root")
    for i in range(10):
        s.member(f"child-{i}").parent_id = "root"
        s.member("child-0")  # active all along: never the one forgotten
    assert len(s.members) == 4
    assert {"root", "child-0", "child-9"} <= set(s.members)


def test_a_first_layout_checkpoint_is_still_read() -> None:
    """Sessions pickled as a dict of attributes (before the compact layout) load: tree, alerts
    and kill state are kept, the steps too; detector state starts over."""
    s = SessionState("r1", "acme", "agent")
    s.member("r1").last_seq = 7
    state = {k: getattr(s, k) for k in SessionState.__slots__ if k not in ("log",)}
    step = Step(7, 1.5, "r1", "tool_call", "read", frozenset({"read"}), "e7", None)
    state.update(
        steps=[step],
        cap_first={"read": ("e7", "r1", 1.5)},
        seen={123: None},
        det={"rules": {"r": {}}},
        kill_jti="j",
    )
    restored = SessionState.__new__(SessionState)
    restored.__setstate__(state)
    assert restored.members["r1"].last_seq == 7 and restored.kill_jti == "j"
    assert restored.steps == [step] and restored.cap_first == {"read": ("e7", "r1", 1.5)}
    assert restored.det == {} and restored.seen is None


def _v1_state(steps: list[Step], cap: int) -> tuple[object, ...]:
    """A step log pickled by the first layout (36-byte ids inline, no version)."""
    import struct

    rec, first = struct.Struct("<qdHHHHHB36s"), struct.Struct("<HdB36s")
    atoms: list[object] = []

    def atom(x: object) -> int:
        if x is None:
            return 0xFFFF
        if x not in atoms:
            atoms.append(x)
        return atoms.index(x)

    kept = steps[-cap:]
    buf, firsts, pinned = b"", b"", []
    for s in steps:
        for c in sorted(s.caps):
            if c not in pinned:
                pinned.append(c)
                firsts += first.pack(atom(s.session_id), s.ts, len(s.event_id), s.event_id.encode())
    for s in kept:
        buf += rec.pack(
            -(2**63) if s.seq is None else s.seq, s.ts, atom(s.session_id), atom(s.kind),
            atom(s.tool), atom(s.caps), atom(s.destination), len(s.event_id), s.event_id.encode(),
        )  # fmt: skip
    return (cap, buf, atoms, 0, len(kept), tuple(pinned), firsts or None)


def test_a_step_log_of_the_first_layout_loads_as_the_same_steps() -> None:
    steps = [
        Step(i, float(i), "s1", "tool_call", "read", frozenset({"read", f"c{i % 3}"}),
             f"0000000{i}-0000-4000-8000-00000000000{i}" if i % 2 else f"e{i}", None)
        for i in range(6)
    ]  # fmt: skip
    log = StepLog.__new__(StepLog)
    log.__setstate__(_v1_state(steps, 4))
    assert list(log) == steps[-4:]
    assert log.first_seen() == first_of_each(steps)
    again = pickle.loads(pickle.dumps(log))
    assert list(again) == steps[-4:]


def first_of_each(steps: list[Step]) -> dict[str, tuple[str, str, float]]:
    first: dict[str, tuple[str, str, float]] = {}
    for s in steps:
        for c in sorted(s.caps):
            first.setdefault(c, (s.event_id, s.session_id, s.ts))
    return first


def test_first_steps_are_read_from_the_records_until_the_ring_moves_on() -> None:
    """No copy of a capability's first step while the ring still holds it (most sessions);
    copied out just before the ring overwrites it."""
    steps = [
        Step(i, float(i), "s1", "tool_call", "t", frozenset({f"c{i % 3}"}), f"e{i}", None)
        for i in range(6)
    ]
    first = {f"c{i}": (f"e{i}", "s1", float(i)) for i in range(3)}
    log = StepLog(4)
    for s in steps[:4]:
        log.append(s)
    assert log.firsts is None and log.pinned == () and log.first_seen() == first
    for s in steps[4:]:
        log.append(s)
    assert log.firsts is not None and log.pinned == ("c0", "c1", "c2")
    assert list(log) == steps[2:] and log.first_seen() == first


def test_a_version_3_log_with_kind_tool_and_capabilities_apart_loads_as_the_same_steps() -> None:
    import struct

    rec = struct.Struct("<qdHHHHHB16s")
    atoms = ["s1", "tool_call", "read", frozenset({"read"}), frozenset()]
    uuid = "0a1b2c3d-7c1e-4d2a-9f00-000000000001"
    buf = rec.pack(0, 1.5, 0, 1, 2, 3, 0xFFFF, 0xFE, bytes.fromhex(uuid.replace("-", "")))
    buf += rec.pack(1, 2.5, 0, 1, 0xFFFF, 4, 0xFFFF, 2, b"e2".ljust(16, b"\0"))
    first = struct.pack("<HdB16s", 0, 1.5, 0xFE, bytes.fromhex(uuid.replace("-", "")))
    steps = [
        Step(0, 1.5, "s1", "tool_call", "read", frozenset({"read"}), uuid, None),
        Step(1, 2.5, "s1", "tool_call", None, frozenset(), "e2", None),
    ]
    # version 2 always copied them; version 3 read them from the records until the ring moved on
    for firsts, pinned in ((first, ("read",)), (None, ())):
        log = StepLog.__new__(StepLog)
        log.__setstate__((3, 4, buf, atoms, 0, 2, pinned, firsts))
        assert list(log) == steps and log.first_seen() == {"read": (uuid, "s1", 1.5)}
        assert pickle.loads(pickle.dumps(log)).first_seen() == log.first_seen()
        log.append(steps[0]._replace(seq=2))
        assert len(log.buf) == 3 * 39 and log.atoms[1] == ("tool_call", "read", frozenset({"read"}))
