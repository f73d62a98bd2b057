"""The scoring agent: every record of the action topic through the partition's pipeline.

One agent instance consumes every assigned partition; records are processed one at a time
and synchronously (``Monitor.on_record``), and whatever they produced (alerts, a kill signal,
dead letters) is handed to the producer before the next record, so a kill signal leaves as
soon as its decision is taken.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from monitor.runtime import Monitor


def register(monitor: Monitor) -> None:
    app = monitor.app
    on_record = monitor.on_record
    outbox = monitor.outbox
    flush = monitor.outputs.flush

    @app.agent(monitor.topics.actions, name="agentwatch.score")
    async def score(stream: Any) -> None:
        async for event in stream.events():
            msg = event.message
            on_record(msg.partition, msg.offset, msg.key, msg.value, msg.headers)
            if outbox:
                await flush()
