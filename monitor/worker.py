"""``agentwatch worker``: run the :class:`~monitor.runtime.Monitor` with a faust Worker."""

from __future__ import annotations

import logging
from typing import Any

from monitor.runtime import Monitor
from monitor.settings import Settings
from monitor.sinks import Sink


def faust_worker_class() -> Any:
    """faust's Worker without its terminal spinner.

    The spinner sets the root logger to DEBUG and spins on every record, so every debug line
    of aiokafka (one per produce and fetch request) was built and handled: ~15% of the
    worker's CPU in a profile. Without it the root logger stays at the configured level.
    """
    import faust

    class Worker(faust.Worker):  # type: ignore[misc]
        def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
            self.spinner = None

    return Worker


def run_worker(settings: Settings, sink: Sink | None = None) -> int:
    """Run the worker until SIGINT/SIGTERM (or a crash); return the process exit code."""
    from monitor import killtrace, memtrace

    killtrace.install_from_env()  # AGENTWATCH_KILL_TRACE: off unless set
    monitor = Monitor(settings, sink=sink)
    memtrace.start_from_env(monitor)  # AGENTWATCH_MEMPROBE: off unless set
    worker = faust_worker_class()(
        monitor.app,
        loglevel=settings.log_level.upper(),
        quiet=True,
        redirect_stdouts=False,
    )
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
        return 1 if monitor.app.crash_reason is not None else code
    return 1 if monitor.app.crash_reason is not None else 0
