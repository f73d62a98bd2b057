"""Tuning without editing shipped rules: exceptions, user_known macros, modes, overrides."""

from __future__ import annotations

from detectors.rules.detector import REPORT_FIRST
from detectors.rules.loader import Source, load_sources
from tests.detectors.rules.helpers import call, events, run

SHIPPED = """
- macro: user_known_senders
  condition: never_true
- macro: never_true
  condition: false
- rule: SEND
  title: e-mail sent
  priority: HIGH
  output: "%actor.agent_id sent to %dest"
  condition: tool.name = send_email and not user_known_senders
  exceptions:
    - name: trusted_pairs
      fields: [actor.agent_id, dest.host]
      comps: [=, glob]
      values:
        - [newsletter, "*.acme.example"]
"""


def email(to: str) -> dict[str, object]:
    return call("send_email", tool={"arguments": {"to": to}})


def test_structured_exception_tuples_match_all_fields() -> None:
    excepted = events(email("list@news.acme.example"), agent="newsletter")
    other_agent = events(email("list@news.acme.example"), agent="billing")
    other_host = events(email("x@evil.example"), agent="newsletter")
    assert run(SHIPPED, excepted).of("SEND") == []
    assert len(run(SHIPPED, other_agent).of("SEND")) == 1
    assert len(run(SHIPPED, other_host).of("SEND")) == 1


def test_operators_extend_user_known_macros_in_their_own_file() -> None:
    local = """
- macro: user_known_senders
  condition: or actor.agent_id = billing
  override:
    condition: append
"""
    tuned = load_sources([Source("shipped.yaml", SHIPPED), Source("local.yaml", local)])
    billing = events(email("x@evil.example"), agent="billing")
    assert len(run(SHIPPED, billing).of("SEND")) == 1
    assert run(tuned, billing).of("SEND") == []
    assert len(run(tuned, events(email("x@evil.example"), agent="crm")).of("SEND")) == 1


def test_exception_values_append_from_a_later_file() -> None:
    local = """
- rule: SEND
  exceptions:
    - name: trusted_pairs
      values:
        - [billing, "*.bank.example"]
  override:
    exceptions: append
"""
    tuned = load_sources([Source("shipped.yaml", SHIPPED), Source("local.yaml", local)])
    for agent, to, fires in (
        ("billing", "pay@api.bank.example", False),
        ("newsletter", "list@news.acme.example", False),
        ("billing", "x@evil.example", True),
    ):
        assert bool(run(tuned, events(email(to), agent=agent)).alerts()) is fires, (agent, to)


def test_shadow_rules_alert_in_shadow_and_never_kill() -> None:
    rules = """
- rule: KILLER
  title: kill on delete
  priority: CRITICAL
  action: kill_session
  mode: {mode}
  output: deleted
  condition: tool.name = delete_file
"""
    shadow = run(rules.replace("{mode}", "shadow"), events(call("delete_file")))
    enforce = run(rules.replace("{mode}", "enforce"), events(call("delete_file")))
    [a] = shadow.alerts()
    assert (a.alert.mode, a.alert.response, shadow.kills()) == ("shadow", "kill_session", [])
    assert len(enforce.kills()) == 1 and enforce.alerts()[0].alert.mode == "enforce"
    assert shadow.detector is not None and enforce.detector is not None
    assert dict(shadow.detector.stats.matched) == {("KILLER", "shadow"): 1}
    assert dict(enforce.detector.stats.matched) == {("KILLER", "enforce"): 1}


def test_mode_and_enabled_shortcuts_in_a_later_file() -> None:
    local = """
- rule: SEND
  mode: shadow
"""
    rs = load_sources([Source("shipped.yaml", SHIPPED), Source("local.yaml", local)])
    assert rs.rules["SEND"].mode == "shadow" and rs.rules["SEND"].action == "alert"
    off = load_sources(
        [Source("s.yaml", SHIPPED), Source("l.yaml", "- rule: SEND\n  enabled: false\n")]
    )
    assert not off.rules["SEND"].enabled and off.for_kind("tool_call") == ()


def test_later_files_replace_a_rule_by_id() -> None:
    replacement = (
        SHIPPED.split("- rule: SEND")[0]
        + """
- rule: SEND
  title: e-mail to outsiders only
  priority: LOW
  output: "outside: %dest"
  condition: tool.name = send_email and dest.host glob "*.evil.example"
"""
    )
    rs = load_sources([Source("a.yaml", SHIPPED), Source("b.yaml", replacement)])
    rule = rs.rules["SEND"]
    assert (rule.title, rule.severity, rule.exception, rule.where) == (
        "e-mail to outsiders only",
        "low",
        None,
        "b.yaml:7",
    )


def test_busy_rules_report_logarithmically_but_count_everything() -> None:
    rules = """
- rule: READ
  title: reads
  priority: LOW
  output: read
  condition: tool.name = read_file
"""
    r = run(rules, events(*[call("read_file")] * 40))
    reported = [a.alert.version for a in r.alerts("READ")]
    assert reported == list(range(1, REPORT_FIRST + 1)) + [9, 10]  # matches 1-8, 16, 32
    assert r.detector is not None and r.detector.stats.matched[("READ", "enforce")] == 40
    assert r.alerts("READ")[-1].alert.evidence[-1] == "t-31"
