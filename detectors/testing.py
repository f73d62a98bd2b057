"""Small builders of events and sessions, for doctests, tests and examples.

>>> s = new_session(task="Pay my rent")
>>> ctx = ctx_for("send_money", arguments={"recipient": "DE89370400440532013000"}, seq=1)
>>> ctx.event.tool.name, s.scope_of(s.root_id).task
('send_money', 'Pay my rent')
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from detectors.base import EventContext
from detectors.catalog import ToolCatalog
from detectors.session import Scope, SessionState
from schemas.events import validate_event

_CATALOG = ToolCatalog()
_T0 = datetime(2026, 7, 1, 12, 0, 0, tzinfo=UTC)


def event(
    kind: str = "tool_call",
    *,
    session: str = "s1",
    agent: str = "agent-a",
    seq: int | None = 1,
    tool: str | None = None,
    arguments: dict[str, Any] | None = None,
    output: str | None = None,
    task: str | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    """An action event document (a dict in the wire contract)."""
    doc: dict[str, Any] = {
        "event_id": event_id or f"{session}-{seq}-{kind}",
        "time": (_T0 + timedelta(seconds=seq or 0)).isoformat(),
        "kind": kind,
        "session": {"id": session, "seq": seq},
        "actor": {"agent_id": agent},
    }
    if tool is not None:
        doc["tool"] = {"name": tool, "arguments": arguments or {}, "output": output}
    if task is not None:
        doc["intent"] = {"task": task}
    return doc


def ctx_for(
    tool: str | None = None,
    *,
    kind: str | None = None,
    catalog: ToolCatalog | None = None,
    **kw: Any,
) -> EventContext:
    """An :class:`EventContext` for one event, classified by the default catalog."""
    doc = event(kind or ("tool_call" if tool else "session_start"), tool=tool, **kw)
    ev = validate_event(doc)
    t = ev.tool
    cls = (catalog or _CATALOG).classify_parts(
        t.name if t is not None else None, ev.resources, ev.transfer, ev.category
    )
    return EventContext(event=ev, cls=cls, ts=ev.ts)


def new_session(root: str = "s1", agent: str = "agent-a", task: str | None = None) -> SessionState:
    """A root session whose root member carries ``task`` as its declared intent."""
    s = SessionState(root, None, agent)
    m = s.member(root, agent)
    m.scope = Scope(task=task)
    return s
