"""ClickHouse refuses writes for a while under a running worker: detection goes on (kill
signals keep being published), the sink's metrics show the outage, rows wait in memory and
then in the disk spool, and once the store takes writes again every event, alert and signal
is in it exactly once, read as users read it.

The fault is real, with no hook in the product: the embedded store's data directory is made
immutable (``chattr +i``, refused even to root; without root, write permission is taken
away instead), so chdb's inserts fail with "Operation not
permitted" inside the worker's sink process, as on a disk that refuses writes; reads keep
working, which lets the test see that nothing new lands during the outage.
``chattr -i`` ends it. CI: 20 attack + 20 benign sessions during a ~8 s outage;
``AGENTWATCH_FAULT_SCALE`` scales both.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from monitor.broker import EmbeddedBroker
from tests.monitor.faults import (
    header,
    is_attack,
    latest_alerts,
    scale,
    scaled,
    sessions,
    wait_until,
)
from tests.monitor.harness import Collector, Worker, expected_alerts, produce, topic_env

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse, pytest.mark.slow]


#: how the store is frozen here: ``chattr +i`` (root, which ignores file modes) or, for any
#: other user, taking away write permission (``chmod -R a-w``)
_HOW: list[str] = []


def _chattr(flag: str, store: Path) -> None:
    if _HOW == ["chmod"]:
        mode = "a-w" if flag == "+i" else "u+w"
        subprocess.run(["chmod", "-R", mode, str(store)], check=False, capture_output=True)
    else:
        subprocess.run(["chattr", "-R", flag, str(store)], check=False, capture_output=True)


def _can_freeze(tmp_path: Path) -> bool:
    probe = tmp_path / "freeze-probe"
    probe.mkdir()
    _HOW[:] = ["chattr"] if os.geteuid() == 0 and shutil.which("chattr") else ["chmod"]
    _chattr("+i", probe)
    try:
        (probe / "x").touch()
        frozen = False
    except OSError:
        frozen = True
    _chattr("-i", probe)
    return frozen


def test_store_refusing_writes_loses_nothing_and_catches_up(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    if not _can_freeze(tmp_path):
        pytest.skip("neither chattr +i nor chmod a-w makes this filesystem refuse writes")
    prefix = f"outage-{uuid.uuid4().hex[:6]}"
    store = tmp_path / "clickhouse"
    env = {
        **topic_env(prefix),
        "AGENTWATCH_TOPIC_PARTITIONS": "2",
        "AGENTWATCH_STORE_URL": f"chdb://{store.resolve()}",
        "AGENTWATCH_SINK_FLUSH_INTERVAL_S": "0.2",
        # spill waiting batches to the disk spool after 1 s of failed inserts (default 5 s)
        "AGENTWATCH_SINK_SPILL_AFTER_S": "1",
        "AGENTWATCH_CHECKPOINT_INTERVAL_S": "0.5",
    }
    before = sessions(f"{prefix}-pre", attacks=2, benigns=2)
    during = sessions(f"{prefix}-out", attacks=scaled(20), benigns=scaled(20))
    worker = Worker(broker.bootstrap, tmp_path / "worker", env).start()
    s = worker.settings
    out = Collector(broker.bootstrap, [s.topic_alerts, s.topic_revocations, s.topic_dlq], 2)
    frozen = False
    try:
        # the store works: a first lot of sessions lands
        produce(broker.bootstrap, s.topic_actions, [e for d in before.values() for e in d])
        for root, evs in before.items():
            want = (len(evs), len(expected_alerts(evs)), 1 if is_attack(root) else 0)
            worker.wait_stored(root, *want, timeout=60)
        wait_until(
            lambda: worker.metric("agentwatch_sink_buffered_rows") == 0,
            timeout=30,
            what="the sink to be idle",
        )
        inserted_before = worker.metric("agentwatch_sink_rows_inserted_total")
        errors_before = worker.metric("agentwatch_sink_errors_total")

        _chattr("+i", store / "store")
        frozen = True
        attacks = [r for r in during if is_attack(r)]
        steps = max(len(d) for d in during.values())
        produce(  # step by step across sessions, as live traffic interleaves
            broker.bootstrap,
            s.topic_actions,
            [d[i] for i in range(steps) for d in during.values() if i < len(d)],
        )
        # detection goes on: every attack session is killed while the store refuses writes
        got = out.poll(
            lambda r: len({x.key for x in r[s.topic_revocations]}) >= len(attacks) + 2,
            timeout=60,
        )
        killed = {x.key.decode() for x in got[s.topic_revocations]}
        assert set(attacks) <= killed, worker.tail()

        # the outage shows: insert errors, rows waiting, then spilled to the disk spool (some
        # of these gauges are refreshed by the worker's timer: wait for all of them)
        def outage_seen() -> bool:
            m = worker.metric
            return (
                m("agentwatch_sink_spooled_rows") > 0
                and m("agentwatch_sink_errors_total") > errors_before
                and m("agentwatch_sink_degraded") == 1
                and m("agentwatch_sink_oldest_unflushed_age_seconds") > 0
            )

        wait_until(outage_seen, timeout=60, what="the outage in the sink's metrics")
        assert worker.metric("agentwatch_sink_rows_inserted_total") == inserted_before
        print(
            f"\noutage: {len(killed)} sessions killed, "
            f"{worker.metric('agentwatch_sink_errors_total') - errors_before:.0f} insert errors, "
            f"{worker.metric('agentwatch_sink_spooled_rows'):.0f} rows spooled"
        )
        # ... and nothing of it is in the store (reads still work)
        probe = worker.stored(attacks[0])
        assert probe["events"] == [] and probe["signals"] == []
        time.sleep(8.0 * scale())  # the outage goes on; the sink retries and spills meanwhile

        _chattr("-i", store)
        frozen = False
        stored = {}
        for root, evs in {**before, **during}.items():
            want_alerts = len(expected_alerts(evs))
            want_signals = 1 if is_attack(root) else 0
            stored[root] = worker.wait_stored(
                root, events=len(evs), alerts=want_alerts, signals=want_signals, timeout=120
            )
        wait_until(
            lambda: (
                worker.metric("agentwatch_sink_spooled_rows") == 0
                and worker.metric("agentwatch_sink_degraded") == 0
            ),
            timeout=60,
            what="the spool to drain",
        )
        got = out.poll(lambda r: False, timeout=1.0)
    finally:
        if frozen:
            _chattr("-i", store)
        out.close()
        assert worker.stop() == 0, worker.tail()

    everything = {**before, **during}
    # every event exactly once, read as users read it (FINAL + LIMIT 1 BY event_id)
    for root, evs in everything.items():
        ids = [e["event_id"] for e in stored[root]["events"]]
        assert sorted(ids) == sorted(e["event_id"] for e in evs), root
    # every alert (its latest version) and every kill signal, once
    published = latest_alerts(got[s.topic_alerts])
    stored_alerts = {a["alert_uid"]: a for st in stored.values() for a in st["alerts"]}
    assert set(stored_alerts) == set(published)
    jtis = [header(r, "ce_id") for r in got[s.topic_revocations]]
    assert len(jtis) == len(set(jtis)) == sum(1 for r in everything if is_attack(r))
    stored_jtis = [x["jti"] for st in stored.values() for x in st["signals"]]
    assert sorted(stored_jtis) == sorted(jtis)
    assert got[s.topic_dlq] == []
