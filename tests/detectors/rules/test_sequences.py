"""Sequences: order, maxspan edges, until, missing steps, by session vs by root, stages."""

from __future__ import annotations

from tests.detectors.rules.helpers import call, events, run

SEQ = """
- rule: SEQ
  title: read then send
  priority: HIGH
  output: "%read.tool.name then %send.tool.name in %span"
  by: {by}
  sequence:
    maxspan: 60s
    steps:
      - name: read
        condition: tool.name = read_file
      - name: send
        condition: tool.name = send_email
"""


def seq(by: str = "root") -> str:
    return SEQ.replace("{by}", by)


def test_ordered_steps_give_one_alert_with_the_evidence_in_order() -> None:
    r = run(seq(), events(call("read_file"), call("list_files"), call("send_email")))
    [alert] = r.alerts("SEQ")
    assert alert.alert.evidence == ["t-0", "t-2"]
    assert alert.alert.stage == "complete"
    assert alert.alert.message == "read_file then send_email in 2s"
    assert alert.alert.severity == "high" and alert.alert.action == "alert"


def test_steps_out_of_order_do_not_match() -> None:
    r = run(seq(), events(call("send_email"), call("read_file")))
    assert r.of("SEQ") == []


def test_maxspan_is_inclusive() -> None:
    on_edge = events(call("read_file"), call("send_email", after="60s"))
    past_edge = events(call("read_file"), call("send_email", after="61s"))
    assert len(run(seq(), on_edge).alerts("SEQ")) == 1
    assert run(seq(), past_edge).alerts("SEQ") == []


def test_a_later_start_restarts_an_expired_partial_match() -> None:
    evs = events(call("read_file"), call("read_file", after="50s"), call("send_email", after="50s"))
    [alert] = run(seq(), evs).alerts("SEQ")
    assert alert.alert.evidence == ["t-1", "t-2"]


def test_until_drops_partial_matches() -> None:
    rules = seq().replace("    maxspan: 60s", "    maxspan: 60s\n    until: evt.kind = session_end")
    evs = events(
        call("read_file"),
        {"kind": "session_end"},
        {"kind": "session_start", "session": "s2"},
        call("send_email"),
    )
    assert run(rules, evs).of("SEQ") == []


def test_a_full_match_consumes_its_partial_matches() -> None:
    evs = events(call("read_file"), call("send_email"), call("send_email"))
    r = run(seq(), evs)
    assert len(r.of("SEQ")) == 1  # the second send has no read of its own left


def test_by_root_spans_the_delegation_tree_by_session_does_not() -> None:
    evs = events(
        {"kind": "session_start", "session": "p"},
        {"kind": "delegation", "session": "p", "delegation": {"child_session_id": "c"}},
        call("read_file", session={"id": "p"}),
        call("send_email", session={"id": "c", "parent_id": "p"}),
    )
    [alert] = run(seq("root"), evs).alerts("SEQ")
    assert alert.alert.evidence == ["t-2", "t-3"] and alert.alert.key == "SEQ"
    assert run(seq("session"), evs).of("SEQ") == []


def test_by_session_keys_one_alert_per_session() -> None:
    evs = events(
        {"kind": "session_start", "session": "p"},
        call("read_file", session={"id": "c1", "parent_id": "p"}),
        call("read_file", session={"id": "c2", "parent_id": "p"}),
        call("send_email", session={"id": "c1", "parent_id": "p"}),
        call("send_email", session={"id": "c2", "parent_id": "p"}),
    )
    alerts = run(seq("session"), evs).alerts("SEQ")
    assert sorted(a.alert.key for a in alerts) == ["SEQ:c1", "SEQ:c2"]
    assert len({a.alert.uid for a in alerts}) == 2


MISSING = """
- rule: NOAPPROVAL
  title: payment without approval in between
  priority: HIGH
  output: "paid %pay.tool.name without approval"
  sequence:
    maxspan: 10m
    steps:
      - name: quote
        condition: tool.name = get_quote
      - name: approval
        missing: true
        condition: tool.name = request_approval
      - name: pay
        condition: caps contains payment
"""


def test_missing_middle_step_breaks_the_sequence() -> None:
    quiet = events(call("get_quote"), call("send_money"))
    approved = events(call("get_quote"), call("request_approval"), call("send_money"))
    assert [a.alert.evidence for a in run(MISSING, quiet).alerts()] == [["t-0", "t-1"]]
    assert run(MISSING, approved).alerts() == []


def test_runs_repeat_a_step() -> None:
    rules = """
- rule: BRUTE
  title: three failures then success
  priority: MEDIUM
  output: "%count"
  sequence:
    maxspan: 5m
    steps:
      - name: fail
        runs: 3
        condition: tool.outcome = error
      - name: ok
        condition: tool.outcome = success
"""
    two = events(
        *[call("login", tool={"outcome": "error"})] * 2, call("login", tool={"outcome": "success"})
    )
    three = events(
        *[call("login", tool={"outcome": "error"})] * 3, call("login", tool={"outcome": "success"})
    )
    assert run(rules, two).of("BRUTE") == []
    [f] = run(rules, three).of("BRUTE")
    assert f.evidence == ("t-0", "t-1", "t-2", "t-3")


def test_early_stages_break_suppression_and_escalate() -> None:
    rules = """
- rule: CHAIN
  title: chain
  priority: CRITICAL
  output: "%stage"
  sequence:
    steps:
      - {name: a, condition: tool.name = a}
      - {name: b, condition: tool.name = b}
      - {name: c, condition: tool.name = c}
  early:
    after: 1
    priority: LOW
    action: alert
"""
    r = run(rules, events(call("a"), call("b"), call("c")))
    stages = [(a.alert.stage, a.alert.severity, a.alert.version) for a in r.alerts("CHAIN")]
    # one alert, updated: each new stage escalates at least one level, completion is critical
    assert stages == [("1/3 a", "low", 1), ("2/3 b", "medium", 2), ("complete", "critical", 3)]
    assert len({a.alert.uid for a in r.alerts("CHAIN")}) == 1


def test_child_scope_is_the_intersection_with_its_parent() -> None:
    from detectors.session import Scope

    parent = Scope(allowed_tools=("read_*", "send_email"), max_duration_s=600)
    child = parent.narrowed_by(Scope(allowed_tools=("*",), max_duration_s=3600))
    assert child.allowed_tools == ("read_*", "send_email") and child.max_duration_s == 600
    narrower = parent.narrowed_by(Scope(allowed_tools=("read_file", "delete_file")))
    assert narrower.allowed_tools == ("read_file",)
