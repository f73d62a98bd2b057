"""A fingerprint of every decision the pipeline takes, to prove a change did not alter detection.

    python -m bench.fingerprint [--data ../shared/data/agentdojo-dev] [--sim-sessions 3000]

Runs the default engine through :class:`~monitor.pipeline.Pipeline` over the labelled dev set
and over simulated traffic, and hashes every output in order: each alert decision (every
member of the alert, who it is about, the risk), each kill decision, each privileged-action
record, late events and evictions, and the pipeline's counters. It runs each stream twice:
straight through, and with every session changed since the last "checkpoint" pickled and
restored every ``--roundtrip-every`` events (what a worker restart does), and checks both give
the same fingerprint. A change to session state, dedup or a detector's per-session state that
keeps the fingerprints equal changed no decision. Results: ``bench/results/fingerprint.json``
(compare with ``--check``, which exits 1 on any difference).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from detectors.engine import AlertDecision, KillDecision
from detectors.registry import build_engine
from monitor.pipeline import Evicted, LateEvent, Pipeline, PipelineSettings
from monitor.simulator import generate
from schemas.events import ActionEvent, parse_event, validate_event
from schemas.privileged import PrivilegedAction

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
TICK_EVERY = 256


def _default_data() -> Path:
    for base in (ROOT.parent, ROOT.parent.parent):
        p = base / "shared" / "data" / "agentdojo-dev"
        if p.is_dir():
            return p
    return ROOT.parent / "shared" / "data" / "agentdojo-dev"


def _plain(x: Any) -> Any:
    """JSON-ready, order-stable (sets sorted: their iteration order depends on the hash seed)."""
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {f.name: _plain(getattr(x, f.name)) for f in dataclasses.fields(x)}
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    if isinstance(x, set | frozenset):
        return sorted(_plain(v) for v in x)
    if isinstance(x, float) and not math.isfinite(x):
        return repr(x)
    return x


def canonical(out: Any) -> bytes:
    """One output of the pipeline as canonical bytes."""
    if isinstance(out, PrivilegedAction):
        return b"P" + out.model_dump_json().encode()
    if isinstance(out, LateEvent):
        return b"L" + orjson.dumps([out.event.event_id, round(out.lateness_s, 6)])
    tag = {AlertDecision: b"A", KillDecision: b"K", Evicted: b"E"}[type(out)]
    return tag + orjson.dumps(_plain(out), option=orjson.OPT_SORT_KEYS)


@dataclasses.dataclass
class Print:
    """The fingerprint of one run."""

    digest: str = ""
    events: int = 0
    alerts: int = 0
    kills: int = 0
    privileged: int = 0
    late: int = 0
    evicted: int = 0
    stats: dict[str, Any] = dataclasses.field(default_factory=dict)


def fingerprint(events: Iterable[ActionEvent], roundtrip_every: int = 0) -> Print:
    """Process ``events`` in order (clock = event time, as ``agentwatch score``); hash outputs.

    With ``roundtrip_every`` > 0, every that many events each session changed since the last
    round trip is pickled and restored in place, as a checkpoint and a restart would.
    """
    pipe = Pipeline(build_engine(), PipelineSettings())
    h = hashlib.sha256()
    fp = Print()
    now = -math.inf

    def take(outs: list[Any]) -> None:
        for o in outs:
            h.update(canonical(o))
            if isinstance(o, AlertDecision):
                fp.alerts += 1
            elif isinstance(o, KillDecision):
                fp.kills += 1
            elif isinstance(o, PrivilegedAction):
                fp.privileged += 1
            elif isinstance(o, LateEvent):
                fp.late += 1
            else:
                fp.evicted += 1

    for i, ev in enumerate(events, 1):
        now = max(now, ev.ts)
        take(pipe.process(ev, now=now))
        if i % TICK_EVERY == 0:
            take(pipe.tick(now))
        if roundtrip_every and i % roundtrip_every == 0:
            for root in pipe.take_dirty():
                session = pipe.sessions.get(root)
                if session is not None and not session.pending:
                    pipe.restore(root, pipe.snapshot(root), now=session.last_active)
        fp.events = i
    take(pipe.tick(now + 10 * 365 * 86400.0 if math.isfinite(now) else 0.0))
    st = dataclasses.asdict(pipe.stats)
    fp.stats = st
    h.update(orjson.dumps(st, option=orjson.OPT_SORT_KEYS))
    fp.digest = h.hexdigest()
    return fp


def dev_events(data: Path) -> Iterator[ActionEvent]:
    with (data / "events.jsonl").open("rb") as f:
        for line in f:
            if line.strip():
                yield parse_event(line)


def sim_events(sessions: int, seed: int = 11) -> Iterator[ActionEvent]:
    for doc in generate(seed, sessions=sessions, attack_ratio=0.1):
        yield validate_event(doc)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=_default_data())
    ap.add_argument("--sim-sessions", type=int, default=3000)
    ap.add_argument("--roundtrip-every", type=int, default=97)
    ap.add_argument("--out", type=Path, default=RESULTS / "fingerprint.json")
    ap.add_argument("--check", action="store_true", help="compare with --out; exit 1 if differs")
    args = ap.parse_args(argv)
    console = Console()
    streams = {
        "agentdojo-dev": lambda: dev_events(args.data),
        f"simulator-{args.sim_sessions}": lambda: sim_events(args.sim_sessions),
    }
    results: dict[str, Any] = {}
    table = Table(title="decision fingerprints")
    for col in ("stream", "events", "alerts", "kills", "privileged", "digest", "round trip"):
        table.add_column(col)
    ok = True
    for name, make in streams.items():
        with console.status(f"{name}: straight through"):
            a = fingerprint(make())
        with console.status(f"{name}: with checkpoint round trips"):
            b = fingerprint(make(), args.roundtrip_every)
        same = a.digest == b.digest
        ok &= same
        results[name] = dataclasses.asdict(a) | {"roundtrip_digest": b.digest}
        table.add_row(
            name,
            f"{a.events:,}",
            f"{a.alerts:,}",
            f"{a.kills:,}",
            f"{a.privileged:,}",
            a.digest[:16],
            "same" if same else f"[red]{b.digest[:16]}[/]",
        )
    console.print(table)
    if args.check:
        before = json.loads(args.out.read_text())
        for name, r in results.items():
            was = before.get(name, {}).get("digest")
            if was != r["digest"]:
                console.print(f"[red]{name}: digest {r['digest'][:16]} differs from {was}[/]")
                ok = False
            else:
                console.print(f"{name}: unchanged ({was[:16]})")
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
        console.print(f"written to {args.out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
