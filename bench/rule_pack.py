"""How the rule pack behaves on labelled real sessions: alerts and kills per class and rule.

    .venv/bin/python bench/rule_pack.py [EVENTS.jsonl] [LABELS.jsonl] [--rules PATH ...] [--all]

Runs every event through the same offline :class:`monitor.pipeline.Pipeline` the worker
uses, with the rule engine alone (built-in pack plus optional rule files; ``--all``: the
whole default detector suite), then counts, per label class (benign, attack
that succeeded, attack that failed), the sessions with at least one alert and with a kill,
overall and per rule (rules whose action is ``observe`` count their findings). Prints rich
tables and writes ``bench/results/rule_pack.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import track
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from detectors.base import Finding  # noqa: E402
from detectors.engine import AlertDecision, Engine, KillDecision  # noqa: E402
from detectors.registry import build_engine, rule_detector  # noqa: E402
from detectors.rules.detector import RuleDetector  # noqa: E402
from monitor.pipeline import Pipeline  # noqa: E402
from schemas.events import parse_event  # noqa: E402

DATA = ROOT.parent.parent / "shared" / "data" / "agentdojo-dev"


def label_class(row: dict[str, Any]) -> str:
    if row["label"] == "benign":
        return "benign"
    return "attack_succeeded" if row.get("attack_succeeded") else "attack_failed"


def run(events: Path, labels: Path, rules: list[Path], everything: bool = False) -> dict[str, Any]:
    classes = {r["session_id"]: label_class(r) for r in map(json.loads, labels.open())}
    engine = (
        build_engine(rules_paths=rules) if everything else Engine([RuleDetector.from_paths(rules)])
    )
    det = rule_detector(engine)
    findings: dict[str, set[str]] = defaultdict(set)
    if det is not None:

        def listen(f: Finding, _sink: dict[str, set[str]] = findings) -> None:
            _sink[f.detector].add(current[0])

        det.listener = listen
    current = [""]
    pipe = Pipeline(engine)
    alerted: dict[str, set[str]] = defaultdict(set)
    killed: set[str] = set()
    lines = events.read_text().splitlines()
    started = time.perf_counter()
    for i, line in enumerate(track(lines, description="replaying events")):
        ev = parse_event(line)
        current[0] = ev.root_session_id
        for out in pipe.process(ev, now=float(i)):
            if isinstance(out, AlertDecision):
                alerted[out.alert.key.split(":", 1)[0]].add(out.who.root_session_id)
            elif isinstance(out, KillDecision):
                killed.add(out.who.root_session_id)
    for out in pipe.tick(float(len(lines)), event_time=pipe.max_event_ts):
        if isinstance(out, AlertDecision):
            alerted[out.alert.key.split(":", 1)[0]].add(out.who.root_session_id)
    elapsed = time.perf_counter() - started
    totals = Counter(classes.values())
    any_alert = set().union(*alerted.values()) if alerted else set()

    def by_class(sessions: set[str]) -> dict[str, int]:
        c = Counter(classes.get(s, "unlabelled") for s in sessions)
        return {k: c.get(k, 0) for k in totals}

    return {
        "events": len(lines),
        "seconds": round(elapsed, 2),
        "sessions": dict(totals),
        "alert": by_class(any_alert),
        "kill": by_class(killed),
        "rules_alert": {r: by_class(s) for r, s in sorted(alerted.items())},
        "rules_matched": {r: by_class(s) for r, s in sorted(findings.items())},
    }


def show(result: dict[str, Any]) -> None:
    console = Console()
    totals = result["sessions"]
    order = [c for c in ("benign", "attack_succeeded", "attack_failed") if c in totals]
    t = Table(title=f"Rule pack on {result['events']} events ({result['seconds']} s)")
    t.add_column("")
    for c in order:
        t.add_column(f"{c} (n={totals[c]})", justify="right")
    for what in ("alert", "kill"):
        row = result[what]
        t.add_row(
            f"sessions with {what}",
            *[f"{row[c]} ({100 * row[c] / totals[c]:.1f}%)" for c in order],
        )
    console.print(t)
    r = Table(title="Sessions per rule (matched = any finding, alert = alert emitted)")
    r.add_column("rule")
    for c in order:
        r.add_column(f"{c} matched/alert", justify="right")
    for rule in sorted(set(result["rules_matched"]) | set(result["rules_alert"])):
        m = result["rules_matched"].get(rule, {})
        a = result["rules_alert"].get(rule, {})
        r.add_row(rule, *[f"{m.get(c, 0)}/{a.get(c, 0)}" for c in order])
    console.print(r)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("events", nargs="?", type=Path, default=DATA / "events.jsonl")
    ap.add_argument("labels", nargs="?", type=Path, default=DATA / "labels.jsonl")
    ap.add_argument("--rules", type=Path, action="append", default=[])
    ap.add_argument("--all", action="store_true", help="the whole default detector suite")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "rule_pack.json")
    args = ap.parse_args()
    result = run(args.events, args.labels, args.rules, args.all)
    show(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
