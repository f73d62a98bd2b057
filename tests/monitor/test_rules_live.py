"""A security engineer's rule goes live in a running worker (real broker, worker process):

the new sequence rule with an exception (``examples/rules/acme-prod.yaml``) is dropped into the
rules directory the worker watches, passes ``agentwatch rules test`` on its fixtures, is
hot-reloaded without a restart and fires on events produced afterwards (read from
``monitor.alerts``), not on a session its exception covers; a bad edit is refused with its
file:line, and the rules that were running keep running."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from monitor.broker import EmbeddedBroker
from tests.monitor.harness import Collector, Worker, event, produce, topic_env

pytestmark = pytest.mark.kafka

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "rules"
PROD = [{"type": "k8s_deployment", "uid": "k8s://prod/api", "environment": "prod"}]


def _secret_then_prod(sid: str, agent: str) -> list[dict[str, Any]]:
    evs = [
        event(sid, 0, "session_start"),
        event(sid, 1, "tool_call", "vault.read_secret"),
        event(sid, 2, "tool_call", "kubectl.apply", resources=PROD),
        event(sid, 3, "session_end"),
    ]
    for e in evs:
        e["actor"]["agent_id"] = agent
    return evs


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )


def _rules_of(records: list[Any], root: str) -> set[str]:
    return {
        json.loads(r.value)["finding_info"]["analytic"]["uid"]
        for r in records
        if r.key == root.encode()
    }


def test_a_new_rule_is_tested_hot_reloaded_fires_and_survives_a_bad_edit(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    rules = tmp_path / "rules"
    (rules / "tests").mkdir(parents=True)
    env = {
        **topic_env(f"live-{uuid.uuid4().hex[:6]}"),
        "AGENTWATCH_TOPIC_PARTITIONS": "1",
        "AGENTWATCH_RULES_PATHS": str(rules),
        "AGENTWATCH_RULES_RELOAD_INTERVAL_S": "0.3",
    }
    worker = Worker(broker.bootstrap, tmp_path / "worker", env).start()
    s = worker.settings
    out = Collector(worker.bootstrap, [s.topic_alerts], s.topic_partitions)
    try:
        # 1. the engineer writes the rule and its fixtures into the watched directory ...
        shutil.copy(EXAMPLES / "acme-prod.yaml", rules / "acme-prod.yaml")
        shutil.copy(EXAMPLES / "tests" / "ACME-002.yaml", rules / "tests" / "ACME-002.yaml")
        # ... and runs them through the pipeline
        tested = _cli("rules", "test", str(rules))
        assert tested.returncode == 0, tested.stdout + tested.stderr
        assert "4/4 cases passed for 1 rules" in tested.stdout

        # 2. the running worker picks it up, without a restart
        assert worker.wait_metric("agentwatch_rules_reloads_total", 1, result="ok") >= 1
        assert worker.metric("agentwatch_rules_reloads_total", result="refused") == 0
        pid = worker.proc.pid if worker.proc else None

        # 3. it fires on what is produced afterwards; its exception holds
        hit, excepted = f"hit-{uuid.uuid4().hex[:6]}", f"rel-{uuid.uuid4().hex[:6]}"
        produce(worker.bootstrap, s.topic_actions, _secret_then_prod(hit, "coding-orchestrator"))
        produce(worker.bootstrap, s.topic_actions, _secret_then_prod(excepted, "deploy-agent"))
        got = out.poll(lambda r: "ACME-002" in _rules_of(r[s.topic_alerts], hit), settle=2.0)
        assert "ACME-002" in _rules_of(got[s.topic_alerts], hit)
        assert "ACME-002" not in _rules_of(got[s.topic_alerts], excepted)
        assert worker.metric("agentwatch_rule_exceptions_total", rule="ACME-002") >= 1

        # 4. a bad edit: lint shows it with file:line; the worker refuses it and keeps going
        bad = (
            (rules / "acme-prod.yaml")
            .read_text()
            .replace(
                "condition: tool_call and production_write", "condition: tool_call and prod_wirte"
            )
        )
        (rules / "acme-prod.yaml").write_text(bad)
        lint = _cli("rules", "lint", str(rules))
        assert lint.returncode == 1
        assert re.search(r"acme-prod\.yaml:\d+", lint.stdout + lint.stderr), lint.stdout
        assert worker.wait_metric("agentwatch_rules_reloads_total", 1, result="refused") >= 1
        log = worker.tail(200)
        assert "not reloaded, the previous ones keep running" in log
        assert re.search(r"prod_wirte.*acme-prod\.yaml:\d+", log), log

        again = f"hit2-{uuid.uuid4().hex[:6]}"
        produce(worker.bootstrap, s.topic_actions, _secret_then_prod(again, "coding-orchestrator"))
        got = out.poll(lambda r: "ACME-002" in _rules_of(r[s.topic_alerts], again))
        assert "ACME-002" in _rules_of(got[s.topic_alerts], again)  # the old rule still runs
        assert worker.proc is not None and worker.proc.pid == pid and worker.proc.poll() is None
    finally:
        out.close()
        code = worker.stop()
    assert code == 0, worker.tail()
