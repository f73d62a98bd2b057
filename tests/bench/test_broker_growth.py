"""``bench.broker_growth`` against the real embedded broker (a short run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.broker_growth import main

pytestmark = [pytest.mark.slow, pytest.mark.kafka]


def test_each_phase_samples_the_broker_and_the_consumer_keeps_up(tmp_path: Path) -> None:
    result = main(["--rate", "500", "--seconds", "4", "--every", "0.25", "--waits", "5",
                   "--out", str(tmp_path)])  # fmt: skip
    assert [p["fetch_wait_ms"] for p in result["phases"]] == [None, 5]
    for p in result["phases"]:
        assert len(p["rows"]) >= 4
        records = [r["records"] for r in p["rows"]]
        assert 0 < records[0] < records[-1]  # the load generator fed the topic
        # a quarter second can fall between two of the broker's CPU ticks (10 ms)
        assert all(0 <= r["broker_cores"] < 2.5 for r in p["rows"])
        assert sum(r["broker_cores"] for r in p["rows"]) > 0
    assert result["phases"][0]["consumer_behind"] is None
    # it tails the topic, and never reads as ahead of it: Tansu's ListOffsets answers behind
    # what a fetch returns, so the count is taken from the consumer's own fetches
    tailing = [r["consumer_behind"] for r in result["phases"][1]["rows"]]
    assert all(b is not None and 0 <= b < 1000 for b in tailing), tailing
    assert result["phases"][1]["consumer_behind"] == tailing[-1]
    assert json.loads((tmp_path / "broker_growth.json").read_text())["rate"] == 500
