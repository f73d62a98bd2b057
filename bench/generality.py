"""Generality benchmark: the dev set's sessions with other attack wrappers and benign look-alikes.

    python -m bench.generality [--data ../shared/data/agentdojo-dev] [--out bench/results]
                               [--only NAME,...] [--tuned-only]

For each attack template of :mod:`bench.wrappers`, every attacked session of the dev set gets
its injection re-wrapped (:mod:`bench.rewrap`: same goal, same target, same agent behaviour)
and the whole stream is scored with the default engine through the same path as
``agentwatch score``. Per template it reports, on the successful attacks, the share killed and
killed before the first harmful call; on the attacks the agent resisted, the share alerted and
killed; and how often the injected-instruction detector alone alerted on them. For each benign
set, one legitimate instruction-like text is planted in every benign session (its first
untrusted output) and the benign alert and kill rates are reported.

Held-out families (never used to tune detectors) are reported in their own table. Results go
to ``bench/results/generality.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from bench.detection import DEFAULT_DATA, ROOT, Outcome, score_lines
from bench.rewrap import find_injection, plant, render
from bench.wrappers import ATTACKS, BENIGN, BenignSet, Template
from detectors import capabilities as C
from detectors.catalog import ToolCatalog

INJECTION_DETECTOR = "AW-INJ-001"


@dataclass
class DevSet:
    """The dev set in memory: events in stream order, labels by session."""

    events: list[dict[str, Any]]
    labels: dict[str, dict[str, Any]]
    #: root session -> the goal's tool calls, written out for tool_knowledge-style wrappers
    tools: dict[str, str]

    @classmethod
    def load(cls, data: Path) -> DevSet:
        events = [orjson.loads(line) for line in (data / "events.jsonl").open("rb") if line.strip()]
        labels = {}
        for line in (data / "labels.jsonl").open("rb"):
            if line.strip():
                lab = orjson.loads(line)
                labels[lab["session_id"]] = lab
        return cls(events, labels, _tool_hints(events, labels))


def _root(ev: dict[str, Any]) -> str:
    s = ev["session"]
    return str(s.get("root_id") or s["id"])


def _norm_goal(goal: str) -> str:
    g = re.sub(r"\\\n\s*(?:\\ )?", " ", goal).replace("\\n", " ").replace("''", "'")
    return " ".join(g.split())


def _tool_hints(events: list[dict[str, Any]], labels: dict[str, dict[str, Any]]) -> dict[str, str]:
    """For each attacked session, its goal's harmful call as "- `tool` with arguments {...}".

    Argument values that the goal names are written out; the others are placeholders
    (``$name``), as AgentDojo's tool_knowledge attack does. Sessions whose agent never made
    the call borrow it from a session with the same goal.
    """
    goal_of: dict[str, str] = {}
    harm: dict[str, dict[str, Any]] = {}
    for ev in events:
        root, tool = _root(ev), ev.get("tool") or {}
        out = tool.get("output") or ""
        if root not in goal_of and "<INFORMATION>" in out:
            inj = find_injection(out)
            if inj is not None:
                goal_of[root] = _norm_goal(inj.goal)
        lab = labels.get(root) or {}
        if lab.get("harm_seq") is not None and ev["session"].get("seq") == lab["harm_seq"]:
            harm[root] = tool
    by_goal: dict[str, str] = {}
    for root, call in harm.items():
        goal = goal_of.get(root)
        if goal is None or goal in by_goal:
            continue
        args = {
            k: (v if isinstance(v, (str, int, float)) and str(v) in goal else f"${k}")
            for k, v in (call.get("arguments") or {}).items()
        }
        by_goal[goal] = f"- `{call.get('name')}` with arguments {args}"
    return {root: by_goal.get(goal, "") for root, goal in goal_of.items()}


def attack_variant(dev: DevSet, template: Template) -> tuple[Iterator[bytes], set[str]]:
    """The stream with every attacked session's injections re-wrapped, and those sessions."""
    rewrapped: set[str] = set()

    def lines() -> Iterator[bytes]:
        for ev in dev.events:
            tool = ev.get("tool")
            out = tool.get("output") if tool else None
            root = _root(ev)
            if out and "<INFORMATION>" in out and dev.labels.get(root, {}).get("label") == "attack":
                new, at = out, 0
                while True:  # an output may carry the injection more than once (hotel reviews)
                    inj = find_injection(new, at)
                    if inj is None:
                        break
                    wrapped = render(template.text, inj, dev.tools.get(root, ""))
                    new = new[: inj.start] + wrapped + new[inj.end :]
                    at = inj.start + len(wrapped)
                if new != out:
                    rewrapped.add(root)
                    ev = {**ev, "tool": {**tool, "output": new}}
            yield orjson.dumps(ev)

    return lines(), rewrapped


