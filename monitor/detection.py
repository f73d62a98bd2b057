"""The detection engine the worker (and ``agentwatch score``) runs, built from Settings.

Tool catalog from ``catalog_path`` plus ``internal_domains``; rules from the built-in pack
then ``rules_paths``; fusion thresholds and mode. :func:`watcher_from_settings` gives the
hot-reload watcher for that engine (the worker polls it every ``rules_reload_interval_s``).
"""

from __future__ import annotations

from detectors.catalog import ToolCatalog
from detectors.catalog_file import load_catalog
from detectors.engine import Engine
from detectors.fusion import FusionPolicy
from detectors.registry import build_engine, rule_detector
from monitor.rules_watch import RulesWatcher
from monitor.settings import Settings


def catalog_from_settings(settings: Settings) -> ToolCatalog:
    if settings.catalog_path is not None:
        return load_catalog(settings.catalog_path, settings.internal_domains)
    return ToolCatalog(settings.internal_domains)


def engine_from_settings(settings: Settings) -> Engine:
    """Raises ConfigError / RuleError (every problem, with file:line) if files are wrong."""
    policy = FusionPolicy(
        alert_threshold=settings.alert_threshold,
        kill_threshold=settings.kill_threshold,
        mode="shadow" if settings.mode == "shadow" else "enforce",
    )
    return build_engine(catalog_from_settings(settings), policy, rules_paths=settings.rules_paths)


def watcher_from_settings(settings: Settings, engine: Engine) -> RulesWatcher | None:
    """The hot-reload watcher of ``engine``'s rules and catalog (None: no rule detector)."""
    det = rule_detector(engine)
    if det is None:
        return None
    return RulesWatcher(
        det,
        settings.rules_paths,
        engine=engine,
        catalog_path=settings.catalog_path,
        internal_domains=settings.internal_domains,
    )
