"""``bench.broker_growth`` against the real embedded broker (a short run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.broker_growth import main

pytestmark = [pytest.mark.slow, pytest.mark.kafka]


def test_each_phase_samples_the_broker_and_the_consumer_keeps_up(tmp_path: Path) -> None:
    result = main(["--rate", "500", "--seconds", "4", "--every", "2", "--waits", "5",
                   "--out", str(tmp_path)])  # fmt: skip
    assert [p["fetch_wait_ms"] for p in result["phases"]] == [None, 5]
    for p in result["phases"]:
        assert len(p["rows"]) == 2
        records = [r["records"] for r in p["rows"]]
        assert 0 < records[0] < records[1]  # the load generator fed the topic
        assert all(0 < r["broker_cores"] < 2.5 for r in p["rows"])
    assert result["phases"][0]["consumer_behind"] is None
    assert 0 <= result["phases"][1]["consumer_behind"] < 1000  # it tails the topic
    assert json.loads((tmp_path / "broker_growth.json").read_text())["rate"] == 500
