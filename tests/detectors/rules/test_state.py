"""Per-session rule state: what a timer keeps, and checkpoints of the earlier layout."""

from __future__ import annotations

import pickle

from detectors.engine import Engine
from detectors.rules.detector import RuleDetector
from detectors.rules.loader import load_text_rules
from detectors.rules.matching import RuleState, SeqKey
from detectors.smallmap import SmallMap
from monitor.pipeline import Pipeline
from tests.detectors.rules.helpers import call, events, run

ABS = """
- rule: ABS
  title: a not followed by b
  priority: HIGH
  by: session
  output: "%tool.name by %actor.agent_id in %session.id, nothing within %window (%rule.id)"
  absence:
    after: tool.name = a
    expect: tool.name = b
    within: 1m
"""


def test_a_timer_keeps_its_fields_not_its_message_and_renders_the_same_text() -> None:
    r = run(ABS, events(call("a"), call("c", after="10s")))
    assert r.pipeline is not None
    [timer] = r.pipeline.sessions["s1"].det["rules"].r["ABS"]["s1"].t
    assert timer[6] == ("tool.name", "a", "actor.agent_id", "agent", "session.id", "s1")
    fired = run(ABS, events(call("a"), call("c", after="61s")))
    [finding] = fired.of("ABS")
    assert finding.message == "a by agent in s1, nothing within 1m (ABS)"
    assert finding.evidence == ("t-0",) and finding.key == "ABS:s1"


def test_a_reload_that_rewrites_the_output_renders_the_new_sentence() -> None:
    det = RuleDetector(load_text_rules(ABS))
    pipe = Pipeline(Engine([det]))
    evs = events(call("a"), call("c", after="61s"))
    pipe.process(evs[0], now=0.0)
    det.swap(load_text_rules(ABS.replace("nothing within", "still waiting after")))
    [decision] = pipe.process(evs[1], now=1.0)
    assert decision.alert.message == "a by agent in s1, still waiting after 1m (ABS)"  # type: ignore[union-attr]


def test_a_checkpoint_of_the_pairs_layout_is_converted_and_its_timer_fires_as_rendered() -> None:
    """State pickled before timers kept their fields: ``[shape, keys]`` per rule, counts keyed
    by the finding's key, a sequence key's ``p``/``t`` map, the timer's message rendered."""
    det = RuleDetector(load_text_rules(ABS))
    pipe = Pipeline(Engine([det]))
    evs = events(call("a"), call("c", after="61s"))
    pipe.process(evs[0], now=0.0)
    session = pipe.sessions["s1"]
    start = evs[0].ts
    old_timer = (start + 60, start, ["t-0"], ["s1"], "rendered then", "t-0", "s1", 0, "agent")
    old = RuleState.__new__(RuleState)
    old.__setstate__(  # what RuleState.__getstate__ returned then: four fields
        (
            SmallMap(
                {
                    "ABS": [
                        session.det["rules"].r["ABS"].shape,
                        SmallMap(
                            {
                                "#": SmallMap({"ABS:s0": 3}),
                                "s1": SmallMap({"p": SmallMap(), "t": [(*old_timer, None, None)]}),
                            }
                        ),
                    ]
                }
            ),
            ("ABS",),
            SmallMap({"dests": ("x@example.com",)}),
            start + 60,
        )
    )
    state = pickle.loads(pickle.dumps(old))
    keys = state.r["ABS"]
    assert keys["#"] == SmallMap({"s0": 3})
    assert isinstance(keys["s1"], SeqKey) and keys["s1"].t[0][2:4] == (("t-0",), ("s1",))
    session.det["rules"] = state
    [decision] = pipe.process(evs[1], now=1.0)
    assert decision.alert.message == "rendered then"  # type: ignore[union-attr]
    assert decision.alert.evidence == ["t-0"]  # type: ignore[union-attr]


