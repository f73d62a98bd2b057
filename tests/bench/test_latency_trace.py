"""The kill trace (``monitor.killtrace``) stamps every hop of a real kill inside a worker.

It patches library internals (aiokafka's fetcher and sender, faust's consumer thread), so a
library upgrade that moves them must fail here, not leave the diagnostic silently empty."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.latency import main
from monitor.killtrace import HOPS, report

pytestmark = [pytest.mark.slow, pytest.mark.kafka]

INSIDE_THE_WORKER = {
    "fetched -> handed over",
    "handed over -> event loop",
    "event loop -> processing",
    "processing -> decided",
    "decided -> signed",
    "signed -> produce request",
}


def test_each_kill_of_a_latency_run_is_traced_hop_by_hop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trace = tmp_path / "trace.jsonl"
    monkeypatch.setenv("AGENTWATCH_KILL_TRACE", str(trace))  # the bench's worker inherits it
    main(["--rate", "200", "--sessions", "6", "--warmup", "2", "--store", "none",
          "--out", str(tmp_path)])  # fmt: skip
    rows = dict(report(str(trace), str(tmp_path / "latency.json")))
    assert list(rows) == [name for name, _, _ in HOPS]
    for name, durations in rows.items():
        assert len(durations) == 6, name  # every kill, every hop stamped
        if name in INSIDE_THE_WORKER:  # one process's clock: in order
            assert all(0 <= d < 10_000 for d in durations), (name, durations)