_CATALOG = ToolCatalog()


def _pick(session_id: str, n: int) -> int:
    return hashlib.sha256(session_id.encode()).digest()[0] % n


def benign_variant(dev: DevSet, bset: BenignSet) -> tuple[Iterator[bytes], set[str]]:
    """The stream with one of ``bset``'s texts planted in each benign session's first
    untrusted output (or first output of any tool, if it reads nothing untrusted)."""
    first_any: dict[str, str] = {}
    first_untrusted: dict[str, str] = {}
    for ev in dev.events:
        root, tool = _root(ev), ev.get("tool")
        if dev.labels.get(root, {}).get("label") != "benign" or not tool:
            continue
        if len(tool.get("output") or "") < 20:
            continue
        first_any.setdefault(root, ev["event_id"])
        if C.UNTRUSTED_INPUT in _CATALOG.name_capabilities(tool["name"]):
            first_untrusted.setdefault(root, ev["event_id"])
    target = {**first_any, **first_untrusted}
    chosen = set(target.values())

    def lines() -> Iterator[bytes]:
        for ev in dev.events:
            if ev["event_id"] in chosen:
                root = _root(ev)
                text = bset.texts[_pick(root, len(bset.texts))]
                tool = ev["tool"]
                ev = {**ev, "tool": {**tool, "output": plant(tool["output"], text)}}
            yield orjson.dumps(ev)

    return lines(), set(target)


def _share(n: int, d: int) -> float | None:
    return round(n / d, 4) if d else None


def tally_attack(
    dev: DevSet, outcomes: dict[str, Outcome], sessions: set[str]
) -> dict[str, int | float | None]:
    c = dict.fromkeys(("success", "kill", "before_harm", "inj_alert", "resisted"), 0)
    c.update(resisted_alert=0, resisted_kill=0, resisted_inj_alert=0)
    for sid in sessions:
        lab, o = dev.labels[sid], outcomes.get(sid, Outcome())
        inj = INJECTION_DETECTOR in o.alert_seqs
        if lab.get("attack_succeeded"):
            harm = lab.get("harm_seq")
            c["success"] += 1
            c["kill"] += o.killed
            c["before_harm"] += bool(
                o.killed and harm is not None and o.kill_seq is not None and o.kill_seq < harm
            )
            c["inj_alert"] += inj
        else:
            c["resisted"] += 1
            c["resisted_alert"] += o.alerted or o.killed
            c["resisted_kill"] += o.killed
            c["resisted_inj_alert"] += inj
    out: dict[str, int | float | None] = dict(c)
    out["kill_success"] = _share(c["kill"], c["success"])
    out["before_harm_rate"] = _share(c["before_harm"], c["success"])
    out["inj_alert_rate"] = _share(c["inj_alert"], c["success"])
    out["resisted_alert_rate"] = _share(c["resisted_alert"], c["resisted"])
    out["resisted_kill_rate"] = _share(c["resisted_kill"], c["resisted"])
    return out


def tally_benign(outcomes: dict[str, Outcome], sessions: set[str]) -> dict[str, int | float | None]:
    alert = sum(1 for s in sessions if outcomes.get(s, Outcome()).alerted)
    kill = sum(1 for s in sessions if outcomes.get(s, Outcome()).killed)
    return {
        "benign": len(sessions),
        "alert": alert,
        "kill": kill,
        "benign_alert": _share(alert, len(sessions)),
        "benign_kill": _share(kill, len(sessions)),
    }


