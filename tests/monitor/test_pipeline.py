"""The pipeline core without Kafka: dedup, ordering, lifecycle, one kill per session."""

from __future__ import annotations

import copyreg
import dataclasses
import io
import json
import os
import pickle
import random
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Any

from detectors.engine import AlertDecision, KillDecision
from detectors.registry import build_engine
from monitor.pipeline import Evicted, LateEvent, Pipeline, PipelineSettings, Tombstone
from schemas.events import ActionEvent, parse_event


def ev(seq: int, kind: str, tool: str | None = None, sid: str = "s1", **extra: Any) -> ActionEvent:
    doc: dict[str, Any] = {
        "event_id": f"{sid}-e{seq}",
        "time": f"2026-07-01T12:00:{seq:02d}Z",
        "kind": kind,
        "session": {"id": sid, "seq": seq},
        "actor": {"agent_id": "billing-agent"},
    }
    if tool:
        doc["tool"] = {"name": tool}
    doc.update(extra)
    return parse_event(json.dumps(doc))


def trifecta(sid: str = "s1") -> list[ActionEvent]:
    return [
        ev(0, "session_start", sid=sid),
        ev(1, "tool_call", "vault.read_secret", sid=sid),
        ev(
            2,
            "tool_call",
            "db.update_rows",
            sid=sid,
            resources=[{"type": "table", "environment": "prod"}],
        ),
        ev(
            3,
            "tool_call",
            "http.post",
            sid=sid,
            transfer={"destination": "https://paste.example.net/x", "external": True},
        ),
        ev(4, "session_end", sid=sid),
    ]


def run(events: list[ActionEvent], settings: PipelineSettings | None = None) -> list[Any]:
    p = Pipeline(build_engine(), settings)
    out: list[Any] = []
    for i, e in enumerate(events):
        out += p.process(e, now=float(i))
    out += p.tick(10_000.0)
    return out


def summary(out: list[Any]) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    for d in out:
        if isinstance(d, AlertDecision):
            rows.append(
                (
                    "alert",
                    d.alert.uid,
                    tuple(d.alert.evidence),
                    d.alert.response,
                    d.alert.trigger_seq,
                    d.alert.kill_jti,
                )
            )
        elif isinstance(d, KillDecision):
            rows.append(("kill", d.jti, d.alert_uid, d.trigger_seq))
    return rows


def test_combination_gives_one_alert_and_one_kill() -> None:
    out = [
        d
        for d in run(trifecta())
        if isinstance(d, KillDecision)
        or (isinstance(d, AlertDecision) and d.alert.key == "AW-COMBO-001")
    ]
    rows = summary(out)
    assert [r[0] for r in rows] == ["alert", "kill"]
    assert rows[0][2] == ("s1-e1", "s1-e2", "s1-e3")
    assert rows[0][3] == "kill_session" and rows[0][4] == 3
    assert rows[1][2] == rows[0][1] and rows[0][5] == rows[1][1]


def test_duplicates_and_shuffles_give_the_same_decisions() -> None:
    clean = summary(run(trifecta()))
    rng = random.Random(7)
    for _ in range(20):
        events = trifecta() + [rng.choice(trifecta())]
        rng.shuffle(events)
        assert summary(run(events)) == clean


def test_event_later_than_grace_is_not_evaluated() -> None:
    events = trifecta()
    late = ev(1, "tool_call", "vault.read_secret", sid="s1")
    doc = json.loads(late.model_dump_json())
    doc["event_id"] = "late-one"
    doc["time"] = "2026-07-01T10:00:00Z"
    doc["session"]["seq"] = 1
    out = run(events[:3] + [parse_event(json.dumps(doc))], PipelineSettings(grace_s=60))
    lates = [o for o in out if isinstance(o, LateEvent)]
    assert len(lates) == 1 and lates[0].event.event_id == "late-one"
    assert lates[0].lateness_s > 60


def test_sessions_are_evicted_after_end_and_idle() -> None:
    p = Pipeline(build_engine(), PipelineSettings(ended_ttl_s=10, idle_ttl_s=100))
    for e in trifecta("a"):
        p.process(e, now=0.0)
    p.process(ev(0, "session_start", sid="b"), now=0.0)
    assert {o.root_session_id for o in p.tick(50.0) if isinstance(o, Evicted)} == {"a"}
    assert [o.reason for o in p.tick(200.0) if isinstance(o, Evicted)] == ["idle"]
    assert len(p) == 0


def ev_at(seq: int, kind: str, sid: str, minute: int) -> ActionEvent:
    return ev(seq, kind, sid=sid, time=f"2026-07-01T12:{minute:02d}:{seq:02d}Z")


