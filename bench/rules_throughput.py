"""Per-event cost of the rule engine in the pipeline core (no Kafka), on real sessions.

    .venv/bin/python bench/rules_throughput.py [EVENTS.jsonl] [--runs 5]

Replays pre-parsed events through :class:`monitor.pipeline.Pipeline` with: no detectors
(catalog, session state and ordering only), plus the privileged-action log, plus the
built-in rule pack, plus 200 extra rules (to show that indexing keeps the cost flat). Prints
the best and median µs/event of ``runs`` runs and writes ``bench/results/rules_throughput.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from detectors.engine import Engine  # noqa: E402
from detectors.rules.detector import RuleDetector  # noqa: E402
from detectors.rules.loader import load_text_rules  # noqa: E402
from monitor.pipeline import Pipeline, PipelineSettings  # noqa: E402
from schemas.events import ActionEvent, parse_event  # noqa: E402

DATA = ROOT.parent.parent / "shared" / "data" / "agentdojo-dev" / "events.jsonl"

EXTRA = """
- rule: X-{i}
  title: extra {i}
  priority: LOW
  action: observe
  output: x
  condition: tool_call and tool.name = tool_{i} and caps contains payment
"""


def per_event_us(
    make: object, events: list[ActionEvent], runs: int, privileged: bool
) -> tuple[float, float]:
    """(best, median) µs/event over ``runs`` runs: the best is the steadier figure on a
    shared machine, the median says how noisy it was."""
    samples = []
    for _ in range(runs):
        pipe = Pipeline(make(), PipelineSettings(privileged_log=privileged))  # type: ignore[operator]
        t = time.perf_counter()
        for i, ev in enumerate(events):
            pipe.process(ev, now=float(i))
        samples.append((time.perf_counter() - t) / len(events) * 1e6)
    return min(samples), statistics.median(samples)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("events", nargs="?", type=Path, default=DATA)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    lines = args.events.read_text().splitlines()
    t = time.perf_counter()
    events = [parse_event(line) for line in lines]
    parse_us = (time.perf_counter() - t) / len(lines) * 1e6
    pack = RuleDetector().ruleset
    big_text = "".join(EXTRA.replace("{i}", str(i)) for i in range(200))
    big = load_text_rules(
        "- macro: tool_call\n  condition: evt.kind = tool_call\n" + big_text, builtin=False
    )
    from detectors.rules.loader import Source, builtin_files, load_sources

    srcs = [Source(str(p), p.read_text()) for p in builtin_files()]
    both = load_sources([*srcs, Source("extra.yaml", big_text)])
    configs = [
        ("no detectors", lambda: Engine([]), False),
        ("+ privileged-action log", lambda: Engine([]), True),
        (f"+ built-in pack ({len(pack)} rules)", lambda: Engine([RuleDetector(pack)]), True),
        (f"+ 200 extra rules ({len(both)} rules)", lambda: Engine([RuleDetector(both)]), True),
    ]
    del big
    rows = []
    for name, make, priv in configs:
        rows.append((name, per_event_us(make, events, args.runs, priv)))
    table = Table(title=f"Pipeline core on {len(events)} real events, {args.runs} runs")
    table.add_column("configuration")
    table.add_column("best µs/event", justify="right")
    table.add_column("median", justify="right")
    table.add_column("events/s (best)", justify="right")
    table.add_row("(parse, pydantic, for scale)", f"{parse_us:.1f}", "", f"{1e6 / parse_us:,.0f}")
    for name, (best, median) in rows:
        table.add_row(name, f"{best:.1f}", f"{median:.1f}", f"{1e6 / best:,.0f}")
    Console().print(table)
    out = ROOT / "bench" / "results" / "rules_throughput.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"parse_us": parse_us, "configs": dict(rows)}, indent=2))


if __name__ == "__main__":
    main()
