"""Simulated traffic meets the targets: every attack family killed, benign sessions quiet."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.simulated import main
from monitor.attacks import ATTACKS
from monitor.evaluation import TARGETS

pytestmark = pytest.mark.slow


def test_targets_on_simulated_traffic(tmp_path: Path) -> None:
    # seeds the tuning runs did not use
    result = main(["--sessions", "1500", "--seeds", "7", "--out", str(tmp_path)])
    for name, res in result["configs"].items():
        groups = res["groups"]
        assert res["meets_targets"] == dict.fromkeys(TARGETS, True), (name, groups)
        for family in ATTACKS:
            g = groups[f"attack/{family}"]
            assert g["sessions"] >= 20 and g["kill_rate"] >= 0.9, (name, family, g)
        assert groups["BENIGN"]["sessions"] >= 1000
    assert (tmp_path / "simulated.json").exists() and (tmp_path / "simulated.png").stat().st_size