T0 = ev_at(0, "session_start", "x", 0).ts  # 12:00:00 as epoch seconds


def test_a_catching_up_worker_evicts_ended_sessions_on_event_time() -> None:
    """A backlog read fast: 20 minutes of traffic in 4 minutes of processing. Sessions that
    ended more than ``ended_ttl_s`` of event time ago go once they have been idle
    ``ended_min_idle_s``; a session still running does not, nor does anything without the
    wall clock (``agentwatch score``, whose processing time is event time already)."""
    settings = PipelineSettings(ended_ttl_s=300, ended_min_idle_s=60, idle_ttl_s=3600)
    with_wall, without = Pipeline(build_engine(), settings), Pipeline(build_engine(), settings)
    for p in (with_wall, without):
        for e in (ev_at(0, "session_start", "old", 0), ev_at(1, "session_end", "old", 0)):
            p.process(e, now=0.0)
        p.process(ev_at(0, "session_start", "running", 0), now=0.0)
        p.process(ev_at(0, "session_start", "late", 20), now=240.0)  # event clock: 12:20
    wall = T0 + 3 * 3600  # the worker's wall clock, far ahead of the backlog's event time
    assert [(o.root_session_id, o.reason) for o in with_wall.tick(240.0, wall=wall)] == [
        ("old", "ended")
    ]
    assert set(with_wall.sessions) == {"running", "late"}
    assert not [o for o in without.tick(240.0) if isinstance(o, Evicted)]
    assert not [o for o in without.tick(240.0, wall=None) if isinstance(o, Evicted)]


def test_event_time_eviction_waits_the_least_processing_time() -> None:
    settings = PipelineSettings(ended_ttl_s=300, ended_min_idle_s=60)
    p = Pipeline(build_engine(), settings)
    for e in (ev_at(0, "session_start", "old", 0), ev_at(1, "session_end", "old", 0)):
        p.process(e, now=0.0)
    p.process(ev_at(0, "session_start", "new", 30), now=10.0)  # 30 minutes later in event time
    assert not p.tick(59.0, wall=T0 + 3600)  # due on event time, idle only 59 s
    assert [o.root_session_id for o in p.tick(60.0, wall=T0 + 3600)] == ["old"]


def test_the_event_clock_never_runs_ahead_of_the_wall_clock() -> None:
    """One event stamped far in the future does not age every other session."""
    settings = PipelineSettings(ended_ttl_s=300, ended_min_idle_s=60)
    p = Pipeline(build_engine(), settings)
    for e in (ev_at(0, "session_start", "a", 0), ev_at(1, "session_end", "a", 0)):
        p.process(e, now=0.0)
    future = ev(0, "session_start", sid="f", time="2099-01-01T00:00:00Z")
    p.process(future, now=1.0)
    assert p.max_event_ts == future.ts
    assert not p.tick(120.0, wall=T0 + 200)  # capped at the wall: 200 s after the end
    assert [o.root_session_id for o in p.tick(120.0, wall=T0 + 301)] == ["a"]


def test_a_session_whose_clock_runs_behind_is_evicted_on_event_time_only_after_the_floor() -> None:
    """An agent stamping its events an hour behind: its ended session looks an hour old on
    event time, and is still kept ``ended_min_idle_s`` of processing time. Behind an ended
    session that is young on both clocks it is kept longer: the scan of ended sessions stops
    there (processing-time order), and the session goes on processing time. A running
    session in between does not stop it."""
    settings = PipelineSettings(ended_ttl_s=300, ended_min_idle_s=60)
    p = Pipeline(build_engine(), settings)
    for e in (ev_at(0, "session_start", "behind", 0), ev_at(1, "session_end", "behind", 0)):
        p.process(e, now=0.0)
    p.process(ev_at(0, "session_start", "running", 58), now=4.0)  # young on both clocks
    for e in (ev_at(0, "session_start", "behind3", 0), ev_at(1, "session_end", "behind3", 0)):
        p.process(e, now=4.5)
    for e in (ev_at(0, "session_start", "now", 59), ev_at(1, "session_end", "now", 59)):
        p.process(e, now=5.0)  # event clock 12:59
    for e in (ev_at(0, "session_start", "behind2", 0), ev_at(1, "session_end", "behind2", 0)):
        p.process(e, now=6.0)
    assert not p.tick(59.0, wall=T0 + 3600)
    gone = p.tick(70.0, wall=T0 + 3600)
    assert [o.root_session_id for o in gone] == ["behind", "behind3"]  # "running" in between
    assert "behind2" in p.sessions  # behind "now" in the scan
    assert [o.root_session_id for o in p.tick(306.0, wall=T0 + 3600)] == ["now", "behind2"]
    assert set(p.sessions) == {"running"}


