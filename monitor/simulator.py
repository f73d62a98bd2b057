"""Realistic agent traffic: concurrent root sessions of six agent types, some of them attacks.

``generate(seed, ...)`` yields contract events (dicts) in event-time order, sessions
interleaved as on a real stream: sessions start as a Poisson process, each runs its steps
with human-looking think times, sub-agents run inside their root's time. The same seed gives
the same events (ids and times included when ``start`` is given). :class:`Simulator` also
keeps the labels (benign / which attack / the harmful event) and the secrets it planted, for
scoring and redaction tests. ``produce(...)`` sends the events to Kafka at a fixed rate with
a progress bar (kafka-python; key = root session id).

>>> evs = list(generate(7, sessions=20, attack_ratio=0.3))
>>> evs == list(generate(7, sessions=20, attack_ratio=0.3))
True
>>> from schemas.events import validate_event
>>> all(validate_event(e).event_id == e["event_id"] for e in evs)
True
"""

from __future__ import annotations

import heapq
import itertools
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from monitor.attacks import ATTACKS
from monitor.scenarios import BENIGN, Label
from monitor.trace import Trace, rand_id

if TYPE_CHECKING:
    from monitor.gateway import Gateway

#: a fixed default epoch, so ``generate(seed)`` is the same on every run
DEFAULT_START = datetime(2026, 7, 1, 9, 0, 0, tzinfo=UTC)
#: average events per root session (measured on the generator; used to pace session starts)
EVENTS_PER_SESSION = 7.0


@dataclass
class SessionLabel:
    """One root session's ground truth (the shape of the labelled export)."""

    session_id: str
    agent_id: str
    tenant: str
    label: str  # "attack" | "benign"
    attack_type: str | None
    harm_seq: int | None
    harm_event_id: str | None
    harm_session_id: str | None
    note: str = ""
    source: str = "agentwatch-simulator"

    def as_dict(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "source": self.source,
            "agent_id": self.agent_id,
            "tenant": self.tenant,
            "label": self.label,
            "attack_type": self.attack_type,
            "attack_succeeded": True if self.label == "attack" else None,
            "harmful": self.label == "attack",
            "harm_seq": self.harm_seq,
            "harm_event_id": self.harm_event_id,
            "harm_session_id": self.harm_session_id,
            "note": self.note,
        }


@dataclass
class Simulator:
    """Generates interleaved sessions; see the module docstring."""

    seed: int = 0
    sessions: int | None = 100
    attack_ratio: float = 0.1
    start: datetime = DEFAULT_START
    #: root sessions starting per second of event time
    session_rate: float = 2.0
    tenants: tuple[str, ...] = ("acme", "globex")
    attacks: tuple[str, ...] = tuple(ATTACKS)
    labels: dict[str, SessionLabel] = field(default_factory=dict)
    #: harmful event id -> its root session (what a gateway would prevent)
    harm_roots: dict[str, str] = field(default_factory=dict)
    #: secret values planted in tool outputs (redaction tests check none is stored)
    secrets: set[str] = field(default_factory=set)

    def _session(self, rng: random.Random, clock: datetime) -> list[dict[str, Any]]:
        tenant = rng.choice(self.tenants)
        attack = rng.random() < self.attack_ratio
        if attack:
            kind = rng.choice(self.attacks)
            agents, scenario = ATTACKS[kind]
            agent = rng.choice(agents)
        else:
            agent = rng.choice(sorted(BENIGN))
            kind, scenario = BENIGN[agent]
        root = rand_id(rng, "sess-", 14)
        t = Trace(
            rng=rng,
            tenant=tenant,
            agent_id=agent,
            session_id=root,
            root_id=root,
            clock=clock,
            on_behalf_of=f"user:u_{rand_id(rng, n=6)}",
            agent_version=f"{rng.randint(1, 3)}.{rng.randint(0, 12)}.{rng.randint(0, 9)}",
            trace_id=f"{rng.getrandbits(128):032x}",
        )
        label: Label = scenario(t)
        self.secrets.update(t.planted)
        harm = label.harm
        if harm is not None:
            self.harm_roots[harm["event_id"]] = root
        self.labels[root] = SessionLabel(
            session_id=root,
            agent_id=agent,
            tenant=tenant,
            label="attack" if label.attack_type else "benign",
            attack_type=label.attack_type,
            harm_seq=harm["session"]["seq"] if harm else None,
            harm_event_id=harm["event_id"] if harm else None,
            harm_session_id=harm["session"]["id"] if harm else None,
            note=label.note,
        )
        return t.events

    def events(self) -> Iterator[dict[str, Any]]:
        """Events of all sessions, merged in event-time order (endless if ``sessions`` is None)."""
        rng = random.Random(self.seed)
        heap: list[tuple[str, int, dict[str, Any]]] = []
        order = itertools.count()
        clock = self.start
        made = 0
        while self.sessions is None or made < self.sessions or heap:
            if self.sessions is None or made < self.sessions:
                next_start = clock + timedelta(seconds=rng.expovariate(self.session_rate))
                next_key = _iso_key(next_start)
            else:
                next_key = "~"
            while heap and heap[0][0] <= next_key:
                yield heapq.heappop(heap)[2]
            if next_key == "~":
                continue
            clock = next_start
            for ev in self._session(rng, clock):
                heapq.heappush(heap, (ev["time"], next(order), ev))
            made += 1


