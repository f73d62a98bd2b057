"""The default detector suite and engine, built from settings."""

from __future__ import annotations

from detectors.base import Detector
from detectors.catalog import ToolCatalog
from detectors.combination import ToxicCombination
from detectors.engine import Engine
from detectors.fusion import FusionPolicy
from detectors.injection import InjectedInstruction
from detectors.online.identity_drift import IdentityDrift
from detectors.online.session_anomaly import SessionAnomaly
from detectors.online.transitions import TransitionSurprise
from detectors.provenance import Provenance
from detectors.relevance import TaskRelevance


def default_detectors() -> list[Detector]:
    """Every detector that runs by default, in evaluation order."""
    return [
        ToxicCombination(),
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
) -> Engine:
    return Engine(detectors if detectors is not None else default_detectors(), catalog, policy)
