"""An event evaluates only the rules it can trigger, and per-session rule state stays bounded."""

from __future__ import annotations

from detectors.rules.loader import load_rules
from detectors.rules.matching import MAX_KEYS, MAX_TIMERS
from detectors.rules.model import NEVER
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


def test_a_batch_sees_each_rule_as_its_events_can_meet_it() -> None:
    pack = load_rules()
    egress = pack.batch("tool_call", frozenset({"external_egress", "message_send"}))
    # an export can only be the combination's export member: the others are never evaluated
    combo = egress.views["AW-COMBO-001"]
    assert combo.id == "AW-COMBO-001" and combo.shape == pack.rules["AW-COMBO-001"].shape
    assert [s.name for s in combo.steps if s.cond is not NEVER] == ["export"]
    assert "AW-COMBO-001" in {r.id for r, _ in egress.plan}
    # AW-EXFIL-001 (bulk read, then export) is no candidate (an export cannot start it), but
    # a session with a partial match of it runs its view, where only the export step is live
    exfil = egress.views["AW-EXFIL-001"]
    assert exfil.positive[0].cond is NEVER and exfil.positive[1].cond is not NEVER
    assert "AW-EXFIL-001" not in egress.idle
    # a session_end can meet no condition of the exfiltration chains: they idle on it
    end = pack.batch("session_end", frozenset())
    assert {"AW-EXFIL-001", "AW-EXFIL-002", "AW-EXFIL-003"} <= end.idle
    assert "AW-SCOPE-004" not in end.idle  # the session_end is what that absence waits for
    # a rule no condition of which depends on the kind or capabilities is its own view
    assert egress.views["AW-SCOPE-003"] is pack.rules["AW-SCOPE-003"]


def test_idle_events_still_expire_partial_matches_and_fire_timers() -> None:
    rules = """
- rule: SEQ
  title: s
  priority: LOW
  output: s
  sequence:
    maxspan: 1m
    steps:
      - {name: x, condition: evt.kind = tool_call and tool.name = x}
      - {name: y, condition: evt.kind = tool_call and tool.name = y}
- rule: ABS
  title: a
  priority: LOW
  output: a %tool.name
  absence:
    after: evt.kind = tool_call and tool.name = a
    expect: evt.kind = tool_call and tool.name = b
    within: 1m
"""
    evs = events(
        call("x"),
        call("a"),
        # no condition of either rule can meet a delegation: the partial match expires and
        # the timer fires all the same
        {"kind": "delegation", "delegation": {"child_session_id": "c"}, "after": "90s"},
        call("y"),  # too late for SEQ
    )
    r = run(rules, evs)
    assert {(f.detector, f.message, f.evidence) for f in r.findings} == {("ABS", "a a", ("t-1",))}
    assert r.pipeline is not None
    assert r.pipeline.sessions["s1"].det["rules"].live == ()


def test_an_exception_of_no_values_costs_nothing() -> None:
    combo = load_rules().rules["AW-COMBO-001"]
    assert combo.exception is None  # known_agents lists no agent by default
