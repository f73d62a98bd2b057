"""Identity keys for learned models, most specific first, with cold-start backoff.

An agent's own model is used once it has learned from ``min_sessions`` sessions; before that,
the model of its *template* (the agent id without a trailing version or replica number:
``billing-agent-7`` -> ``billing-agent``), and before that the global model (``*``).

>>> identity_keys("billing-agent-v2.1")
('billing-agent-v2.1', 'billing-agent', '*')
>>> identity_keys("travel-assistant")
('travel-assistant', '*')
"""

from __future__ import annotations

import re
from functools import lru_cache

_VERSION_RE = re.compile(r"(?:[-_.@:]v?\d[\w.]*)+$", re.IGNORECASE)
GLOBAL = "*"


def template_of(agent_id: str) -> str:
    """The agent id without a trailing version / replica suffix."""
    return _VERSION_RE.sub("", agent_id) or agent_id


@lru_cache(maxsize=65_536)
def identity_keys(agent_id: str) -> tuple[str, ...]:
    """Model keys for ``agent_id``: its own, its template's (if different), the global one."""
    t = template_of(agent_id)
    return (agent_id, t, GLOBAL) if t != agent_id else (agent_id, GLOBAL)
