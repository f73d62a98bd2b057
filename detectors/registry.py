"""The default detector suite and engine, built from settings."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from detectors.base import Detector
from detectors.catalog import ToolCatalog
from detectors.engine import Engine
from detectors.fusion import FusionPolicy
from detectors.injection import InjectedInstruction
from detectors.online.identity_drift import IdentityDrift
from detectors.online.session_anomaly import SessionAnomaly
from detectors.online.transitions import TransitionSurprise
from detectors.provenance import Provenance
from detectors.relevance import TaskRelevance
from detectors.rules.detector import RuleDetector


def default_detectors(rules_paths: Sequence[Path] = ()) -> list[Detector]:
    """Every detector that runs by default, in evaluation order.

    The rule engine runs the built-in pack (``detectors/rules/builtin``, which includes the
    secret + production write + export combination AW-COMBO-001) and then the deployment's
    rule files (``rules_paths``), which may override or extend it.
    """
    return [
        RuleDetector.from_paths(rules_paths),
        InjectedInstruction(),
        Provenance(),
        TaskRelevance(),
        TransitionSurprise(),
        SessionAnomaly(),
        IdentityDrift(),
    ]


def build_engine(
    catalog: ToolCatalog | None = None,
    policy: FusionPolicy | None = None,
    detectors: list[Detector] | None = None,
    rules_paths: Sequence[Path] = (),
) -> Engine:
    chosen = detectors if detectors is not None else default_detectors(rules_paths)
    return Engine(chosen, catalog, policy)


def rule_detector(engine: Engine) -> RuleDetector | None:
    """The engine's rule detector (for hot reload and rule metrics), if it has one."""
    return next((d for d in engine.detectors if isinstance(d, RuleDetector)), None)
