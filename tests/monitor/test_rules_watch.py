"""The rule watcher: edits are picked up, bad edits keep the old rules and report every error."""

from __future__ import annotations

import os
from pathlib import Path

from detectors.catalog_file import load_catalog
from detectors.engine import AlertDecision, Engine
from detectors.rules.detector import RuleDetector
from detectors.rules.loader import load_rules
from monitor.pipeline import Pipeline
from monitor.rules_watch import RulesWatcher
from tests.detectors.rules.helpers import call, events

RULE = """\
- rule: LOCAL-001
  title: Local sequence with an exception
  priority: HIGH
  output: "%actor.agent_id read %read.tool.name then sent with %send.tool.name"
  sequence:
    maxspan: 10m
    steps:
      - name: read
        condition: tool.name = read_file
      - name: send
        condition: tool.name = send_email
  exceptions:
    - name: trusted
      fields: actor.agent_id
      values: [reporter]
"""


def touch_later(path: Path) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_a_new_rule_file_goes_live_in_a_running_pipeline(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    det = RuleDetector(load_rules([rules]))
    watcher = RulesWatcher(det, [rules])
    pipe = Pipeline(Engine([det]))
    assert watcher.poll() is None
    (rules / "local.yaml").write_text(RULE)
    result = watcher.poll()
    assert result is not None and result.ok and "LOCAL-001" in det.ruleset.rules
    out = [
        d
        for i, e in enumerate(events(call("read_file"), call("send_email")))
        for d in pipe.process(e, now=float(i))
    ]
    [alert] = [d for d in out if isinstance(d, AlertDecision) and d.alert.detector == "LOCAL-001"]
    assert alert.alert.message == "agent read read_file then sent with send_email"
    excepted = Pipeline(Engine([det]))
    out = [
        d
        for e in events(call("read_file"), call("send_email"), agent="reporter")
        for d in excepted.process(e, now=0.0)
    ]
    assert [
        d for d in out if isinstance(d, AlertDecision) and d.alert.detector == "LOCAL-001"
    ] == []


def test_a_bad_edit_keeps_the_old_rules_and_reports_every_error(tmp_path: Path) -> None:
    f = tmp_path / "local.yaml"
    f.write_text(RULE)
    det = RuleDetector(load_rules([f]))
    before = det.ruleset.version
    watcher = RulesWatcher(det, [f])
    f.write_text(
        RULE.replace("priority: HIGH", "priority: HUGE").replace(
            "tool.name = read_file", "tool.nam = read_file"
        )
    )
    touch_later(f)
    result = watcher.poll()
    assert result is not None and not result.ok
    name = str(f)
    assert result.errors == [
        f"Unknown priority 'HUGE' (one of emergency, alert, critical, error, high, warning, "
        f"medium, notice, low, informational, info, debug) in {name}:3",
        f"Unknown field 'tool.nam' (rule LOCAL-001) in {name}:9",
    ]
    assert det.ruleset.version == before and watcher.failures == 1
    f.write_text(RULE.replace("HIGH", "CRITICAL"))
    touch_later(f)
    fixed = watcher.poll()
    assert fixed is not None and fixed.ok and det.ruleset.rules["LOCAL-001"].severity == "critical"
    assert watcher.stats()["reloads"] == 1


def test_a_touch_without_changes_does_not_reload(tmp_path: Path) -> None:
    f = tmp_path / "local.yaml"
    f.write_text(RULE)
    det = RuleDetector(load_rules([f]))
    watcher = RulesWatcher(det, [f])
    touch_later(f)
    assert watcher.poll() is None and det.stats.reloads == 0


def test_the_catalog_reloads_into_the_engine(tmp_path: Path) -> None:
    cat = tmp_path / "catalog.yaml"
    cat.write_text("tools:\n  frobnicate: [read]\n")
    det = RuleDetector()
    engine = Engine([det], load_catalog(cat))
    watcher = RulesWatcher(det, engine=engine, catalog_path=cat)
    assert watcher.poll() is None
    cat.write_text("tools:\n  frobnicate: [payment]\n")
    touch_later(cat)
    result = watcher.poll()
    assert result is not None and result.ok and result.what == "catalog"
    assert engine.catalog.name_capabilities("frobnicate") == {"payment"}
    cat.write_text("tools:\n  frobnicate: [paymnt]\n")
    touch_later(cat)
    bad = watcher.poll()
    assert bad is not None and bad.errors == [
        f"Unknown capability 'paymnt' for tool 'frobnicate' in {cat}:2"
    ]
    assert engine.catalog.name_capabilities("frobnicate") == {"payment"}


def test_one_watcher_updates_every_partition_engine(tmp_path: Path) -> None:
    f = tmp_path / "local.yaml"
    f.write_text(RULE)
    first, second = RuleDetector(load_rules([f])), RuleDetector(load_rules([f]))
    watcher = RulesWatcher(first, [f])
    watcher.attach(second)
    assert second.ruleset is first.ruleset
    f.write_text(RULE.replace("HIGH", "LOW"))
    touch_later(f)
    result = watcher.poll()
    assert result is not None and result.ok
    assert first.ruleset is second.ruleset and second.ruleset.rules["LOCAL-001"].severity == "low"
