"""Scores to findings: thresholds to actions, and the wrapper for river-shaped scorers.

:class:`ScoreDetector` turns a :class:`~detectors.base.Scorer` (``score_one`` / ``learn_one``,
river's shape) into a detector. It never lets the scorer learn from what it flagged: learning
is deferred to the end of the root session and happens only if the session closed unflagged
(``on_session_close(session, flagged=False)``), so an attacker cannot teach the baseline.

>>> action_for(0.95, alert_at=0.6, kill_at=0.9), action_for(0.3, alert_at=0.6, kill_at=0.9)
('kill_session', 'observe')
"""

from __future__ import annotations

from detectors.base import Action, Mode


def action_for(score: float, *, alert_at: float, kill_at: float) -> Action:
    """What a finding with this score asks for."""
    if score >= kill_at:
        return "kill_session"
    return "alert" if score >= alert_at else "observe"


def severity_for(score: float, *, kill_at: float) -> str:
    """A severity for a finding's score."""
    if score >= kill_at:
        return "critical"
    return "high" if score >= 0.6 else "medium" if score >= 0.4 else "low"


def mode_of(mode: str) -> Mode:
    """A configured mode string as a :data:`~detectors.base.Mode`."""
    return "shadow" if mode == "shadow" else "enforce"
