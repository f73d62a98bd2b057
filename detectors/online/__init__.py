"""Online-learning detectors (river): models of each identity's normal behaviour.

They learn only from root sessions that closed unflagged (``on_session_close(flagged=False)``),
so an attacker cannot teach the baseline, and they start useful from few sessions by backing
off from the agent's own model to its template's and to the global one. Their learned state is
checkpointed through ``Engine.learned_state()``.
"""
