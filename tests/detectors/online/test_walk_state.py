"""The transition detector's per-session walk: tuples in memory, the lists it pickled before."""

from __future__ import annotations

import pickle

from detectors.online.transitions import START, Walk


def test_a_walk_remembers_each_members_last_tool_and_its_steps() -> None:
    w = Walk()
    assert w.last("s1") == START
    w.set_last("s1", "read")
    w.set_last("s2", "send")
    w.set_last("s1", "write")
    w.add_step(("read", "write", "a"))
    assert (w.last("s1"), w.last("s2"), w.last("s3")) == ("write", "send", START)
    assert w.steps == (("read", "write", "a"),) and type(w.lasts) is tuple


def test_walks_pickled_as_lists_before_load_and_pickle_the_same_way() -> None:
    old = Walk.__new__(Walk)
    old.__setstate__((["s1", "read"], [("read", "send", "x")]))
    assert old.last("s1") == "read" and old.steps == (("read", "send", "x"),)
    flat = Walk.__new__(Walk)  # the first layout: steps flattened
    flat.__setstate__((["s1", "read"], ["a", "b", "c", "b", "d", "e"]))
    assert flat.steps == (("a", "b", "c"), ("b", "d", "e"))
    assert old.__getstate__() == (["s1", "read"], [("read", "send", "x")])
    back = pickle.loads(pickle.dumps(old))
    assert back.last("s1") == "read" and back.steps == old.steps