def _iso_key(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def generate(
    seed: int = 0,
    *,
    sessions: int | None = 100,
    attack_ratio: float = 0.1,
    start: datetime | None = None,
    session_rate: float = 2.0,
) -> Iterator[dict[str, Any]]:
    """Deterministic simulated events (see :class:`Simulator`)."""
    sim = Simulator(
        seed=seed,
        sessions=sessions,
        attack_ratio=attack_ratio,
        start=start or DEFAULT_START,
        session_rate=session_rate,
    )
    return sim.events()


def write_files(sim: Simulator, out: Path, labels: Path | None) -> int:
    """Write the events (JSON lines) and, if asked, the labels; returns the event count."""
    n = 0
    with open(out, "wb") as f:
        for ev in sim.events():
            f.write(orjson.dumps(ev) + b"\n")
            n += 1
    if labels is not None:
        with open(labels, "wb") as f:
            for lab in sim.labels.values():
                f.write(orjson.dumps(lab.as_dict()) + b"\n")
    return n


def produce(
    sim: Simulator,
    *,
    bootstrap: str,
    topic: str,
    rate: float,
    duration_s: float | None = None,
    progress: bool = True,
    producer_config: dict[str, Any] | None = None,
    gateway: Gateway | None = None,
    stats_path: Path | None = None,
    labels_path: Path | None = None,
) -> int:
    """Send the simulator's events to ``topic`` at ``rate`` events/s (key: the root session
    id, so a delegation tree stays on one partition); returns the events sent. Ctrl-C stops
    it after flushing what was sent.

    With a ``gateway``, each event first goes through :meth:`Gateway.admit`: revoked sessions
    stop acting. ``stats_path`` (JSON, rewritten every second) and ``labels_path`` (JSON
    lines, appended as sessions start) let a watcher (the demo) follow along."""
    from kafka import KafkaProducer
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    producer = KafkaProducer(
        bootstrap_servers=bootstrap.split(","),
        linger_ms=5,
        batch_size=256 * 1024,
        acks=1,
        **(producer_config or {}),
    )
    total = None if sim.sessions is None else int(sim.sessions * EVENTS_PER_SESSION)
    columns = (
        TextColumn("[bold]simulate[/]"),
        BarColumn(),
        TextColumn(
            "{task.completed:,} events · {task.fields[rate]:,.0f}/s · "
            "{task.fields[sessions]:,} sessions · {task.fields[attacks]} attacks"
            "{task.fields[blocked]}"
        ),
        TimeElapsedColumn(),
    )
    sent = 0
    report = _Report(sim, gateway, stats_path, labels_path)
    with Progress(*columns, disable=not progress, transient=False) as bar:
        task = bar.add_task("send", total=total, rate=0.0, sessions=0, attacks=0, blocked="")
        began = time.monotonic()
        try:
            for ev in sim.events():
                due = began + sent / rate
                now = time.monotonic()
                if due > now:
                    time.sleep(due - now)
                if duration_s is not None and now - began >= duration_s:
                    break
                out = gateway.admit(ev) if gateway is not None else ev
                sent += 1  # paced on what the agents tried, whatever the gateway let through
                if out is not None:
                    key = out["session"].get("root_id") or out["session"]["id"]
                    producer.send(topic, key=key.encode(), value=orjson.dumps(out))
                    if out is ev and ev["event_id"] in sim.harm_roots:
                        report.harmed.add(sim.harm_roots[ev["event_id"]])
                if sent % 200 == 0:
                    attacks = sum(1 for lab in sim.labels.values() if lab.label == "attack")
                    elapsed = max(time.monotonic() - began, 1e-6)
                    blocked = (
                        f" · {gateway.stats.events_blocked} blocked by the gateway"
                        if gateway is not None
                        else ""
                    )
                    bar.update(
                        task,
                        completed=sent,
                        rate=sent / elapsed,
                        sessions=len(sim.labels),
                        attacks=attacks,
                        blocked=blocked,
                    )
                report.maybe(sent)
        except KeyboardInterrupt:
            pass
        producer.flush()
        report.write(sent)
        bar.update(task, completed=sent, total=sent)
    producer.close()
    return sent


class _Report:
    """Writes the simulator's running totals and new labels for a watcher, every second."""

    def __init__(
        self,
        sim: Simulator,
        gateway: Gateway | None,
        stats_path: Path | None,
        labels_path: Path | None,
    ) -> None:
        self.sim, self.gateway = sim, gateway
        self.stats_path, self.labels_path = stats_path, labels_path
        self.labels_written = 0
        self.last = 0.0
        #: attack root sessions whose harmful step was produced (it happened)
        self.harmed: set[str] = set()
        if labels_path is not None:
            labels_path.write_bytes(b"")

    def maybe(self, sent: int) -> None:
        if (self.stats_path or self.labels_path) and time.monotonic() - self.last >= 1.0:
            self.write(sent)

    def write(self, sent: int) -> None:
        self.last = time.monotonic()
        labels = list(self.sim.labels.values())
        if self.labels_path is not None and len(labels) > self.labels_written:
            with self.labels_path.open("ab") as f:
                for lab in labels[self.labels_written :]:
                    f.write(orjson.dumps(lab.as_dict()) + b"\n")
            self.labels_written = len(labels)
        if self.stats_path is None:
            return
        families: dict[str, int] = {}
        for lab in labels:
            key = lab.attack_type or "benign"
            families[key] = families.get(key, 0) + 1
        doc: dict[str, Any] = {
            "events_tried": sent,
            "sessions": len(labels),
            "by_kind": families,
            "harmed_roots": sorted(self.harmed),
        }
        if self.gateway is not None:
            doc["gateway"] = self.gateway.stats.as_dict()
        tmp = self.stats_path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(doc))
        tmp.replace(self.stats_path)


__all__ = ["Simulator", "SessionLabel", "generate", "produce", "write_files"]
