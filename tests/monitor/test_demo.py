"""``agentwatch demo``: kill signals appear and verify; Ctrl-C stops everything it started."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse, pytest.mark.slow]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "rules"


def _descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def test_demo_shows_verified_kills_and_ctrl_c_leaves_nothing_behind(tmp_path: Path) -> None:
    out = tmp_path / "demo.out"
    cmd = [sys.executable, "-m", "monitor.cli", "demo", "--workdir", str(tmp_path / "var"),
           "--rate", "100", "--attack-ratio", "0.3", "--rules", str(EXAMPLES)]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTWATCH_")}
    with out.open("wb") as fh:
        # started with SIGINT ignored, as a background job of a non-interactive shell (a CI
        # step, `make test &`) is: Ctrl-C must stop it all the same
        demo = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True, preexec_fn=_ignore_sigint)  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while "KILL" not in out.read_text(errors="replace"):
            assert demo.poll() is None, out.read_text(errors="replace")
            assert time.monotonic() < deadline, "no kill signal within 90 s"
            time.sleep(0.5)
        # the engineer's own rule (examples/rules/acme-prod.yaml) fires on the simulated agents
        while "YOUR RULE ACME-002 fired" not in out.read_text(errors="replace"):
            assert demo.poll() is None, out.read_text(errors="replace")
            assert time.monotonic() < deadline + 60, "ACME-002 did not fire within 150 s"
            time.sleep(0.5)
        started = _descendants(demo.pid)
        assert len(started) >= 3  # broker, worker (+ its store process), simulator
        os.killpg(demo.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        assert demo.wait(90) == 0, out.read_text(errors="replace")
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
    time.sleep(0.5)
    assert not [p for p in started if _alive(p)], "processes left behind"
    text = out.read_text(errors="replace")
    assert "signature verified" in text
    verified = re.search(r"kill signals verified\s*│\s*(\d+)", text)
    assert verified and int(verified.group(1)) >= 1, text[-3000:]
    assert re.search(r"failing verification\s*│\s*0\b", text)
    stored = re.search(r"ClickHouse events rows\s*│\s*([\d,]+)", text)
    assert stored and int(stored.group(1).replace(",", "")) > 0
    audit = re.search(r"ClickHouse privileged_actions rows\s*│\s*([\d,]+)", text)
    assert audit and int(audit.group(1).replace(",", "")) > 0
    # the simulated gateway honoured the kill signals it verified
    refused = re.search(r"agent calls refused after a kill\s*│\s*(\d+)", text)
    assert refused and int(refused.group(1)) >= 1, text[-3000:]
    benign = re.search(r"benign sessions killed\s*│\s*(\d+)/(\d+)", text)
    assert benign and int(benign.group(1)) <= max(1, int(benign.group(2)) // 100), text[-3000:]
    assert re.search(r"ACME-002\s*│\s*[1-9]", text)  # in the alerts by rule