def test_a_tick_does_not_walk_running_sessions_idling_between_the_ttls() -> None:
    """Agents that stop without a ``session_end`` idle for up to ``idle_ttl_s`` (an hour by
    default) before they go: a tick looks at the ended sessions and at the idle scan's first
    session, not at every one of those (one scan over all sessions used to walk them all,
    four times a second in the worker: ~10 ms a tick at 20,000 of them)."""

    class Counted(OrderedDict[str, Any]):
        looked_at = 0

        def items(self) -> Any:
            for kv in super().items():
                Counted.looked_at += 1
                yield kv

        def __iter__(self) -> Any:
            for k in super().__iter__():
                Counted.looked_at += 1
                yield k

    settings = PipelineSettings(ended_ttl_s=300, ended_min_idle_s=60, idle_ttl_s=3600)
    p = Pipeline(build_engine(), settings)
    p.sessions = Counted()
    for i in range(1000):
        p.process(ev(0, "session_start", sid=f"run{i}"), now=0.0)
    for i in range(3):
        for e in (ev(0, "session_start", sid=f"end{i}"), ev(1, "session_end", sid=f"end{i}")):
            p.process(e, now=10.0)
    Counted.looked_at = 0
    assert [o.root_session_id for o in p.tick(400.0)] == ["end0", "end1", "end2"]
    assert Counted.looked_at <= 2, Counted.looked_at
    assert len(p) == 1000
    Counted.looked_at = 0
    assert not p.tick(401.0)
    assert Counted.looked_at <= 1
    gone = p.tick(3601.0)  # an hour idle: every running one, in order
    assert [o.reason for o in gone] == ["idle"] * 1000 and len(p) == 0


def test_a_restored_session_recognises_events_it_already_holds_in_another_process(
    tmp_path: Path,
) -> None:
    """After a restart, events between the checkpoint's resume offset and what the state holds
    are read again: the restored session must see them as duplicates, not process them twice
    (the dedup keys are checkpointed, so they must not depend on the process's hash seed)."""
    p = Pipeline(build_engine())
    events = trifecta()[:3]
    for i, e in enumerate(events):
        p.process(e, now=float(i))
    blob = p.snapshot("s1")
    assert blob is not None
    (tmp_path / "s1.bin").write_bytes(blob)
    code = f"""
import json
from detectors.registry import build_engine
from monitor.pipeline import Pipeline
from tests.monitor.test_pipeline import trifecta
p = Pipeline(build_engine())
p.restore("s1", open({str(tmp_path / "s1.bin")!r}, "rb").read(), now=0.0)
outs = [p.process(e, now=1.0) for e in trifecta()[:3]]
print(json.dumps([p.stats.duplicates, p.stats.processed, sum(map(len, outs))]))
"""
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "4242"},
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [3, 0, 0]


def test_an_ended_session_acting_after_eviction_is_still_recognised() -> None:
    """A replayed credential minutes after the end: the tombstone keeps the end and last seq."""
    p = Pipeline(build_engine(), PipelineSettings(ended_ttl_s=10, tombstone_ttl_s=3600))
    start = ev(0, "session_start", sid="r")
    for e in (
        start,
        ev(1, "tool_call", "reports.get_usage", sid="r"),
        ev(2, "session_end", sid="r"),
    ):
        p.process(e, now=0.0)
    assert any(isinstance(o, Evicted) for o in p.tick(60.0))
    replay = ev(3, "tool_call", "s3.get_object", sid="r", time="2026-07-01T12:20:00Z")
    out = p.process(replay, now=600.0)  # no wait for seq 0-2: they were processed long ago
    kills = [o for o in out if isinstance(o, KillDecision)]
    assert [k.detector for k in kills] == ["AW-REVOKE-001"]
    assert kills[0].trigger_event_id == "r-e3"


def test_tombstones_expire() -> None:
    p = Pipeline(build_engine(), PipelineSettings(ended_ttl_s=10, tombstone_ttl_s=100))
    for e in (ev(0, "session_start", sid="r"), ev(1, "session_end", sid="r")):
        p.process(e, now=0.0)
    p.tick(60.0)
    p.tick(500.0)  # the tombstone is older than its ttl
    out = p.process(ev(2, "tool_call", "s3.get_object", sid="r"), now=500.0)
    out += p.tick(510.0)  # the gap (seq 0-1 unknown) is waited out, then processed
    assert not [o for o in out if isinstance(o, KillDecision)]


