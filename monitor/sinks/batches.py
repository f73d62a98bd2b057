"""Batches of the ClickHouse sink: what they hold, and turning buffered items into rows.

A :class:`Batch` is cut from the sink's buffer (items as the event loop appended them), then
built (rows per table, redacted), then inserted or spilled; ``mins`` keeps the lowest Kafka
offset per partition of its events, which is what ``durable_offset`` reads. A
:class:`Spilled` batch is a spool file waiting for ClickHouse.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from monitor.redaction import Redactor
from monitor.sinks.rows import Row, alert_row, event_row, privileged_row, signal_row
from monitor.sinks.schema import COLUMNS

log = logging.getLogger("agentwatch.sink")


@dataclass(eq=False)
class Batch:
    token: str
    items: list[tuple[Any, ...]] | None
    mins: dict[int, int]
    created: float
    tables: dict[str, list[Row]] = field(default_factory=dict)
    rows: int = 0
    built: bool = False
    busy: bool = False  # being inserted or spilled
    spilling: bool = False  # one writer per batch, whoever spills it


@dataclass(eq=False)
class Spilled:
    path: Path
    rows: int
    created: float
    busy: bool = False


def lowest_offsets(items: Iterable[tuple[Any, ...]]) -> dict[int, int]:
    """The lowest offset per partition among the events in ``items``."""
    mins: dict[int, int] = {}
    for item in items:
        if len(item) == 5:
            p, off = item[2], item[3]
            low = mins.get(p)
            if low is None or off < low:
                mins[p] = off
    return mins


def build_tables(
    redactor: Redactor, items: Iterable[tuple[Any, ...]]
) -> tuple[dict[str, list[Row]], int]:
    """Rows per table for buffered items (events: 5-tuples, alerts: 1-tuples, signals:
    4-tuples, privileged actions: ``("privileged", record)``), and how many items could not be
    built (logged, redacted, and skipped)."""
    now = datetime.now(UTC)
    tables: dict[str, list[Row]] = {t: [] for t in COLUMNS}
    errors = 0
    for item in items:
        try:
            if len(item) == 5:
                raw, event, partition, offset, caps = item
                tables["events"].append(
                    event_row(redactor, raw, event, partition, offset, caps, now)
                )
            elif len(item) == 1:
                tables["alerts"].append(alert_row(redactor, item[0], now))
            elif len(item) == 2:  # ("privileged", record)
                tables["privileged_actions"].append(privileged_row(redactor, item[1], now))
            else:
                jti, jws, claims, root = item
                tables["kill_signals"].append(signal_row(jti, jws, claims, root, now))
        except Exception as exc:  # a bug in row building must not stop the rest
            errors += 1
            log.error(
                "could not build a storage row (%s); it is skipped",
                redactor.text(f"{type(exc).__name__}: {exc}", 300),
            )
    return {t: rows for t, rows in tables.items() if rows}, errors
