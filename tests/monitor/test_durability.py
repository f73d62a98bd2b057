"""A crash loses nothing: SIGKILL the worker mid-combination, restart it, and the combination
is detected once (one alert, one kill signal), however the crash fell against checkpoints."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from monitor.broker import EmbeddedBroker
from tests.monitor.harness import (
    Collector,
    Worker,
    expected_alerts,
    produce,
    published_alerts,
    topic_env,
    trifecta,
)

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse, pytest.mark.slow]


def _env(prefix: str, tmp_path: Path, partitions: int, interval: str) -> dict[str, str]:
    """One test's topics, and one event store shared by the worker and its successor."""
    return {
        **topic_env(prefix),
        "AGENTWATCH_TOPIC_PARTITIONS": str(partitions),
        "AGENTWATCH_CHECKPOINT_INTERVAL_S": interval,
        "AGENTWATCH_STORE_URL": f"chdb://{tmp_path.resolve()}/clickhouse",
    }


@pytest.mark.parametrize("when", ["before_checkpoint", "after_checkpoint"])
def test_sigkill_between_second_and_third_step(
    broker: EmbeddedBroker, tmp_path: Path, when: str
) -> None:
    prefix = f"crash-{when}-{uuid.uuid4().hex[:6]}"
    # a long interval makes "before the checkpoint" deterministic
    env = _env(prefix, tmp_path, 2, "60" if when == "before_checkpoint" else "0.2")
    sid = f"{prefix}-s"
    events = trifecta(sid)
    w1 = Worker(broker.bootstrap, tmp_path / "w1", env).start()
    try:
        produce(broker.bootstrap, w1.settings.topic_actions, events[:3])
        assert w1.wait_metric("agentwatch_events_consumed_total", 3) == 3
        if when == "after_checkpoint":  # a checkpoint covers the three events
            assert w1.wait_metric("agentwatch_checkpoint_resume_offset", 3) == 3
    finally:
        w1.kill()
    w2 = Worker(
        broker.bootstrap, tmp_path / "w2", {**env, "AGENTWATCH_CHECKPOINT_INTERVAL_S": "0.2"}
    ).start()
    s = w2.settings
    out = Collector(broker.bootstrap, [s.topic_alerts, s.topic_revocations], 2)
    try:
        produce(broker.bootstrap, s.topic_actions, events[3:])
        got = out.poll(lambda r: len(r[s.topic_revocations]) >= 1, timeout=30, settle=2.0)
        if when == "after_checkpoint":
            assert w2.metric("agentwatch_restored_sessions_total") >= 1
        else:  # nothing was checkpointed: the events were read again from the source
            assert w2.metric("agentwatch_events_consumed_total") == 5
        expected = expected_alerts(events)
        stored = w2.wait_stored(sid, events=5, alerts=len(expected), signals=1)
    finally:
        out.close()
        assert w2.stop() == 0
    assert len(got[s.topic_revocations]) == 1, w2.tail()
    # the same alerts as an uninterrupted run, the combination among them
    assert published_alerts(got[s.topic_alerts]) == expected
    combo = ("AW-COMBO-001", (f"{sid}-e1", f"{sid}-e2", f"{sid}-e3"))
    assert combo in expected.values()
    # and nothing is lost in ClickHouse: every event once, every alert, the one signal
    assert sorted(e["event_id"] for e in stored["events"]) == [e["event_id"] for e in events]
    assert {a["alert_uid"] for a in stored["alerts"]} == set(expected)
    jti = dict(got[s.topic_revocations][0].headers)["ce_id"].decode()
    assert [x["jti"] for x in stored["signals"]] == [jti]


def test_sigkill_after_the_kill_signal_does_not_publish_it_twice(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    prefix = f"crash-kill-{uuid.uuid4().hex[:6]}"
    env = _env(prefix, tmp_path, 2, "60")
    sid = f"{prefix}-s"
    w1 = Worker(broker.bootstrap, tmp_path / "w1", env).start()
    s = w1.settings
    out = Collector(broker.bootstrap, [s.topic_alerts, s.topic_revocations], 2)
    try:
        produce(broker.bootstrap, s.topic_actions, trifecta(sid)[:4])
        out.poll(lambda r: len(r[s.topic_revocations]) >= 1, timeout=30)
    finally:
        w1.kill()  # the kill signal is out, no checkpoint covers its decision
    w2 = Worker(broker.bootstrap, tmp_path / "w2", env).start()
    try:
        # the replay re-takes the decision, finds its jti on the topic and does not resend it
        assert w2.wait_metric("agentwatch_kill_signals_suppressed_total", 1) == 1
        produce(broker.bootstrap, s.topic_actions, trifecta(sid)[4:])
        got = out.poll(lambda r: False, timeout=2)
    finally:
        out.close()
        assert w2.stop() == 0
    assert len(got[s.topic_revocations]) == 1
    assert published_alerts(got[s.topic_alerts]) == expected_alerts(trifecta(sid))


def test_sigkill_while_an_event_is_held_back_loses_nothing(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """A held-back event (waiting for its predecessor) is not in the checkpointed state, so
    the checkpoint must not let a restart skip it."""
    prefix = f"crash-held-{uuid.uuid4().hex[:6]}"
    env = _env(prefix, tmp_path, 1, "0.2")
    sid = f"{prefix}-s"
    e0, e1, e2, e3, e4 = trifecta(sid)
    w1 = Worker(broker.bootstrap, tmp_path / "w1", {**env, "AGENTWATCH_REORDER_WAIT_S": "60"})
    w1.start()
    try:
        produce(broker.bootstrap, w1.settings.topic_actions, [e0, e1, e3])  # e3 waits for e2
        assert w1.wait_metric("agentwatch_events_consumed_total", 3) == 3
        # processed up to offset 3, but the checkpoint may only resume at e3's offset (2) ...
        assert w1.wait_metric("agentwatch_checkpoint_resume_offset", 2) == 2
        time.sleep(1.5)  # ... however many checkpoints (every 0.2 s) follow
        assert w1.metric("agentwatch_checkpoint_resume_offset") == 2
    finally:
        w1.kill()
    w2 = Worker(broker.bootstrap, tmp_path / "w2", env).start()
    s = w2.settings
    out = Collector(broker.bootstrap, [s.topic_alerts, s.topic_revocations], 1)
    try:
        produce(broker.bootstrap, s.topic_actions, [e2, e4])
        got = out.poll(lambda r: len(r[s.topic_revocations]) >= 1, timeout=30, settle=1.0)
    finally:
        out.close()
        assert w2.stop() == 0
    assert len(got[s.topic_revocations]) == 1, w2.tail()
    assert published_alerts(got[s.topic_alerts]) == expected_alerts([e0, e1, e2, e3, e4])
