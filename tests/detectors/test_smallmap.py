"""SmallMap answers every dict operation the detectors use exactly as a dict does."""

from __future__ import annotations

import copy
import pickle
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.smallmap import SmallMap

_key = st.one_of(st.sampled_from(["#", "p", "t", "a", "b"]), st.integers(0, 5))
_op = st.tuples(st.sampled_from(["set", "del", "pop", "setdefault", "get"]), _key, st.integers())


@settings(max_examples=300, deadline=None)
@given(ops=st.lists(_op, max_size=40))
def test_small_map_behaves_as_a_dict(ops: list[tuple[str, Any, int]]) -> None:
    m, d = SmallMap(), {}
    for op, k, v in ops:
        if op == "set":
            m[k] = v
            d[k] = v
        elif op == "del":
            if k in d:
                del m[k]
                del d[k]
            else:
                assert k not in m
        elif op == "pop":
            assert m.pop(k, None) == d.pop(k, None)
        elif op == "setdefault":
            assert m.setdefault(k, v) == d.setdefault(k, v)
        else:
            assert m.get(k) == d.get(k)
        assert list(m.items()) == list(d.items()) and list(m) == list(d)
        assert len(m) == len(d) and bool(m) == bool(d) and m == d
    assert dict(m) == d and {**m} == d
    for again in (pickle.loads(pickle.dumps(m)), copy.deepcopy(m)):
        assert type(again) is SmallMap and list(again.items()) == list(d.items())


def test_missing_keys_raise_as_in_a_dict() -> None:
    m = SmallMap({"a": 1})
    for f in (lambda: m["b"], lambda: m.pop("b")):
        try:
            f()
        except KeyError as e:
            assert e.args == ("b",)
        else:
            raise AssertionError("no KeyError")