def pooled(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[str, Any]:
    """Counts summed over templates, with the rates recomputed."""
    s = {k: sum(int(r[k]) for r in rows) for k in keys}
    if "success" in s:
        s["kill_success"] = _share(s["kill"], s["success"])
        s["before_harm_rate"] = _share(s["before_harm"], s["success"])
        s["inj_alert_rate"] = _share(s["inj_alert"], s["success"])
        s["resisted_alert_rate"] = _share(s["resisted_alert"], s["resisted"])
        s["resisted_kill_rate"] = _share(s["resisted_kill"], s["resisted"])
    else:
        s["benign_alert"] = _share(s["alert"], s["benign"])
        s["benign_kill"] = _share(s["kill"], s["benign"])
    return s


ATTACK_COUNTS = ("success", "kill", "before_harm", "inj_alert", "resisted", "resisted_alert")
ATTACK_COUNTS += ("resisted_kill",)


def evaluate(
    dev: DevSet,
    attacks: list[Template],
    benign: list[BenignSet],
    progress: bool = True,
) -> dict[str, Any]:
    """Score every variant; per-template results, family pools, run statistics."""
    rows: dict[str, Any] = {"attacks": {}, "benign": {}}
    t0 = time.perf_counter()
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=not progress,
    ) as bar:
        task = bar.add_task("variants", total=len(attacks) + len(benign))
        for t in attacks:
            bar.update(task, description=f"attack {t.name}")
            lines, sessions = attack_variant(dev, t)
            outcomes, _ = score_lines(lines, progress=False)
            rows["attacks"][t.name] = {
                "family": t.family,
                "lang": t.lang,
                "held_out": t.held_out,
                **tally_attack(dev, outcomes, sessions),
            }
            bar.advance(task)
        for b in benign:
            bar.update(task, description=f"benign {b.name}")
            lines, sessions = benign_variant(dev, b)
            outcomes, _ = score_lines(lines, progress=False)
            rows["benign"][b.name] = {
                "family": b.family,
                "held_out": b.held_out,
                **tally_benign(outcomes, sessions),
            }
            bar.advance(task)
    fams: dict[str, Any] = {}
    for kind, counts in (("attacks", ATTACK_COUNTS), ("benign", ("benign", "alert", "kill"))):
        by: dict[str, list[dict[str, Any]]] = {}
        for r in rows[kind].values():
            by.setdefault(r["family"], []).append(r)
        fams[kind] = {f: pooled(rs, counts) for f, rs in by.items()}
        for scope, keep in (("tuned", False), ("held_out", True)):
            rs = [r for r in rows[kind].values() if r["held_out"] == keep]
            if rs:
                fams[kind][f"ALL {scope}"] = pooled(rs, counts)
    rows["families"] = fams
    rows["seconds"] = round(time.perf_counter() - t0, 1)
    return rows


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def print_tables(console: Console, result: dict[str, Any]) -> None:
    for held in (False, True):
        rows = {k: r for k, r in result["attacks"].items() if r["held_out"] == held}
        if not rows:
            continue
        title = "HELD-OUT attack families" if held else "Attack templates (tuned families)"
        table = Table(title=title)
        for col in ("family", "template", "succ.", "killed", "before harm", "INJ alert"):
            table.add_column(col, justify="left" if col in ("family", "template") else "right")
        for col in ("resisted", "alert", "kill"):
            table.add_column(col, justify="right")
        for name, r in rows.items():
            table.add_row(
                r["family"],
                name,
                str(r["success"]),
                _pct(r["kill_success"]),
                _pct(r["before_harm_rate"]),
                _pct(r["inj_alert_rate"]),
                str(r["resisted"]),
                _pct(r["resisted_alert_rate"]),
                _pct(r["resisted_kill_rate"]),
            )
        for fam, r in result["families"]["attacks"].items():
            is_held = fam == "ALL held_out" or any(t.held_out for t in ATTACKS if t.family == fam)
            if is_held != held:
                continue
            table.add_row(
                fam,
                "(pooled)",
                str(r["success"]),
                _pct(r["kill_success"]),
                _pct(r["before_harm_rate"]),
                _pct(r["inj_alert_rate"]),
                str(r["resisted"]),
                _pct(r["resisted_alert_rate"]),
                _pct(r["resisted_kill_rate"]),
                style="bold",
            )
        console.print(table)
    table = Table(title="Benign sessions with instruction-like text planted")
    for col in ("family", "set", "sessions", "alert", "kill", "held out"):
        table.add_column(col, justify="left" if col in ("family", "set") else "right")
    for name, r in result["benign"].items():
        table.add_row(
            r["family"],
            name,
            str(r["benign"]),
            _pct(r["benign_alert"]),
            _pct(r["benign_kill"]),
            "yes" if r["held_out"] else "",
        )
    console.print(table)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    ap.add_argument("--only", default="", help="comma-separated template / benign set names")
    ap.add_argument("--tuned-only", action="store_true", help="skip the held-out families")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    console = Console(width=max(120, Console().width))
    only = {n for n in args.only.split(",") if n}
    attacks = [t for t in ATTACKS if (not only or t.name in only)]
    benign = [b for b in BENIGN if (not only or b.name in only)]
    if args.tuned_only:
        attacks = [t for t in attacks if not t.held_out]
        benign = [b for b in benign if not b.held_out]
    dev = DevSet.load(args.data)
    result = {"data": str(args.data), **evaluate(dev, attacks, benign, not args.no_progress)}
    print_tables(console, result)
    n = f"{len(attacks)} attack and {len(benign)} benign variants"
    console.print(f"{n} in {result['seconds']} s")
    args.out.mkdir(parents=True, exist_ok=True)
    name = "generality.json" if not (only or args.tuned_only) else "generality-partial.json"
    (args.out / name).write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"wrote {args.out / name}")
    return result


if __name__ == "__main__":
    main()
