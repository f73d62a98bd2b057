"""Offline scoring: run the stream pipeline's detection over a JSONL file of events.

``agentwatch score EVENTS.jsonl`` and the detection benchmark use this module, and it uses the
same :class:`~monitor.pipeline.Pipeline` and engine as the stream worker: events are processed
in file order, as a stream would deliver them (dedup, reordering by ``session.seq``, session
lifecycle and learning when sessions close); the pipeline's clock is the event time, so the
result does not depend on how fast the file is read. Invalid lines are counted and reported,
never fatal.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from detectors.engine import AlertDecision, Decision, Engine, KillDecision
from detectors.registry import build_engine
from monitor.decisions import alert_finding
from monitor.pipeline import Evicted, LateEvent, Pipeline, PipelineSettings
from schemas.errors import InvalidEvent
from schemas.events import ActionEvent, parse_event

#: How often (in events) the pipeline's clock is ticked to release held events and evict.
TICK_EVERY = 256


@dataclass
class ScoreSummary:
    """What a scoring run saw and decided."""

    events: int = 0
    invalid: int = 0
    invalid_reasons: list[str] = field(default_factory=list)
    alerts: int = 0
    kills: int = 0
    late_dropped: int = 0
    sessions: int = 0


@dataclass(frozen=True, slots=True)
class Step:
    """One processed event and what it led to (for benchmarks and replays)."""

    event: ActionEvent
    decisions: tuple[Decision, ...]
    risk: float


def alert_document(decision: AlertDecision) -> dict[str, Any]:
    """The alert as it goes on ``monitor.alerts`` (OCSF Detection Finding, JSON-ready)."""
    return alert_finding(decision).model_dump(mode="json", exclude_none=True)


def read_events(lines: Iterable[bytes | str], summary: ScoreSummary) -> Iterator[ActionEvent]:
    """Valid events of a JSONL stream; invalid lines are counted with their reason."""
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield parse_event(line)
        except InvalidEvent as exc:
            summary.invalid += 1
            if len(summary.invalid_reasons) < 20:
                summary.invalid_reasons.append(f"line {n}: {exc}")


def run(
    events: Iterable[ActionEvent],
    engine: Engine | None = None,
    *,
    summary: ScoreSummary | None = None,
    settings: PipelineSettings | None = None,
    on_event: Callable[[ActionEvent], None] | None = None,
) -> Iterator[Step]:
    """Process ``events`` in order through a pipeline; yield each event's step.

    Every session is closed (and its learners informed) by the end of the run.
    """
    pipe = Pipeline(engine or build_engine(), settings)
    summary = summary if summary is not None else ScoreSummary()
    now = -math.inf
    roots: set[str] = set()
    for i, ev in enumerate(events, 1):
        now = max(now, ev.ts)
        outs = pipe.process(ev, now=now)
        if i % TICK_EVERY == 0:
            outs += pipe.tick(now)
        summary.events += 1
        roots.add(ev.root_session_id)
        decisions = _decisions(outs, summary)
        session = pipe.sessions.get(ev.root_session_id)
        if on_event is not None:
            on_event(ev)
        yield Step(ev, decisions, session.risk if session is not None else 0.0)
    _decisions(pipe.tick(math.inf if now == -math.inf else now + 10 * 365 * 86400.0), summary)
    summary.sessions = len(roots)


def _decisions(outs: list[Any], summary: ScoreSummary) -> tuple[Decision, ...]:
    keep: list[Decision] = []
    for o in outs:
        if isinstance(o, AlertDecision):
            summary.alerts += 1
            keep.append(o)
        elif isinstance(o, KillDecision):
            summary.kills += 1
            keep.append(o)
        elif isinstance(o, LateEvent):
            summary.late_dropped += 1
        elif isinstance(o, Evicted):
            pass
    return tuple(keep)


def score_file(
    path: Path,
    out: IO[bytes] | None,
    engine: Engine | None = None,
    *,
    on_event: Callable[[ActionEvent], None] | None = None,
    on_decisions: Callable[[tuple[Decision, ...]], None] | None = None,
) -> ScoreSummary:
    """Score ``path`` (JSONL events); write each alert (OCSF JSON) as a line to ``out``; hand
    each step's decisions to ``on_decisions``."""
    summary = ScoreSummary()
    with path.open("rb") as f:
        for step in run(read_events(f, summary), engine, summary=summary, on_event=on_event):
            if on_decisions is not None and step.decisions:
                on_decisions(step.decisions)
            if out is None:
                continue
            for d in step.decisions:
                if isinstance(d, AlertDecision):
                    out.write(orjson.dumps(alert_document(d)) + b"\n")
    return summary