def test_a_killed_session_is_not_killed_twice_after_eviction() -> None:
    p = Pipeline(build_engine(), PipelineSettings(ended_ttl_s=10))
    out: list[Any] = []
    for e in trifecta("k"):
        out += p.process(e, now=0.0)
    assert len([o for o in out if isinstance(o, KillDecision)]) == 1
    p.tick(60.0)
    out_again = {"destination": "https://paste.example.net/y", "external": True}
    late = ev(5, "tool_call", "http.post", sid="k", time="2026-07-01T12:01:00Z", transfer=out_again)
    again = p.process(late, now=70.0)
    assert not [o for o in again if isinstance(o, KillDecision)]
    assert "AW-REVOKE-002" in {o.alert.detector for o in again if isinstance(o, AlertDecision)}


def test_an_open_gap_costs_no_sort_per_event_and_held_duplicates_are_skipped(
    monkeypatch: Any,
) -> None:
    """Regression (found by the fuzz test): while a session held events behind a gap, every
    further event of it scanned the held ones for a duplicate and sorted them, so one session
    with ``max_pending`` held events made each of its events ~100x dearer."""
    import monitor.pipeline as pipeline_module
    from schemas.events import validate_event
    from tests.monitor.harness import event

    def e(sid: str, seq: int) -> ActionEvent:
        kind = "session_start" if seq == 0 else "tool_call"
        return validate_event(event(sid, seq, kind, "fs.read_file", root="s1"))

    p = Pipeline(build_engine(), PipelineSettings(max_pending=1024))
    p.process(e("s1", 0), now=0.0)
    held = [e("s1", i) for i in range(2, 900)]  # seq 1 is missing
    for i, x in enumerate(held):
        p.process(x, now=1.0, partition=0, offset=i)
    assert p.stats.held_back == len(held)
    sorts: list[int] = []
    real_sorted = sorted

    def counting_sorted(items: Any, **kw: Any) -> Any:
        sorts.append(1)
        return real_sorted(items, **kw)

    monkeypatch.setattr(pipeline_module, "sorted", counting_sorted, raising=False)
    for i in range(300):  # a child session of the same root, in order, while the gap stays
        p.process(e("s1-child", i), now=2.0)
    assert sorts == []
    for x in held[:50]:  # re-delivered while held back: skipped, not held twice
        assert p.process(x, now=3.0) == []
    assert p.stats.duplicates == 50 and p.stats.held_back == len(held)
    out = p.process(e("s1", 1), now=4.0)  # the gap fills: everything held is released
    assert len(sorts) == 1
    assert p.stats.processed == 1 + 300 + 1 + len(held)
    assert p.lowest_held_offset(0) is None
    session = p.sessions["s1"]
    assert session.pending == () and session.members["s1"].last_seq == 899
    assert not any(isinstance(o, LateEvent) for o in out)


def test_sub_agents_that_come_and_go_leave_bounded_state() -> None:
    """Regression (found by the flood test): risk contributions, rule keys and rule report
    counters were kept per sub-agent session forever, so a delegation tree whose sub-agents
    come and go grew without bound (and fusing its contributions cost more on every event)."""
    from detectors.rules.matching import MAX_KEYS
    from detectors.session import MAX_CONTRIBUTIONS
    from schemas.events import validate_event
    from tests.monitor.harness import event

    p = Pipeline(build_engine())
    p.process(validate_event(event("s1", 0, "session_start")), now=0.0)
    subs = MAX_CONTRIBUTIONS + 100
    for k in range(subs):
        sid = f"s1-sub{k}"
        for doc in (
            event(sid, 0, "session_start", root="s1"),
            event(
                sid,
                1,
                "tool_call",
                "http.post",
                root="s1",
                transfer={"destination": f"https://h{k}.example.net/in", "external": True},
            ),
        ):
            doc["session"]["parent_id"] = "s1"
            p.process(validate_event(doc), now=1.0)
    session = p.sessions["s1"]
    per_member = [k for k in session.contributions if k.startswith("AW-EGRESS-001:")]
    assert len(per_member) > MAX_CONTRIBUTIONS // 2  # the rule did fire per sub-agent...
    assert len(session.contributions) <= MAX_CONTRIBUTIONS  # ... and the state is capped
    rules = session.det["rules"]
    for keys in rules.r.values():
        assert len(keys.get("#", {})) <= MAX_KEYS
        assert len([k for k in keys if k != "#"]) <= MAX_KEYS


