"""Detection on simulated traffic: kill and alert rates per attack family and benign agent.

    python -m bench.simulated [--sessions 3000] [--attack-ratio 0.2] [--seeds 1,2]
                              [--out bench/results]

Generates labelled traffic with the simulator (``monitor.simulator``: six agent types, seven
attack families) and scores it through the same path as ``agentwatch score`` (the stream
pipeline, in event order), twice: with the default settings (no internal domains: every host
is "outside"), and with the simulated organisation's domains configured
(``AGENTWATCH_INTERNAL_DOMAINS=acme.com,acme.internal``, as ``agentwatch demo`` runs the
worker). For each attack family it reports the share of sessions killed, killed before their
harmful step and alerted, and which rules killed; for each benign agent the share alerted
and killed. Targets: attacks killed >= 95%, benign alerted <= 3%, benign killed <= 1%.
Results go to ``bench/results/simulated.json`` and ``simulated.png``.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console

from monitor.detection import engine_from_settings
from monitor.evaluation import TARGETS, Outcomes, family_tables, meets_targets, tally
from monitor.scoring import run
from monitor.settings import Settings
from monitor.simulator import DEFAULT_START, Simulator
from schemas.events import parse_event

ROOT = Path(__file__).resolve().parent.parent
#: the simulated organisation's own domains (monitor.scenarios.INTERNAL)
ORG_DOMAINS = ["acme.com", "acme.internal"]
CONFIGS = {"default settings": [], "org domains": ORG_DOMAINS}


def simulate(seeds: list[int], sessions: int, attack_ratio: float) -> tuple[list[bytes], list[Any]]:
    """Events (JSON lines, seed after seed) and labels of ``sessions`` root sessions per seed."""
    lines: list[bytes] = []
    labels: list[Any] = []
    for i, seed in enumerate(seeds):
        # one day apart: the streams follow each other in event time, as one stream would
        start = DEFAULT_START + timedelta(days=i)
        sim = Simulator(seed=seed, sessions=sessions, attack_ratio=attack_ratio, start=start)
        lines.extend(orjson.dumps(ev) for ev in sim.events())
        labels.extend(lab.as_dict() for lab in sim.labels.values())
    return lines, labels


def score(lines: list[bytes], labels: list[Any], domains: list[str]) -> dict[str, Any]:
    """Score the lines with the worker's engine for these internal domains; tally by family."""
    engine = engine_from_settings(Settings.from_env({}, internal_domains=domains))
    outcomes = Outcomes(lab["harm_event_id"] for lab in labels if lab["harm_event_id"])
    t0 = time.perf_counter()
    for step in run((parse_event(line) for line in lines), engine):
        outcomes.saw(step.event.event_id, step.event.ts)
        if step.decisions:
            outcomes.add(step.decisions)
    elapsed = time.perf_counter() - t0
    result = tally(labels, outcomes)
    return {
        "internal_domains": domains,
        "seconds": round(elapsed, 2),
        "us_per_event": round(elapsed / max(1, len(lines)) * 1e6, 1),
        "groups": result,
        "meets_targets": meets_targets(result),
    }


def chart(results: dict[str, Any], path: Path) -> None:
    """Per attack family: killed, killed before harm; per benign agent: alerted (both configs)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), gridspec_kw={"width_ratios": [3, 2]})
    for i, (name, res) in enumerate(results.items()):
        groups = res["groups"]
        fams = sorted(g for g in groups if g.startswith("attack/"))
        agents = sorted(g for g in groups if g.startswith("benign/"))
        w = 0.38
        xs = [j + (i - 0.5) * w for j in range(len(fams))]
        axes[0].bar(xs, [groups[f]["kill_rate"] for f in fams], w, label=f"killed ({name})",
                    alpha=0.85)  # fmt: skip
        axes[0].scatter(xs, [groups[f]["before_harm_rate"] for f in fams], marker="_", s=300,
                        color="black", label="before harm" if i == 0 else None)  # fmt: skip
        xb = [j + (i - 0.5) * w for j in range(len(agents))]
        axes[1].bar(xb, [groups[a]["alert_rate"] for a in agents], w, label=f"alerted ({name})")
        axes[0].set_xticks(range(len(fams)), [f[7:] for f in fams], rotation=30, ha="right")
        axes[1].set_xticks(range(len(agents)), [a[7:] for a in agents], rotation=30, ha="right")
    axes[0].axhline(TARGETS["attack_kill"], color="C2", lw=0.8, ls=":")
    axes[0].set_ylim(0, 1.05)
    axes[0].set_title("attack sessions killed (bars) and killed before harm (ticks)")
    axes[1].axhline(TARGETS["benign_alert"], color="red", lw=0.8, ls=":")
    axes[1].set_ylim(0, max(0.1, *(b.get_height() for b in axes[1].patches)) * 1.2)
    axes[1].set_title("benign sessions alerted")
    for ax in axes:
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("agentwatch on simulated traffic")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--sessions", type=int, default=3000, help="root sessions per seed")
    ap.add_argument("--attack-ratio", type=float, default=0.2)
    ap.add_argument("--seeds", default="1,2")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    ap.add_argument("--no-chart", action="store_true")
    args = ap.parse_args(argv)
    console = Console(width=max(100, Console().width))
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    with console.status(f"simulating {args.sessions} sessions x {len(seeds)} seeds…"):
        lines, labels = simulate(seeds, args.sessions, args.attack_ratio)
    results: dict[str, Any] = {}
    for name, domains in CONFIGS.items():
        with console.status(f"scoring {len(lines):,} events ({name})…"):
            res = results[name] = score(lines, labels, domains)
        for table in family_tables(res["groups"], f"simulated traffic, {name}"):
            console.print(table)
        ok = res["meets_targets"]
        console.print(
            f"targets ({name}): "
            + ", ".join(f"{k} {'[green]met[/]' if v else '[red]MISSED[/]'}" for k, v in ok.items())
            + f" · {res['us_per_event']} µs/event"
        )
    out = {
        "seeds": seeds,
        "sessions_per_seed": args.sessions,
        "attack_ratio": args.attack_ratio,
        "events": len(lines),
        "targets": TARGETS,
        "configs": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "simulated.json").write_text(json.dumps(out, indent=2) + "\n")
    if not args.no_chart:
        chart(results, args.out / "simulated.png")
    console.print(f"wrote {args.out / 'simulated.json'}" + ("" if args.no_chart else " and .png"))
    return out


if __name__ == "__main__":
    main()