SEQ3 = """
- rule: SEQ3
  title: a, b then c
  priority: HIGH
  by: session
  output: "a, b, c in %session.id (%rule.id)"
  early: {after: 2, priority: LOW}
  sequence:
    steps:
      - {name: a, condition: tool.name = a}
      - {name: b, condition: tool.name = b}
      - {name: c, condition: tool.name = c}
"""

UUIDS = [f"{i:08x}-7c1e-4d2a-9f00-0000000000{i:02x}" for i in range(4)]


def test_a_partial_match_keeps_uuid_event_ids_in_16_bytes_each_and_reports_them_as_written() -> (
    None
):
    evs = events(*(call(n, event_id=e) for n, e in zip("abc", UUIDS, strict=False)))
    r = run(SEQ3, evs[:2])
    assert r.pipeline is not None
    [partial] = r.pipeline.sessions["s1"].det["rules"].r["SEQ3"]["s1"].p
    assert partial[3] == bytes.fromhex(UUIDS[0].replace("-", "") + UUIDS[1].replace("-", ""))
    done = run(SEQ3, evs)
    early, complete = done.of("SEQ3")
    assert early.evidence == tuple(UUIDS[:2]) and complete.evidence == tuple(UUIDS[:3])
    assert complete.explanation["steps"] == dict(zip("abc", UUIDS, strict=False))


def test_ids_that_are_not_uuids_turn_a_partial_s_ids_into_strings() -> None:
    mixed = [UUIDS[0], "not-a-uuid", UUIDS[2]]
    evs = events(*(call(n, event_id=e) for n, e in zip("abc", mixed, strict=False)))
    r = run(SEQ3, evs[:2])
    assert r.pipeline is not None
    [partial] = r.pipeline.sessions["s1"].det["rules"].r["SEQ3"]["s1"].p
    assert partial[3] == (UUIDS[0], "not-a-uuid")
    assert run(SEQ3, evs).of("SEQ3")[-1].evidence == tuple(mixed)


def test_a_checkpointed_partial_with_ids_as_strings_still_completes() -> None:
    """Partial matches pickled before kept a tuple of id strings: they go on from there."""
    evs = events(*(call(n, event_id=e) for n, e in zip("abc", UUIDS, strict=False)))
    det = RuleDetector(load_text_rules(SEQ3))
    found: list[str] = []
    det.listener = lambda f: found.append(" ".join(f.evidence))
    pipe = Pipeline(Engine([det]))
    pipe.process(evs[0], now=0.0)
    key = pipe.sessions["s1"].det["rules"].r["SEQ3"]["s1"]
    (g, start, last, _ids, sids, caps) = key.p[0]
    key.p = ((g, start, last, (UUIDS[0],), sids, caps),)  # the earlier layout
    restored = pickle.loads(pickle.dumps(pipe.sessions["s1"]))
    pipe.sessions["s1"] = restored
    pipe.process(evs[1], now=1.0)
    pipe.process(evs[2], now=2.0)
    assert found == [" ".join(UUIDS[:2]), " ".join(UUIDS[:3])]


def test_rules_started_by_one_event_share_its_ids_and_string_captures() -> None:
    two = SEQ3 + SEQ3.replace("SEQ3", "SEQ4").replace("%session.id", "%a.tool.name")
    r = run(two, events(call("a", event_id=UUIDS[0])))
    assert r.pipeline is not None
    rules = r.pipeline.sessions["s1"].det["rules"].r
    [p3], [p4] = rules["SEQ3"]["s1"].p, rules["SEQ4"]["s1"].p
    assert p3[3] is p4[3] and p3[4] is p4[4]  # one copy of the event and session ids
    again = run(two, events(call("a", event_id=UUIDS[1])))
    assert again.pipeline is not None
    [q4] = again.pipeline.sessions["s1"].det["rules"].r["SEQ4"]["s1"].p
    assert q4[5] == ("a.tool.name", "a") and q4[5] is p4[5]  # shared by sessions
