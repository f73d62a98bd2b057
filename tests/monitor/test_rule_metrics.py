"""Rule metrics are read from the detector's counters on scrape."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from detectors.engine import Engine
from detectors.rules.detector import RuleDetector
from detectors.rules.loader import load_text_rules
from monitor.pipeline import Pipeline
from monitor.rule_metrics import RuleMetrics
from tests.detectors.rules.helpers import call, events

RULES = """
- rule: A
  title: a
  priority: LOW
  mode: shadow
  output: a
  condition: tool.name = a
  exceptions:
    - {name: x, fields: actor.agent_id, values: [trusted]}
- rule: B
  title: b
  priority: LOW
  output: b
  condition: tool.name = b
"""


def test_counters_by_rule_and_mode() -> None:
    det = RuleDetector(load_text_rules(RULES))
    registry = CollectorRegistry()
    registry.register(RuleMetrics(det))
    pipe = Pipeline(Engine([det]))
    for i, e in enumerate(events(call("a"), call("b"), call("a"))):
        pipe.process(e, now=float(i))
    for e in events(call("a", session="s9"), agent="trusted"):
        pipe.process(e, now=9.0)
    text = generate_latest(registry).decode()
    assert 'agentwatch_rule_evaluations_total{rule="A"} 4.0' in text
    assert 'agentwatch_rule_matches_total{mode="shadow",rule="A"} 2.0' in text
    assert 'agentwatch_rule_matches_total{mode="enforce",rule="B"} 1.0' in text
    assert 'agentwatch_rule_exceptions_total{rule="A"} 1.0' in text
    assert f'agentwatch_rules_loaded{{pack="{det.ruleset.version}"}} 2.0' in text
