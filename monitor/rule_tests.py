"""Rule fixtures: each rule's regression tests, run through the same Pipeline as the worker.

SigmaHQ's regression-test convention adapted to agent sessions: a rule's fixture file
(``tests/<rule id>.yaml`` next to the rule file, or the rule's ``tests:`` path) holds cases,
each a short session of events and what the rules must make of it::

    rule: AW-EXFIL-001
    cases:
      - name: dump then upload
        events:
          - {kind: tool_call, tool: {name: dump_database}}
          - {kind: tool_call, tool: {name: http.post, arguments: {url: "https://x.example"}}}
        expect:
          AW-EXFIL-001: {alerts: 1, evidence: [0, 1], stage: complete}
      - name: upload alone
        events: [...]
        expect: {AW-EXFIL-001: 0}

Events are the action-event contract with defaults filled in, so fixtures stay short:
``event_id`` (``<case>-<i>``), ``session.id`` (``s1``; ``session: {id: s2, parent_id: s1}``
for a sub-agent), ``session.root_id`` (the first event's session), ``session.seq``
(counted per session), ``actor.agent_id`` (``agent``, or the case's ``agent``), ``tenant``
and ``time`` (one second apart; ``after: 90s`` waits that long after the previous event,
``at: 1h`` is an offset from the case's start). ``events_file: x.jsonl`` uses raw events
instead. ``advance: 1h`` moves the clock that long past the last event at the end (timers).

``expect`` maps a rule id to the number of matches (distinct alert keys: one per root
session, or per session for ``by: session`` rules), or to a mapping of any of ``matches``,
``findings``, ``alerts`` (alert decisions emitted), ``kill`` (true/false), ``evidence``
(the last finding's events, as positions in ``events`` or ids), ``stage``, ``severity``,
``action``, ``mode``, ``message`` (a substring).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from detectors.base import Finding
from detectors.catalog import ToolCatalog
from detectors.engine import AlertDecision, Engine, KillDecision
from detectors.rules.detector import RuleDetector
from detectors.rules.expr import parse_duration
from detectors.rules.loader import BUILTIN_DIR, rule_files
from detectors.rules.model import RuleSet
from detectors.yamlsrc import Node, display_path, load_text, syntax_error
from monitor.pipeline import Pipeline
from schemas.errors import InvalidEvent
from schemas.events import ActionEvent, parse_event, validate_event

BASE_TIME = datetime(2026, 7, 1, 12, 0, 0, tzinfo=UTC)
EXPECT_KEYS = frozenset(
    {
        "matches",
        "findings",
        "alerts",
        "kill",
        "evidence",
        "stage",
        "severity",
        "action",
        "mode",
        "message",
    }
)


@dataclass
class CaseResult:
    """One fixture case: which rule, which case, and what (if anything) went wrong."""

    rule: str
    case: str
    where: str
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def fixture_dirs(paths: Sequence[Path]) -> list[Path]:
    """Where fixtures live for these rule paths: ``tests/`` next to the rule files."""
    out: list[Path] = []
    for p in paths:
        base = p if p.is_dir() else p.parent
        t = base / "tests"
        if t.is_dir() and t not in out:
            out.append(t)
    return out


def fixture_files(ruleset: RuleSet, paths: Sequence[Path]) -> dict[str, Path]:
    """rule id -> its fixture file, for the rules loaded from ``paths``."""
    found: dict[str, Path] = {}
    for d in fixture_dirs(paths):
        for f in sorted(d.glob("*.y*ml")):
            found.setdefault(f.stem, f)
    for rule in ruleset.rules.values():
        if rule.tests is not None:
            found[rule.id] = rule.tests
    return found


def rules_under(ruleset: RuleSet, paths: Sequence[Path]) -> list[str]:
    """Ids of the rules defined in ``paths`` (not in files loaded before them)."""
    names = {display_path(f) for p in paths for f in rule_files(p)}
    return [r.id for r in ruleset.rules.values() if r.where.rsplit(":", 1)[0] in names]


def run_fixtures(
    ruleset: RuleSet,
    paths: Sequence[Path] = (BUILTIN_DIR,),
    *,
    catalog: ToolCatalog | None = None,
    require: bool = True,
) -> list[CaseResult]:
    """Run every fixture of the rules defined in ``paths``; one result per case."""
    files = fixture_files(ruleset, paths)
    results: list[CaseResult] = []
    for rid in rules_under(ruleset, paths):
        f = files.get(rid)
        if f is None:
            if require:
                results.append(CaseResult(rid, "-", ruleset.rules[rid].where, ["no fixture file"]))
            continue
        results.extend(run_fixture_file(ruleset, f, catalog=catalog))
    return results


def run_fixture_file(
    ruleset: RuleSet, path: Path, *, catalog: ToolCatalog | None = None
) -> list[CaseResult]:
    name = display_path(path)
    try:
        doc = load_text(path.read_text(encoding="utf-8"), name)
    except (OSError, yaml.YAMLError) as exc:
        msg = syntax_error(exc, name) if isinstance(exc, yaml.YAMLError) else str(exc)
        return [CaseResult(path.stem, "-", name, [msg])]
    if not isinstance(doc, Node) or not isinstance(doc.get("cases"), list):
        return [CaseResult(path.stem, "-", name, ["a fixture file needs 'rule' and 'cases'"])]
    rid = str(doc.get("rule", path.stem))
    if rid not in ruleset.rules:
        return [CaseResult(rid, "-", doc.where("rule"), [f"no rule '{rid}' is loaded"])]
    results = []
    for i, case in enumerate(doc["cases"]):
        if not isinstance(case, Node):
            results.append(CaseResult(rid, f"#{i + 1}", name, ["a case must be a mapping"]))
            continue
        results.append(run_case(ruleset, rid, case, path.parent, catalog=catalog))
    return results


def run_case(
    ruleset: RuleSet,
    rid: str,
    case: Node,
    base: Path,
    *,
    catalog: ToolCatalog | None = None,
) -> CaseResult:
    cname = str(case.get("name", f"line {case.line}"))
    result = CaseResult(rid, cname, case.where())
    try:
        events = build_events(case, base)
    except (InvalidEvent, ValueError, OSError) as exc:
        result.problems.append(f"bad events: {exc}")
        return result
    findings: dict[str, list[Finding]] = defaultdict(list)
    detector = RuleDetector(ruleset, listener=lambda f: findings[f.detector].append(f))
    pipe = Pipeline(Engine([detector], catalog))
    decisions: list[Any] = []
    for i, ev in enumerate(events):
        decisions.extend(pipe.process(ev, now=float(i)))
    advance = parse_duration(case.get("advance")) if "advance" in case else None
    if advance is not None and events:
        clock = max(e.ts for e in events) + advance
        decisions.extend(pipe.tick(float(len(events)), event_time=clock))
    ids = [e.event_id for e in events]
    expect = case.get("expect")
    if not isinstance(expect, dict) or not expect:
        result.problems.append("a case needs 'expect' (rule id -> matches)")
        return result
    for erid, want in expect.items():
        if erid not in ruleset.rules:
            result.problems.append(f"expect names unknown rule '{erid}'")
            continue
        result.problems.extend(check(erid, want, findings.get(erid, []), decisions, ids))
    return result


def check(
    rid: str, want: Any, found: list[Finding], decisions: list[Any], ids: list[str]
) -> list[str]:
    """What differs between what a rule did and what the case expects of it."""
    spec: dict[str, Any] = {"matches": want} if isinstance(want, int) else dict(want or {})
    problems = [f"{rid}: unknown expectation '{k}'" for k in spec if k not in EXPECT_KEYS]
    keys = {f.alert_key for f in found}
    alerts = {
        d.alert.uid: d
        for d in decisions
        if isinstance(d, AlertDecision) and d.alert.detector == rid
    }
    kills = [d for d in decisions if isinstance(d, KillDecision) and d.detector == rid]
    got: dict[str, Any] = {
        "matches": len(keys),
        "findings": len(found),
        "alerts": len(alerts),
        "kill": bool(kills),
    }
    last = found[-1] if found else None
    if last is not None:
        got.update(
            evidence=list(last.evidence),
            stage=last.stage,
            severity=last.severity,
            action=last.action,
            mode=last.mode,
            message=last.message,
        )
    for key, value in spec.items():
        if key not in EXPECT_KEYS:
            continue
        have = got.get(key)
        if key == "evidence":
            value = [ids[v] if isinstance(v, int) and 0 <= v < len(ids) else str(v) for v in value]
        if key == "message":
            if have is None or str(value) not in have:
                problems.append(f"{rid}: message {have!r} lacks {value!r}")
        elif have != value:
            problems.append(f"{rid}: {key} is {have!r}, expected {value!r}")
    return problems


def build_events(case: Node, base: Path | None = None) -> list[ActionEvent]:
    """The case's events, with defaults filled in (see the module docstring)."""
    if "events_file" in case:
        text = ((base or Path(".")) / str(case["events_file"])).read_text(encoding="utf-8")
        return [parse_event(line) for line in text.splitlines() if line.strip()]
    raw = case.get("events")
    if not isinstance(raw, list) or not raw:
        raise ValueError("'events' must be a non-empty list")
    slug = re.sub(r"[^a-z0-9]+", "-", str(case.get("name", "case")).lower()).strip("-")[:40]
    agent = str(case.get("agent", "agent"))
    seqs: dict[str, int] = defaultdict(int)
    root: str | None = None
    clock = BASE_TIME
    out = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise ValueError(f"event {i} is not a mapping")
        doc = json.loads(json.dumps(item, default=str))
        step = 0.0 if i == 0 else 1.0
        start = clock
        for key in ("after", "at"):
            if key in doc:
                d = parse_duration(doc.pop(key))
                if d is None:
                    raise ValueError(f"event {i}: '{key}' is not a duration")
                step, start = (d, clock) if key == "after" else (d, BASE_TIME)
        if "time" in doc:
            clock = datetime.fromisoformat(str(doc["time"]).replace("Z", "+00:00"))
        else:
            clock = start + timedelta(seconds=step)
            doc["time"] = clock.isoformat().replace("+00:00", "Z")
        session = doc.setdefault("session", {})
        if isinstance(session, str):
            session = doc["session"] = {"id": session}
        sid = session.setdefault("id", "s1")
        root = root or session.get("root_id") or sid
        session.setdefault("root_id", root)
        if "seq" not in session:
            session["seq"] = seqs[sid]
        seqs[sid] = int(session["seq"]) + 1
        doc.setdefault("event_id", f"{slug}-{i}")
        doc.setdefault("tenant", "test")
        actor = doc.setdefault("actor", {})
        actor.setdefault("agent_id", agent)
        out.append(validate_event(doc))
    return out
