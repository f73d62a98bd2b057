"""Run inline YAML rules over short event lists, as the rule fixtures do, for exact asserts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from detectors.base import Finding
from detectors.catalog import ToolCatalog
from detectors.engine import AlertDecision, Engine, KillDecision
from detectors.rules.detector import RuleDetector
from detectors.rules.loader import load_text_rules
from detectors.rules.model import RuleSet
from detectors.yamlsrc import Node
from monitor.pipeline import Pipeline
from monitor.rule_tests import build_events
from schemas.events import ActionEvent


def events(*items: dict[str, Any], agent: str = "agent") -> list[ActionEvent]:
    """Events with the fixtures' defaults (ids ``t-<i>``, one second apart, session s1)."""
    case = Node("<test>", 1)
    case.update({"name": "t", "agent": agent, "events": list(items)})
    return build_events(case)


def call(name: str, **extra: Any) -> dict[str, Any]:
    """A tool call event; ``tool={...}`` adds to the tool, other keywords to the event."""
    return {"kind": "tool_call", "tool": {"name": name, **extra.pop("tool", {})}, **extra}


@dataclass
class Run:
    findings: list[Finding] = field(default_factory=list)
    decisions: list[Any] = field(default_factory=list)
    pipeline: Pipeline | None = None
    detector: RuleDetector | None = None

    def alerts(self, rule: str | None = None) -> list[AlertDecision]:
        return [
            d
            for d in self.decisions
            if isinstance(d, AlertDecision) and (rule is None or d.alert.detector == rule)
        ]

    def kills(self) -> list[KillDecision]:
        return [d for d in self.decisions if isinstance(d, KillDecision)]

    def of(self, rule: str) -> list[Finding]:
        return [f for f in self.findings if f.detector == rule]


def run(
    rules: str | RuleSet,
    evs: list[ActionEvent],
    *,
    builtin: bool = False,
    catalog: ToolCatalog | None = None,
    tick: float | None = None,
) -> Run:
    """Load ``rules`` (YAML), run ``evs`` through a Pipeline; ``tick``: event-time clock at end."""
    result = Run()
    ruleset = load_text_rules(rules, "t.yaml", builtin=builtin) if isinstance(rules, str) else rules
    det = RuleDetector(ruleset, result.findings.append)
    pipe = Pipeline(Engine([det], catalog))
    for i, ev in enumerate(evs):
        result.decisions.extend(pipe.process(ev, now=float(i)))
    if tick is not None:
        result.decisions.extend(pipe.tick(float(len(evs)), event_time=tick))
    result.pipeline = pipe
    result.detector = det
    return result
