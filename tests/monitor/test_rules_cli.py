"""``agentwatch rules``: the built-in pack's fixtures pass; failures and bad files exit 1."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from detectors.rules.loader import load_rules
from monitor.cli import app
from monitor.rule_tests import run_fixtures

runner = CliRunner()

RULE = """\
- rule: LOCAL-001
  title: Read then send
  priority: HIGH
  output: "%read.tool.name then %send.tool.name"
  tags: [ASI02]
  sequence:
    maxspan: 10m
    steps:
      - {name: read, condition: tool.name = read_file}
      - {name: send, condition: tool.name = send_email}
"""
FIXTURE = """\
rule: LOCAL-001
cases:
  - name: read then send
    events:
      - {kind: tool_call, tool: {name: read_file}}
      - {kind: tool_call, tool: {name: send_email}}
    expect:
      LOCAL-001: {alerts: 1, evidence: [0, 1]}
  - name: send only
    events:
      - {kind: tool_call, tool: {name: send_email}}
    expect:
      LOCAL-001: {count}
"""


def test_every_builtin_rule_has_fixtures_and_they_pass() -> None:
    pack = load_rules()
    results = run_fixtures(pack)
    failed = [(r.rule, r.case, r.problems) for r in results if not r.ok]
    assert failed == []
    assert {r.rule for r in results} == set(pack.rules)
    for rid in pack.rules:  # each rule has a positive and a negative case
        cases = [r for r in results if r.rule == rid]
        assert len(cases) >= 2, rid


def test_rules_test_command_on_the_builtin_pack() -> None:
    result = runner.invoke(app, ["rules", "test"])
    assert result.exit_code == 0, result.output
    assert "cases passed for 22 rules" in result.output


def test_rules_test_on_a_user_pack_passes_and_fails(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "local.yaml").write_text(RULE)
    (tmp_path / "tests" / "LOCAL-001.yaml").write_text(FIXTURE.replace("{count}", "0"))
    ok = runner.invoke(app, ["rules", "test", str(tmp_path)])
    assert ok.exit_code == 0, ok.output
    assert "2/2 cases passed for 1 rules" in ok.output
    (tmp_path / "tests" / "LOCAL-001.yaml").write_text(FIXTURE.replace("{count}", "1"))
    bad = runner.invoke(app, ["rules", "test", str(tmp_path)])
    assert bad.exit_code == 1
    assert "1/2 cases passed" in bad.output and "matches is 0, expected 1" in bad.output


def test_rules_lint_lists_every_error(tmp_path: Path) -> None:
    f = tmp_path / "local.yaml"
    f.write_text(RULE.replace("HIGH", "HUGE").replace("tool.name = send_email", "tool.nam = x"))
    result = runner.invoke(app, ["rules", "lint", str(f)])
    assert result.exit_code == 1
    assert "2 error(s) in rule files" in result.output
    assert "Unknown priority 'HUGE'" in result.output
    assert f"Unknown field 'tool.nam' (rule LOCAL-001) in {f}:10" in result.output.replace("\n", "")


def test_rules_lint_and_list_on_the_builtin_pack() -> None:
    lint = runner.invoke(app, ["rules", "lint"])
    assert lint.exit_code == 0 and "22 rules OK" in lint.output
    listing = runner.invoke(app, ["rules", "list"], env={"COLUMNS": "200"})
    assert listing.exit_code == 0 and "AW-COMBO-001" in listing.output
    fields = runner.invoke(app, ["rules", "fields"], env={"COLUMNS": "200"})
    assert fields.exit_code == 0 and "dest.unknown" in fields.output


def test_the_example_user_pack_passes() -> None:
    examples = Path(__file__).resolve().parents[2] / "examples" / "rules"
    result = runner.invoke(app, ["rules", "test", str(examples)])
    assert result.exit_code == 0, result.output
    assert "8/8 cases passed for 2 rules" in result.output
