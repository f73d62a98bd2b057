"""An event evaluates only the rules it can trigger, and per-session rule state stays bounded."""

from __future__ import annotations

from detectors.rules.loader import load_rules
from detectors.rules.matching import MAX_KEYS, MAX_TIMERS
from tests.detectors.rules.helpers import call, events, run


def test_the_index_picks_few_rules_for_an_ordinary_event() -> None:
    pack = load_rules()
    read = {r.id for r in pack.candidates("tool_call", frozenset({"read"}))}
    assert read == {
        "AW-CRED-001",
        "AW-CRED-002",
        "AW-REVOKE-001",
        "AW-REVOKE-002",
        "AW-SCOPE-001",
        "AW-SCOPE-003",
    }
    egress = {r.id for r in pack.candidates("tool_call", frozenset({"external_egress"}))}
    assert {"AW-COMBO-001", "AW-EGRESS-001", "AW-EGRESS-002", "AW-SCOPE-002"} <= egress
    assert "AW-PROD-001" not in egress and "AW-DELEG-001" not in egress
    assert pack.candidates("tool_call", frozenset({"read"})) is pack.candidates(
        "tool_call", frozenset({"read"})
    )  # cached


def test_timers_keys_and_counted_events_are_capped() -> None:
    rules = """
- rule: ABS
  title: a
  priority: LOW
  output: a
  absence: {after: tool.name = a, expect: tool.name = b, within: 1h}
- rule: SEQ
  title: s
  priority: LOW
  by: session
  output: s
  sequence:
    steps:
      - {name: x, condition: tool.name = x}
      - {name: y, condition: tool.name = y}
- rule: CNT
  title: c
  priority: LOW
  output: c
  count: {condition: tool.name = c, within: 1h, threshold: 3}
"""
    evs = events(
        *[call("a") for _ in range(50)],
        *[call("x", session={"id": f"s{i}", "root_id": "s1"}) for i in range(400)],
        *[call("c") for _ in range(50)],
    )
    r = run(rules, evs)
    assert r.pipeline is not None
    state = r.pipeline.sessions["s1"].det["rules"].r
    timers = [t for k, v in state["ABS"].items() if k != "#" for t in v.t]
    assert len(timers) == MAX_TIMERS
    assert len([k for k in state["SEQ"] if k != "#"]) == MAX_KEYS
    assert len(state["CNT"]["*"]) == 3
