"""The traffic simulator: deterministic with a seed, valid contract events, realistic shape,
labels that point at real events, and every attack family present."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from monitor.attacks import ATTACKS
from monitor.cli import app
from monitor.scenarios import BENIGN
from monitor.simulator import Simulator, generate
from schemas.events import parse_event, validate_event


@pytest.fixture(scope="module")
def sim() -> tuple[Simulator, list[dict[str, Any]]]:
    s = Simulator(seed=11, sessions=500, attack_ratio=0.3)
    return s, list(s.events())


def test_same_seed_same_events_other_seed_other_events() -> None:
    a = list(generate(3, sessions=40, attack_ratio=0.5))
    assert a == list(generate(3, sessions=40, attack_ratio=0.5))
    assert a != list(generate(4, sessions=40, attack_ratio=0.5))


def test_every_event_is_a_valid_contract_event(sim: Any) -> None:
    _, events = sim
    for doc in events:
        ev = parse_event(json.dumps(doc))
        assert ev.event_id == doc["event_id"]
    assert len({e["event_id"] for e in events}) == len(events)


def test_events_are_in_time_order_and_sessions_interleave(sim: Any) -> None:
    _, events = sim
    times = [e["time"] for e in events]
    assert times == sorted(times)
    # between the first and last event of a session, other sessions' events arrive
    span: dict[str, list[int]] = defaultdict(list)
    for i, e in enumerate(events):
        span[e["session"]["root_id"]].append(i)
    interleaved = sum(1 for idx in span.values() if idx[-1] - idx[0] + 1 > len(idx))
    assert interleaved > len(span) * 0.8


def test_sessions_are_well_formed_trees(sim: Any) -> None:
    _, events = sim
    by_session: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        by_session[e["session"]["id"]].append(e)
    children = set()
    for e in events:
        if e["kind"] == "delegation":
            d = e["delegation"]
            children.add(d["child_session_id"])
            child = by_session[d["child_session_id"]]
            assert child[0]["kind"] == "session_start"
            assert child[0]["session"]["root_id"] == e["session"]["root_id"]
            assert child[0]["session"]["parent_id"] == e["session"]["id"]
            assert child[0]["actor"]["agent_id"] == d["child_agent_id"] and d["scopes_granted"]
    assert children
    for evs in by_session.values():
        assert [e["session"]["seq"] for e in evs] == list(range(len(evs)))
        assert evs[0]["kind"] == "session_start"


def test_shape_is_realistic(sim: Any) -> None:
    s, events = sim
    kinds = Counter(e["kind"] for e in events)
    assert set(kinds) == {
        "session_start",
        "tool_call",
        "delegation",
        "credential_issued",
        "session_end",
    }
    tools = Counter(e["tool"]["name"] for e in events if e["kind"] == "tool_call")
    assert len(tools) >= 40
    for name in (
        "vault.read_secret",
        "kubectl.apply",
        "gmail.send_email",
        "slack.post_message",
        "github.create_pull_request",
        "browser.get_webpage",
        "s3.put_object",
    ):
        assert name in tools
    agents = Counter(lab.agent_id for lab in s.labels.values())
    assert set(BENIGN) <= set(agents)
    starts = [e for e in events if e["kind"] == "session_start" and e.get("intent")]
    assert sum(1 for e in starts if e["intent"].get("allowed_tools")) > len(starts) * 0.2
    with_cred = [e for e in events if e["actor"].get("credential")]
    assert with_cred and all(e["actor"]["credential"]["jti"] for e in with_cred)


def test_labels_name_real_harmful_events(sim: Any) -> None:
    s, events = sim
    by_id = {e["event_id"]: e for e in events}
    attacks = [lab for lab in s.labels.values() if lab.label == "attack"]
    assert 0.2 < len(attacks) / len(s.labels) < 0.4
    assert {lab.attack_type for lab in attacks} == set(ATTACKS)
    for lab in attacks:
        harm = by_id[lab.harm_event_id]
        assert harm["session"]["root_id"] == lab.session_id
        assert harm["session"]["seq"] == lab.harm_seq
        assert harm["session"]["id"] == lab.harm_session_id
    assert all(lab.harm_event_id is None for lab in s.labels.values() if lab.label == "benign")


def test_attacks_are_not_keyed_on_one_string(sim: Any) -> None:
    s, events = sim
    by_id = {e["event_id"]: e for e in events}
    for kind in ATTACKS:
        harms = [by_id[lab.harm_event_id] for lab in s.labels.values() if lab.attack_type == kind]
        destinations = {(h.get("transfer") or {}).get("destination") for h in harms}
        tools = {h["tool"]["name"] for h in harms}
        assert len(tools) > 1 or len(destinations) > 1, kind


def test_credential_used_after_its_session_ended(sim: Any) -> None:
    """Each credential_after_end attack presents, after the end of the session it was issued
    to, a credential issued there: replayed by the same session, or handed to another."""
    s, events = sim
    issued_to: dict[str, str] = {}
    ended: set[str] = set()
    late: set[str] = set()
    for e in events:
        if e["kind"] == "credential_issued":
            issued_to[e["credential_issued"]["jti"]] = e["session"]["id"]
        elif e["kind"] == "session_end":
            ended.add(e["session"]["id"])
        cred = e["actor"].get("credential") or {}
        if e["kind"] == "tool_call" and issued_to.get(cred.get("jti", "")) in ended:
            late.add(e["session"]["root_id"])
    attacks = {k for k, lab in s.labels.items() if lab.attack_type == "credential_after_end"}
    assert attacks and attacks <= late
    notes = {s.labels[k].note for k in attacks}
    assert notes == {"replayed", "handed-on"}
    benign = {k for k, lab in s.labels.items() if lab.label == "benign"}
    assert not benign & late


def test_planted_secrets_are_in_outputs(sim: Any) -> None:
    s, events = sim
    outputs = "\n".join((e.get("tool") or {}).get("output") or "" for e in events)
    assert s.secrets and all(secret in outputs for secret in s.secrets)


def test_labelled_export(tmp_path: Path) -> None:
    out, labels = tmp_path / "ev.jsonl", tmp_path / "lab.jsonl"
    res = CliRunner().invoke(
        app,
        [
            "simulate",
            "--out",
            str(out),
            "--labels",
            str(labels),
            "--sessions",
            "50",
            "--attack-ratio",
            "0.4",
            "--seed",
            "5",
        ],
    )
    assert res.exit_code == 0, res.output
    evs = [json.loads(line) for line in out.read_text().splitlines()]
    labs = [json.loads(line) for line in labels.read_text().splitlines()]
    assert len(labs) == 50 and {lab["label"] for lab in labs} == {"attack", "benign"}
    assert {e["session"]["root_id"] for e in evs} == {lab["session_id"] for lab in labs}
    for e in evs[:50]:
        validate_event(e)
