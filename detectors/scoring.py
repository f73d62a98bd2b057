"""Scores to findings: thresholds to actions, and the wrapper for river-shaped scorers.

:class:`ScoreDetector` turns a :class:`~detectors.base.Scorer` (``score_one`` / ``learn_one``,
river's shape) into a detector. It never lets the scorer learn from what it flagged: learning
is deferred to the end of the root session and happens only if the session closed unflagged
(``on_session_close(session, flagged=False)``), so an attacker cannot teach the baseline.

>>> action_for(0.95, alert_at=0.6, kill_at=0.9), action_for(0.3, alert_at=0.6, kill_at=0.9)
('kill_session', 'observe')
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from detectors.base import Action, Mode

if TYPE_CHECKING:
    from detectors.session import SessionState


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


def adds_nothing(session: SessionState, key: str, score: float, action: str) -> bool:
    """An ``observe`` finding that would change nothing: the session's contribution under
    ``key`` is already at least ``score`` (the engine keeps the highest score per key and
    raises no alert for observations). Detectors skip building it: a Finding with its message
    costs more than the rest of a cheap detector's work."""
    if action != "observe":
        return False
    prev = session.contributions.get(key)
    return prev is not None and score <= prev[0]