def test_tombstones_survive_a_checkpoint_round_trip() -> None:
    """A restarted worker still recognises a killed session acting on: the tombstone is in
    the checkpoint (and dropped from it when it expires)."""
    settings = PipelineSettings(ended_ttl_s=10, tombstone_ttl_s=3600)
    p = Pipeline(build_engine(), settings)
    out: list[Any] = []
    for e in trifecta("k"):
        out += p.process(e, now=0.0)
    assert len([o for o in out if isinstance(o, KillDecision)]) == 1
    p.take_dirty()
    p.tick(60.0)  # killed, then idle: evicted, a tombstone remains
    assert "k" not in p.sessions and p.tombstones == ["k"]
    assert p.take_dirty() == {"k"}  # the checkpoint writes the tombstone, not None
    blob = p.snapshot("k")
    assert blob is not None

    restarted = Pipeline(build_engine(), settings)
    restarted.restore("k", blob, now=1000.0)
    assert restarted.tombstones == ["k"] and "k" not in restarted.sessions
    out_again = {"destination": "https://paste.example.net/y", "external": True}
    late = ev(5, "tool_call", "http.post", sid="k", time="2026-07-01T12:01:00Z", transfer=out_again)
    again = restarted.process(late, now=1010.0)
    assert not [o for o in again if isinstance(o, KillDecision)]  # not a second kill signal
    assert "AW-REVOKE-002" in {o.alert.detector for o in again if isinstance(o, AlertDecision)}

    forgotten = Pipeline(build_engine(), settings)
    forgotten.restore("k", blob, now=0.0)
    forgotten.take_dirty()
    forgotten.tick(4000.0)  # older than its ttl: forgotten, and the checkpoint says so
    assert forgotten.tombstones == [] and forgotten.take_dirty() == {"k"}
    assert forgotten.snapshot("k") is None


class _TombstoneBefore(pickle.Pickler):
    """Pickles a tombstone as before its flat form: the frozen dataclass's own state."""

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is Tombstone:
            state = [getattr(obj, f.name) for f in dataclasses.fields(obj)]
            return (copyreg.__newobj__, (Tombstone,), state)  # type: ignore[attr-defined]
        return NotImplemented


def test_tombstones_pickled_as_dataclasses_before_the_flat_form_still_load() -> None:
    """A checkpoint written before tombstones pickled flat (``Tombstone.__reduce__``) holds
    the dataclass's own state: it loads, and the restarted worker still recognises the kill."""
    settings = PipelineSettings(ended_ttl_s=10, tombstone_ttl_s=3600)
    p = Pipeline(build_engine(), settings)
    for e in trifecta("k"):
        p.process(e, now=0.0)
    p.tick(60.0)
    stone = p._tombstones["k"][1]  # noqa: SLF001 (what the checkpoint pickles)
    buf = io.BytesIO()
    _TombstoneBefore(buf, pickle.HIGHEST_PROTOCOL).dump(stone)
    for blob in (buf.getvalue(), p.snapshot("k")):
        assert blob is not None
        restarted = Pipeline(build_engine(), settings)
        restarted.restore("k", blob, now=1000.0)
        back = restarted._tombstones["k"][1]  # noqa: SLF001
        assert back.kill_jti == stone.kill_jti and back.last_ts == stone.last_ts
        assert [m.__getstate__() for m in back.members] == [m.__getstate__() for m in stone.members]


def test_ended_sessions_restored_or_ended_by_released_events_go_after_the_ended_ttl() -> None:
    """The ended sessions' own scan must know every ended session: one restored from a
    checkpoint, and one whose ``session_end`` was held back for a gap and released by a tick,
    go after ``ended_ttl_s``, not after ``idle_ttl_s``."""
    settings = PipelineSettings(ended_ttl_s=10, idle_ttl_s=1000, reorder_wait_s=1)
    before = Pipeline(build_engine(), settings)
    for e in (ev(0, "session_start", sid="r"), ev(1, "session_end", sid="r")):
        before.process(e, now=0.0)
    blob = before.snapshot("r")
    p = Pipeline(build_engine(), settings)
    p.restore("r", blob, now=0.0)
    p.process(ev(0, "session_start", sid="gap"), now=0.0)
    p.process(ev(2, "session_end", sid="gap"), now=0.0)  # seq 1 missing: held back
    assert not p.tick(2.0)  # the wait is over: released, and the session ends
    assert p.sessions["gap"].ended
    assert [(o.root_session_id, o.reason) for o in p.tick(11.0)] == [
        ("r", "ended"),
        ("gap", "ended"),
    ]
