"""``bench.throughput`` against the real embedded broker (a short run: 6,000 events, one round)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.throughput import main
from bench.workers import fill, run_passthrough
from monitor.broker import EmbeddedBroker
from monitor.settings import Settings
from monitor.topics import ensure_topics

pytestmark = [pytest.mark.slow, pytest.mark.kafka]


def test_the_worker_and_the_pass_through_loops_drain_the_same_records(tmp_path: Path) -> None:
    result = main(["--events", "6000", "--repeat", "1", "--variants",
                   "passthrough-raw,passthrough-faust-json,worker",
                   "--out", str(tmp_path)])  # fmt: skip
    s = result["summary"]
    # the decoding pass-through loops exit without a result (and the bench fails) if a value
    # reaches them undecoded
    assert s["passthrough"]["events_per_s"] > 0 and s["passthrough"]["cpu_us_per_event"] > 0
    assert s["worker"]["events_per_s"] > 0 and s["worker"]["cpu_us_per_event"] > 0
    r = result["rounds"][0]
    assert s["worker"]["ratio"] == pytest.approx(
        r["worker"]["events_per_s"] / r["passthrough"]["events_per_s"], abs=1e-3
    )
    # the loops for reference drained the same records (the ratio to the consume-only one)
    assert s["passthrough-raw"]["events_per_s"] > 0
    assert s["passthrough-faust-json"]["events_per_s"] > 0
    assert s["worker"]["ratio_to_raw"] == pytest.approx(
        r["worker"]["events_per_s"] / r["passthrough-raw"]["events_per_s"], abs=1e-3
    )
    # every event was an event: the worker decided on them and rejected none
    (decided,) = result["decisions"]
    assert decided["rejected"] == 0 and decided["alerts"] > 0 and decided["kills"] > 0
    assert json.loads((tmp_path / "throughput-simulator.json").read_text())["events"] == 6000


def test_the_yardstick_decodes_every_value(broker: EmbeddedBroker, tmp_path: Path) -> None:
    # the consume-only loop drains records that are not JSON; the yardstick cannot (its
    # decoding fails on the first one and it gives no result)
    settings = Settings.from_env(
        {}, profile="embedded", broker=broker.url, topic_partitions=1, datadir=tmp_path,
        app_id="yardstick-test", topic_actions="yardstick.actions",
    )  # fmt: skip
    ensure_topics(broker.bootstrap, settings)
    fill(broker.bootstrap, settings.topic_actions, [(b"k", b"not json %d" % i) for i in range(50)])
    raw = run_passthrough(settings, 50, tmp_path / "raw.log", decode="raw")
    assert raw.events == 50
    with pytest.raises(RuntimeError, match="gave no result"):
        run_passthrough(
            settings.model_copy(update={"app_id": "yardstick-test-2"}),
            50,
            tmp_path / "orjson.log",
            timeout=20,
            decode="orjson",
        )
    assert "JSONDecodeError" in (tmp_path / "orjson.log").read_text()
