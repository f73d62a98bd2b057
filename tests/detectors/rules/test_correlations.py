"""Absence (timers), counts and distinct counts, combinations: exact alerts and window edges."""

from __future__ import annotations

from tests.detectors.rules.helpers import call, events, run

T0 = 1782907200.0  # the helpers' first event time (2026-07-01T12:00:00Z)

ABSENCE = """
- rule: NOACK
  title: change without a ticket
  priority: MEDIUM
  output: "%after.tool.name was not followed by a ticket within %window"
  by: session
  absence:
    after: tool.name = apply_change
    expect: tool.name = create_ticket
    within: 10m
"""


def test_absence_fires_on_a_later_event_past_the_deadline() -> None:
    r = run(ABSENCE, events(call("apply_change"), call("read_file", after="11m")))
    [alert] = r.alerts("NOACK")
    assert alert.alert.evidence == ["t-0"]
    assert alert.alert.trigger_event_id == "t-1"
    assert alert.alert.message == "apply_change was not followed by a ticket within 10m"


def test_absence_fires_on_tick_when_the_session_goes_quiet() -> None:
    evs = events(call("apply_change"))
    assert run(ABSENCE, evs, tick=T0 + 600).alerts() == []  # exactly at the deadline: not yet
    r = run(ABSENCE, evs, tick=T0 + 601)
    [alert] = r.alerts("NOACK")
    assert alert.alert.evidence == ["t-0"] and alert.alert.trigger_event_id == "t-0"
    assert (
        r.pipeline is not None
        and r.pipeline.engine.next_deadline(r.pipeline.sessions["s1"]) is None
    )


def test_absence_does_not_fire_when_the_expected_event_comes_in_time() -> None:
    in_time = events(call("apply_change"), call("create_ticket", after="10m"))  # inclusive
    assert run(ABSENCE, in_time, tick=T0 + 3600).of("NOACK") == []
    too_late = events(call("apply_change"), call("create_ticket", after="601s"))
    assert len(run(ABSENCE, too_late).alerts("NOACK")) == 1


def test_absence_timer_is_per_session_with_by_session() -> None:
    evs = events(
        call("apply_change", session="a"),
        call("create_ticket", session={"id": "b", "root_id": "a"}),
    )
    [alert] = run(ABSENCE, evs, tick=T0 + 3600).alerts("NOACK")
    assert alert.alert.key == "NOACK:a"


def test_pipeline_tick_uses_the_watermark_by_default() -> None:
    r = run(ABSENCE, events(call("apply_change")))
    pipe = r.pipeline
    assert pipe is not None
    pipe.max_event_ts = T0 + 601 + pipe.settings.grace_s
    assert [d.alert.detector for d in pipe.tick(99.0) if hasattr(d, "alert")] == ["NOACK"]


COUNT = """
- rule: MANY
  title: many deletions
  priority: HIGH
  output: "%count deletions within %span"
  count:
    condition: tool.name = delete_file
    within: 60s
    threshold: 3
"""


def test_count_fires_at_the_threshold_with_the_window_inclusive() -> None:
    on_edge = events(
        call("delete_file"), call("delete_file", after="30s"), call("delete_file", after="30s")
    )
    [alert] = run(COUNT, on_edge).alerts("MANY")
    assert alert.alert.evidence == ["t-0", "t-1", "t-2"]
    assert alert.alert.message == "3 deletions within 1m"
    past = events(
        call("delete_file"), call("delete_file", after="30s"), call("delete_file", after="31s")
    )
    assert run(COUNT, past).of("MANY") == []


def test_count_keeps_one_alert_and_updates_it() -> None:
    r = run(COUNT, events(*[call("delete_file")] * 5))
    alerts = r.alerts("MANY")
    assert len({a.alert.uid for a in alerts}) == 1
    assert [a.alert.version for a in alerts] == [1, 2, 3]
    assert alerts[-1].alert.evidence == ["t-0", "t-1", "t-2", "t-3", "t-4"]


DISTINCT = """
- rule: SPRAY
  title: many hosts
  priority: MEDIUM
  output: "%distinct hosts"
  count:
    condition: caps contains external_egress
    within: 10m
    distinct: dest.host
    threshold: 3
"""


def test_distinct_count_ignores_repeats() -> None:
    post = lambda host: call("http.post", tool={"arguments": {"url": f"https://{host}/x"}})  # noqa: E731
    repeats = events(post("a.example"), post("a.example"), post("b.example"), post("b.example"))
    assert run(DISTINCT, repeats).of("SPRAY") == []
    [alert] = run(
        DISTINCT, events(post("a.example"), post("b.example"), post("a.example"), post("c.example"))
    ).alerts()
    assert alert.alert.message == "3 hosts"
    assert alert.alert.evidence == ["t-1", "t-2", "t-3"]  # the latest event of each host


SUM = """
- rule: SPEND
  title: spending over 5000 in an hour
  priority: HIGH
  output: "%sum paid"
  count:
    condition: caps contains payment
    within: 1h
    sum: tool.args.amount
    threshold: 5000
"""


def test_sum_of_a_field_within_the_window() -> None:
    pay = lambda n: call("send_money", tool={"arguments": {"amount": n, "recipient": "X"}})  # noqa: E731
    assert run(SUM, events(pay(2000), pay(2000), pay(999))).of("SPEND") == []
    [alert] = run(SUM, events(pay(2000), pay(2000), pay(1000))).alerts("SPEND")
    assert alert.alert.message == "5000 paid"


COMBO = """
- rule: TRIO
  title: trio
  priority: CRITICAL
  action: kill_session
  output: "%a.tool.name %b.tool.name %c.tool.name within %span"
  combination:
    within: 5m
    of:
      - {name: a, condition: tool.name = a}
      - {name: b, condition: tool.name = b}
      - {name: c, condition: tool.name = c}
"""


def test_combination_in_any_order_gives_one_alert_and_one_kill() -> None:
    r = run(COMBO, events(call("c"), call("a"), call("x"), call("b")))
    [alert] = r.alerts("TRIO")
    assert alert.alert.evidence == ["t-0", "t-1", "t-3"]  # in event-time order
    assert alert.alert.message == "a b c within 3s"
    [kill] = r.kills()
    assert kill.alert_uid == alert.alert.uid and kill.trigger_event_id == "t-3"


def test_combination_window_is_inclusive_and_stale_members_expire() -> None:
    edge = events(call("a"), call("b", after="4m"), call("c", after="1m"))
    assert len(run(COMBO, edge).alerts("TRIO")) == 1
    stale = events(call("a"), call("b", after="4m"), call("c", after="61s"))
    assert run(COMBO, stale).alerts() == []
    again = events(call("a"), call("b", after="4m"), call("c", after="61s"), call("a"))
    assert [a.alert.evidence for a in run(COMBO, again).alerts()] == [["t-1", "t-2", "t-3"]]


def test_combination_min_needs_only_some_members() -> None:
    rules = COMBO.replace("    within: 5m", "    within: 5m\n    min: 2")
    [alert] = run(rules, events(call("a"), call("c"))).alerts("TRIO")
    assert alert.alert.evidence == ["t-0", "t-1"]


def test_an_event_of_another_session_in_the_tree_fires_a_due_timer() -> None:
    evs = events(
        call("apply_change", session="a"),
        call("read_file", session={"id": "b", "root_id": "a"}, after="11m"),
    )
    [alert] = run(ABSENCE, evs).alerts("NOACK")
    assert alert.alert.key == "NOACK:a" and alert.alert.session_id == "a"
    assert alert.alert.trigger_event_id == "t-0"  # the timer's own event, as on a tick
