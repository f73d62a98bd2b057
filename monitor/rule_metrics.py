"""Rule metrics for Prometheus, read from the rule engine's counters when scraped.

Nothing is recorded per event here: the rule detector keeps plain counters and this
collector turns them into metric families on each scrape (prometheus-client's custom
collector), so the hot path pays nothing for metrics.

    from prometheus_client import REGISTRY
    REGISTRY.register(RuleMetrics(detector, watcher))

Metrics: ``agentwatch_rule_evaluations_total{rule}``, ``agentwatch_rule_matches_total{rule,
mode}`` (shadow and enforce counted apart), ``agentwatch_rule_exceptions_total{rule}``,
``agentwatch_rules_loaded{pack}``, ``agentwatch_rules_reloads_total{result}``.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from detectors.rules.detector import RuleDetector
from monitor.rules_watch import RulesWatcher


class RuleMetrics(Collector):
    """A prometheus-client collector over a :class:`RuleDetector` (and its watcher)."""

    def __init__(self, detector: RuleDetector, watcher: RulesWatcher | None = None) -> None:
        self.detector = detector
        self.watcher = watcher

    def collect(self) -> Iterator[Metric]:
        stats = self.detector.stats
        evaluated = CounterMetricFamily(
            "agentwatch_rule_evaluations", "Events a rule was evaluated on.", labels=["rule"]
        )
        for rule, n in sorted(stats.evaluated.items()):
            evaluated.add_metric([rule], n)
        yield evaluated
        matched = CounterMetricFamily(
            "agentwatch_rule_matches", "Rule matches, by mode.", labels=["rule", "mode"]
        )
        for (rule, mode), n in sorted(stats.matched.items()):
            matched.add_metric([rule, mode], n)
        yield matched
        excepted = CounterMetricFamily(
            "agentwatch_rule_exceptions", "Events a rule's exceptions let through.", labels=["rule"]
        )
        for rule, n in sorted(stats.excepted.items()):
            excepted.add_metric([rule], n)
        yield excepted
        ruleset = self.detector.ruleset
        loaded = GaugeMetricFamily(
            "agentwatch_rules_loaded", "Enabled rules in the running pack.", labels=["pack"]
        )
        loaded.add_metric([ruleset.version], len(ruleset.enabled))
        yield loaded
        reloads = CounterMetricFamily(
            "agentwatch_rules_reloads", "Hot reloads of rules and catalog.", labels=["result"]
        )
        w = self.watcher
        reloads.add_metric(["ok"], w.reloads if w is not None else stats.reloads)
        reloads.add_metric(["refused"], w.failures if w is not None else 0)
        yield reloads
