"""Risk fusion: a session's findings -> one session risk -> alert / kill decision.

Each finding contributes its ``score`` (0..1) under its alert key; a key keeps its highest
score. The session risk is the noisy-OR of the contributions of enforce-mode findings,
``1 - prod(1 - w_d * s_k)``, with a weight per detector: independent weak signals add up,
one strong signal is enough. Shadow-mode findings are combined separately (``shadow_risk``)
so an operator can see what they would have done. Thresholds are per agent.

>>> p = FusionPolicy(alert_threshold=0.5, kill_threshold=0.9)
>>> round(p.combine({"a": (0.6, "enforce", "x"), "b": (0.7, "enforce", "y")}), 2)
0.88
>>> round(p.combine({k: (0.3, "enforce", k) for k in "abcd"}), 2)  # weak signals only
0.55
>>> p.thresholds("any-agent")
(0.5, 0.9)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from detectors.base import Mode
from detectors.session import glob_match


@dataclass
class FusionPolicy:
    """Thresholds and weights that turn findings into decisions."""

    alert_threshold: float = 0.6
    kill_threshold: float = 0.9
    #: agent id (or glob) -> (alert threshold, kill threshold)
    per_agent: dict[str, tuple[float, float]] = field(default_factory=dict)
    #: detector id -> weight applied to its scores (default 1.0)
    weights: dict[str, float] = field(default_factory=dict)
    #: detector id -> mode override ("shadow" turns a detector into report-only)
    detector_modes: dict[str, Mode] = field(default_factory=dict)
    #: the fusion's own mode: in shadow, risk-based kills are reported, not enforced
    mode: Mode = "enforce"
    #: weak signals alone never alert: unless one contribution reaches ``min_peak``, the
    #: session risk is capped at ``weak_cap`` (below the default alert threshold)
    min_peak: float = 0.45
    weak_cap: float = 0.55

    def thresholds(self, agent_id: str) -> tuple[float, float]:
        per_agent = self.per_agent
        if not per_agent:  # the common case: one pair for every agent
            return (self.alert_threshold, self.kill_threshold)
        t = per_agent.get(agent_id)
        if t is not None:
            return t
        for pattern, value in per_agent.items():
            if glob_match(agent_id, [pattern.lower()]):
                return value
        return (self.alert_threshold, self.kill_threshold)

    def mode_of(self, detector: str, declared: Mode) -> Mode:
        return self.detector_modes.get(detector, declared)

    def combine(
        self, contributions: Mapping[str, tuple[float, str, str]], *, mode: str = "enforce"
    ) -> float:
        keep, peak = 1.0, 0.0
        weights = self.weights
        for score, m, detector in contributions.values():  # per event: plain comparisons
            if m != mode:
                continue
            s = weights.get(detector, 1.0) * score if weights else score
            if s > 1.0:
                s = 1.0
            elif s < 0.0:
                s = 0.0
            if s > peak:
                peak = s
            keep *= 1.0 - s
        risk = 1.0 - keep
        return risk if peak >= self.min_peak else min(risk, self.weak_cap)
