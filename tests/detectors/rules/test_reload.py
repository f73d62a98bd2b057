"""Hot reload under a running pipeline: swap while sessions are mid-sequence."""

from __future__ import annotations

import pickle

from detectors.engine import AlertDecision, Engine
from detectors.rules.detector import RuleDetector
from detectors.rules.loader import load_text_rules
from monitor.pipeline import Pipeline
from tests.detectors.rules.helpers import call, events

V1 = """
- rule: SEQ
  title: read then send
  priority: HIGH
  output: "v1 %read.tool.name then %send.tool.name"
  sequence:
    maxspan: 1h
    steps:
      - name: read
        condition: tool.name = read_file
      - name: send
        condition: tool.name = send_email
"""


def alerts(out: list[object]) -> list[AlertDecision]:
    return [d for d in out if isinstance(d, AlertDecision)]


def test_state_survives_a_swap_when_the_rule_keeps_its_shape() -> None:
    det = RuleDetector(load_text_rules(V1))
    pipe = Pipeline(Engine([det]))
    evs = events(call("read_file"), call("send_email"))
    pipe.process(evs[0], now=0.0)
    # an operator retitles the rule and narrows the second step while s1 is mid-sequence
    det.swap(load_text_rules(V1.replace("v1", "v2").replace("= send_email", "glob 'send_*'")))
    [alert] = alerts(pipe.process(evs[1], now=1.0))
    assert alert.alert.message == "v2 read_file then send_email"
    assert alert.alert.evidence == ["t-0", "t-1"]
    assert det.stats.reloads == 1


def test_state_is_dropped_when_the_rule_changes_shape_or_goes_away() -> None:
    reshaped = V1.replace("name: read\n", "name: fetch\n").replace("%read.", "%fetch.")
    for new in (reshaped, V1.replace("rule: SEQ", "rule: OTHER")):
        det = RuleDetector(load_text_rules(V1))
        pipe = Pipeline(Engine([det]))
        evs = events(call("read_file"), call("send_email"))
        pipe.process(evs[0], now=0.0)
        det.swap(load_text_rules(new))
        assert alerts(pipe.process(evs[1], now=1.0)) == []
        state = pipe.sessions["s1"].det["rules"]
        assert state.live == () and "SEQ" not in state.r


def test_session_state_and_detector_pickle() -> None:
    det = RuleDetector(load_text_rules(V1))
    pipe = Pipeline(Engine([det]))
    evs = events(call("read_file"), call("send_email"))
    pipe.process(evs[0], now=0.0)
    blob = pipe.snapshot("s1")
    assert blob is not None
    restored_det = pickle.loads(pickle.dumps(det))
    assert restored_det.ruleset.version == det.ruleset.version
    fresh = Pipeline(Engine([restored_det]))
    fresh.restore("s1", blob, now=5.0)
    [alert] = alerts(fresh.process(evs[1], now=6.0))
    assert alert.alert.evidence == ["t-0", "t-1"]
