"""Periodic work: session housekeeping (held-back events, eviction), rule reloads and
checkpoints."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from monitor.durability import CheckpointFailed

if TYPE_CHECKING:
    from monitor.runtime import Monitor

log = logging.getLogger("agentwatch.worker")


def register(monitor: Monitor) -> None:
    app = monitor.app
    settings = monitor.settings

    @app.timer(settings.tick_interval_s, name="agentwatch.tick")  # type: ignore[untyped-decorator]
    async def tick() -> None:
        monitor.tick()
        monitor.collector.settle()
        if monitor.outbox:
            await monitor.outputs.flush()

    @app.timer(settings.rules_reload_interval_s, name="agentwatch.rules")  # type: ignore[untyped-decorator]
    async def reload_rules() -> None:
        monitor.reload_rules()

    @app.timer(settings.checkpoint_interval_s, name="agentwatch.checkpoint")  # type: ignore[untyped-decorator]
    async def checkpoint() -> None:
        try:
            await monitor.durability.checkpoint()
        except CheckpointFailed as exc:
            log.error("stopping the worker: %s", exc)
            await app.crash(exc)
        except Exception:
            log.exception("checkpoint failed; retrying at the next interval")
