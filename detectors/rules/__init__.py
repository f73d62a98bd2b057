"""Detection rules people can read, tune, test and extend.

YAML files of Falco-style ``list`` / ``macro`` / ``rule`` blocks with Sigma-style metadata
(``loader``), a small safe condition language (``expr``) over the fields in ``fields``,
rules that match single events, ordered sequences (with missing steps: absence),
combinations in any order and counts (``model``), run per root session by
:class:`~detectors.rules.detector.RuleDetector`. The built-in pack is in ``builtin/``, with
a fixture file per rule under ``builtin/tests/`` (``agentwatch rules test``).
"""

from __future__ import annotations

#: Rule files may say ``required_engine_version: N``; this engine understands up to:
ENGINE_VERSION = 1
