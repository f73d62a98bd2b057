"""Bad rule files fail with every error at once, each with its exact file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from detectors.rules.loader import Source, load_rules, load_sources, load_text_rules
from schemas.errors import ConfigError, RuleError

BAD = """\
- macro: known
  condition: tool.name = x

- rule: R1
  title: one
  priority: HIGH
  action: kil_session
  output: "%tool.name"
  condition: evt.kind = tool_call

- rule: R2
  title: two
  priority: SEVERE
  mode: loud
  output: "%tool.nmae done"
  condition: >
    evt.kind = tool_call
    and caps contains payment
    and tool.nme = send_money
    and not known

- rule: R3
  title: three
  priority: LOW
  output: x
  conditon: evt.kind = tool_call
  sequence:
    steps:
      - name: a
        condition: tool.name = a
      - name: gone
        missing: true
        condition: tool.name = b

- rule: R4
  title: four
  priority: LOW
  output: x
  condition: |
    evt.kind = tool_call and
    (caps contains payment
     or tool.name in (a, b)
"""


def errors_of(text: str, name: str = "rules/bad.yaml") -> list[str]:
    with pytest.raises(RuleError) as info:
        load_text_rules(text, name)
    return info.value.errors


def test_every_error_is_reported_with_file_and_line() -> None:
    assert errors_of(BAD) == [
        "Unknown action 'kil_session' in rules/bad.yaml:7",
        "Unknown priority 'SEVERE' (one of emergency, alert, critical, error, high, warning, "
        "medium, notice, low, informational, info, debug) in rules/bad.yaml:13",
        "Unknown mode 'loud' in rules/bad.yaml:14",
        "Unknown field 'tool.nmae' in output placeholder '%tool.nmae' (rule R2) in "
        "rules/bad.yaml:15",
        "Unknown field 'tool.nme' (rule R2) in rules/bad.yaml:19",
        "Unknown key 'conditon' in rule 'R3' in rules/bad.yaml:26",
        "A sequence ending in a missing step needs 'maxspan' (how long to wait) (rule R3) in "
        "rules/bad.yaml:28",
        "Missing ')' (rule R4) in rules/bad.yaml:42",
    ]


def test_rule_error_message_lists_them_all() -> None:
    with pytest.raises(RuleError) as info:
        load_text_rules(BAD, "rules/bad.yaml")
    text = str(info.value)
    assert text.startswith("8 errors in rule files:\n  Unknown action 'kil_session'")
    assert isinstance(info.value, ConfigError)


def test_errors_inside_macros_point_at_the_macro_once() -> None:
    text = """\
- macro: broken
  condition: caps contians x
- rule: A
  title: a
  priority: LOW
  output: a
  condition: broken
- rule: B
  title: b
  priority: LOW
  output: b
  condition: not broken
"""
    assert errors_of(text, "m.yaml") == [
        "Unknown operator 'contians' after 'caps' (macro broken) in m.yaml:2"
    ]


def test_errors_in_an_appended_condition_point_at_the_appending_file() -> None:
    base = "- rule: A\n  title: a\n  priority: LOW\n  output: a\n  condition: tool.name = a\n"
    local = "- rule: A\n  condition: and tool.nam = b\n  override:\n    condition: append\n"
    with pytest.raises(RuleError) as info:
        load_sources([Source("base.yaml", base), Source("local.yaml", local)])
    assert info.value.errors == ["Unknown field 'tool.nam' (rule A) in local.yaml:2"]


def test_structural_errors() -> None:
    assert errors_of("rule: x\n", "s.yaml") == ["A rule file must be a list of blocks in s.yaml:1"]
    assert errors_of("- rule: A\n  title: [\n", "y.yaml")[0].startswith("Invalid YAML (")
    assert errors_of("- rule: A\n  override:\n    title: replace\n  title: t\n", "o.yaml") == [
        "Rule 'A' overrides nothing (define it first) in o.yaml:1"
    ]
    assert errors_of("- rule: A\n  title: t\n  priority: LOW\n  output: o\n", "n.yaml") == [
        "A rule needs exactly one of condition, sequence, combination, absence, count "
        "(rule A) in n.yaml:1"
    ]
    assert errors_of(
        "- rule: A\n  title: t\n  priority: LOW\n  output: o\n  tags: [ASI11]\n  condition: true\n",
        "t.yaml",
    ) == ["Unknown taxonomy tag 'ASI11' (ASI01-ASI10, NHI1-NHI10, AML.Tnnnn) in t.yaml:5"]


def test_type_errors_in_conditions() -> None:
    rule = "- rule: A\n  title: t\n  priority: LOW\n  output: o\n  condition: {c}\n"
    assert errors_of(rule.replace("{c}", "caps = payment"), "c.yaml") == [
        "Field 'caps' is a set: use 'contains', 'intersects' or 'in' (rule A) in c.yaml:5"
    ]
    assert errors_of(rule.replace("{c}", "session.seq > lots"), "c.yaml") == [
        "Expected a number or duration, found 'lots' (rule A) in c.yaml:5"
    ]
    assert errors_of(rule.replace("{c}", "tool.name"), "c.yaml") == [
        "Field 'tool.name' is a string, not a boolean: compare it with a value (rule A) in c.yaml:5"
    ]


def test_the_builtin_pack_loads_and_files_override_it(tmp_path: Path) -> None:
    pack = load_rules()
    assert "AW-COMBO-001" in pack.rules and pack.rules["AW-COMBO-001"].action == "kill_session"
    local = tmp_path / "local.yaml"
    local.write_text("- rule: AW-COMBO-001\n  mode: shadow\n")
    tuned = load_rules([local])
    assert tuned.rules["AW-COMBO-001"].mode == "shadow"
    assert tuned.version != pack.version
