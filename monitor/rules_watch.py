"""Hot reload: rule files (and the tool catalog) change, the running worker picks them up.

The worker calls :meth:`RulesWatcher.poll` on a timer (``Settings.rules_reload_interval_s``).
A poll stats the watched files (the built-in pack, every rule file or directory in
``Settings.rules_paths`` - directories are re-listed, so new files count - and the catalog
file); if a size or mtime changed and the content hash differs, it loads the whole set
again. On success the running :class:`~detectors.rules.detector.RuleDetector` swaps to the
new rules between two events, keeping each session's state of rules that kept their id and
shape; on failure the old rules keep running and every error is logged with its file:line.

>>> from detectors.rules.detector import RuleDetector
>>> w = RulesWatcher(RuleDetector())
>>> w.poll() is None  # nothing changed since start
True
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detectors.catalog_file import load_catalog
from detectors.engine import Engine
from detectors.rules.detector import RuleDetector
from detectors.rules.loader import builtin_files, load_rules, rule_files
from schemas.errors import ConfigError, RuleError

log = logging.getLogger("agentwatch.rules")


@dataclass
class ReloadResult:
    """What one reload did: the new pack version, or every error (the old rules kept running)."""

    ok: bool
    what: str
    version: str | None = None
    rules: int = 0
    errors: list[str] = field(default_factory=list)


class RulesWatcher:
    """Polls rule files and the catalog; swaps them into the running detector and engine."""

    def __init__(
        self,
        detector: RuleDetector,
        paths: Sequence[Path] = (),
        *,
        builtin: bool = True,
        engine: Engine | None = None,
        catalog_path: Path | None = None,
        internal_domains: Sequence[str] = (),
    ) -> None:
        self.detector = detector
        #: every running detector and engine to update (a worker runs one per partition)
        self.detectors: list[RuleDetector] = [detector]
        self.engines: list[Engine] = [engine] if engine is not None else []
        self.paths = list(paths)
        self.builtin = builtin
        self.catalog_path = catalog_path
        self.internal_domains = list(internal_domains)
        self.reloads = 0
        self.failures = 0
        self.last_errors: list[str] = []
        self._rules_sig = self._signature(self.rule_files())
        self._rules_hash = self._hash(self.rule_files())
        self._catalog_sig = self._signature([catalog_path] if catalog_path else [])

    def attach(self, detector: RuleDetector, engine: Engine | None = None) -> None:
        """Also update this detector (and engine's catalog) on reloads, from the current rules."""
        if detector.ruleset is not self.detector.ruleset:
            detector.swap(self.detector.ruleset)
        self.detectors.append(detector)
        if engine is not None:
            if self.engines:
                engine.catalog = self.engines[0].catalog
            self.engines.append(engine)

    def rule_files(self) -> list[Path]:
        files = builtin_files() if self.builtin else []
        for p in self.paths:
            files.extend(rule_files(p) if p.exists() else [p])
        return files

    @staticmethod
    def _signature(files: Sequence[Path]) -> tuple[Any, ...]:
        sig: list[tuple[str, int | None, int | None]] = []
        for f in files:
            try:
                st = f.stat()
                sig.append((str(f), st.st_mtime_ns, st.st_size))
            except OSError:
                sig.append((str(f), None, None))
        return tuple(sig)

    @staticmethod
    def _hash(files: Sequence[Path]) -> str:
        h = hashlib.sha256()
        for f in files:
            h.update(str(f).encode() + b"\0")
            try:
                h.update(f.read_bytes())
            except OSError:
                h.update(b"<missing>")
        return h.hexdigest()

    def poll(self) -> ReloadResult | None:
        """Reload what changed; None if nothing did. Never raises on bad files."""
        result = self._poll_catalog()
        files = self.rule_files()
        sig = self._signature(files)
        if sig == self._rules_sig:
            return result
        self._rules_sig = sig
        digest = self._hash(files)
        if digest == self._rules_hash:
            return result
        self._rules_hash = digest
        try:
            ruleset = load_rules(self.paths, builtin=self.builtin)
        except RuleError as exc:
            return self._failed("rules", exc.errors)
        for det in self.detectors:
            det.swap(ruleset)
        self.reloads += 1
        self.last_errors = []
        log.info("rules reloaded: %d rules, pack %s", len(ruleset), ruleset.version)
        return ReloadResult(True, "rules", ruleset.version, len(ruleset))

    def _poll_catalog(self) -> ReloadResult | None:
        if self.catalog_path is None or not self.engines:
            return None
        sig = self._signature([self.catalog_path])
        if sig == self._catalog_sig:
            return None
        self._catalog_sig = sig
        try:
            catalog = load_catalog(self.catalog_path, self.internal_domains)
        except ConfigError as exc:
            return self._failed("catalog", str(exc).splitlines())
        for engine in self.engines:
            engine.catalog = catalog
        self.reloads += 1
        log.info("tool catalog reloaded from %s", self.catalog_path)
        return ReloadResult(True, "catalog")

    def _failed(self, what: str, errors: list[str]) -> ReloadResult:
        self.failures += 1
        self.last_errors = list(errors)
        log.error("%s not reloaded, the previous ones keep running:", what)
        for e in errors:
            log.error("  %s", e)
        return ReloadResult(False, what, errors=list(errors))

    def stats(self) -> dict[str, Any]:
        """For metrics: reloads done, reloads refused, the pack in use."""
        return {
            "reloads": self.reloads,
            "failures": self.failures,
            "version": self.detector.ruleset.version,
            "rules": len(self.detector.ruleset),
        }
