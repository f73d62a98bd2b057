"""What every sink offers the worker, and the sink that stores nothing (``none``).

The worker calls the ``add_*`` methods on the event loop: they must be O(1) and never block
(append to a buffer). Storage work happens elsewhere (a flusher thread). ``durable_offset``
is how the worker keeps its Kafka commits honest: it never commits a partition's offset past
what the sink says is durable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from schemas.alerts import DetectionFinding
from schemas.events import ActionEvent
from schemas.privileged import PrivilegedAction
from schemas.signals import SessionRevokedClaims


@dataclass(frozen=True, slots=True)
class SinkStats:
    """A snapshot of the sink's counters (the worker exports them as Prometheus metrics)."""

    #: rows inserted into ClickHouse, per table (events, alerts, kill_signals)
    rows_inserted: dict[str, int] = field(default_factory=dict)
    #: failed insert attempts (each is retried)
    insert_errors: int = 0
    #: successful INSERT statements
    inserts: int = 0
    #: rows in memory not yet inserted (buffer + built batches)
    buffered_rows: int = 0
    #: rows spilled to the disk spool and not yet inserted
    spooled_rows: int = 0
    spooled_batches: int = 0
    #: rows written to the spool since start (counter)
    spilled_rows_total: int = 0
    #: age in seconds of the oldest row not yet in ClickHouse (0 when none)
    oldest_unflushed_age_s: float = 0.0
    #: seconds the last successful insert took
    last_insert_duration_s: float = 0.0
    #: rows the redactor masked at least one value in (counter)
    values_masked: int = 0
    #: True while inserts fail (cleared by the next success)
    degraded: bool = False

    def get(self, name: str, default: Any = None) -> Any:
        """Mapping-style access (``stats().get("buffered_rows")``); ``errors`` is
        ``insert_errors``."""
        if name == "errors":
            name = "insert_errors"
        return getattr(self, name, default)

    def as_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


class Sink(Protocol):
    """Event, alert, kill-signal and privileged-action storage, and the reads replay needs.

    ``add_*`` are called on the event loop: O(1), never blocking. ``durable_offset(p)``: every
    event added for partition ``p`` with a lower offset is durable (in ClickHouse or in the
    disk spool); ``None`` when nothing of ``p`` is waiting. ``close`` inserts what it can
    within ``timeout`` and spills the rest to disk. ``flush`` waits until everything added so
    far is in ClickHouse (tests, tools)."""

    def start(self) -> None: ...

    def close(self, timeout: float = 10.0) -> None: ...

    def add_event(
        self,
        raw: bytes,
        event: ActionEvent,
        *,
        partition: int,
        offset: int,
        caps: frozenset[str] | None,
    ) -> None: ...

    def add_alert(self, alert: DetectionFinding) -> None: ...

    def add_signal(
        self, jti: str, compact_jws: str, claims: SessionRevokedClaims, *, root_session_id: str
    ) -> None: ...

    def add_privileged(self, action: PrivilegedAction) -> None: ...

    def durable_offset(self, partition: int) -> int | None: ...

    def flush(self, timeout: float = 10.0) -> bool: ...

    def stats(self) -> SinkStats: ...

    def session_events(
        self, root_session_id: str, tenant: str | None = None
    ) -> list[dict[str, Any]]: ...

    def session_alerts(
        self, root_session_id: str, tenant: str | None = None
    ) -> list[dict[str, Any]]: ...

    def session_signals(
        self, root_session_id: str, tenant: str | None = None
    ) -> list[dict[str, Any]]: ...

    def sessions(
        self, *, tenant: str | None = None, limit: int = 50, only_alerted: bool = False
    ) -> list[dict[str, Any]]: ...


class NullSink:
    """``store_url = none``: nothing is stored, nothing holds the worker's commits back."""

    def start(self) -> None:
        return None

    def close(self, timeout: float = 10.0) -> None:
        return None

    def add_event(
        self,
        raw: bytes,
        event: ActionEvent,
        *,
        partition: int,
        offset: int,
        caps: frozenset[str] | None,
    ) -> None:
        return None

    def add_alert(self, alert: DetectionFinding) -> None:
        return None

    def add_signal(
        self, jti: str, compact_jws: str, claims: SessionRevokedClaims, *, root_session_id: str
    ) -> None:
        return None

    def add_privileged(self, action: PrivilegedAction) -> None:
        return None

    def durable_offset(self, partition: int) -> int | None:
        return None

    def flush(self, timeout: float = 10.0) -> bool:
        return True

    def stats(self) -> SinkStats:
        return SinkStats()

    def session_events(
        self, root_session_id: str, tenant: str | None = None
    ) -> list[dict[str, Any]]:
        return []

    def session_alerts(
        self, root_session_id: str, tenant: str | None = None
    ) -> list[dict[str, Any]]:
        return []

    def session_signals(
        self, root_session_id: str, tenant: str | None = None
    ) -> list[dict[str, Any]]:
        return []

    def sessions(
        self, *, tenant: str | None = None, limit: int = 50, only_alerted: bool = False
    ) -> list[dict[str, Any]]:
        return []
