"""The docker-compose deployment, checked without a Docker engine: the compose file's
services, settings, volumes and dependencies; the Prometheus scrape config; the Grafana
provisioning and dashboard (valid JSON, one datasource, every queried metric exported)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
PROM = ROOT / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "agentwatch.json"
_VAR = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text()))


def _interpolate(value: str) -> str:
    return _VAR.sub(lambda m: m.group(2) or "", value)


def test_services_are_all_there(compose: dict[str, Any]) -> None:
    assert {
        "kafka",
        "topics",
        "keys",
        "clickhouse",
        "worker",
        "revocations",
        "simulator",
        "prometheus",
        "grafana",
    } <= set(compose["services"])


def test_kafka_is_kraft_without_auto_create(compose: dict[str, Any]) -> None:
    env = compose["services"]["kafka"]["environment"]
    assert "controller" in env["KAFKA_PROCESS_ROLES"] and "broker" in env["KAFKA_PROCESS_ROLES"]
    assert "ZOOKEEPER" not in " ".join(env).upper()
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    topics = compose["services"]["topics"]
    assert topics["command"][:3] == ["agentwatch", "topics", "create"]
    assert topics["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert topics["restart"] == "no"


def test_worker_scales(compose: dict[str, Any]) -> None:
    w = compose["services"]["worker"]
    assert "container_name" not in w and "ports" not in w  # replicas would collide
    assert w["expose"] == [w["environment"]["AGENTWATCH_WEB_PORT"]]
    assert w["command"] == ["agentwatch", "worker"]
    deps = w["depends_on"]
    assert deps["topics"]["condition"] == "service_completed_successfully"
    assert deps["keys"]["condition"] == "service_completed_successfully"
    assert deps["clickhouse"]["condition"] == "service_healthy"
    assert "keys:/keys:ro" in w["volumes"]


def test_every_agentwatch_variable_is_a_setting_and_valid(compose: dict[str, Any]) -> None:
    fields = set(Settings.model_fields)
    seen = 0
    for name, svc in compose["services"].items():
        env = svc.get("environment") or {}
        aw = {k: _interpolate(str(v)) for k, v in env.items() if k.startswith("AGENTWATCH_")}
        for key in aw:
            if key != "AGENTWATCH_PROFILE":
                assert key[len("AGENTWATCH_") :].lower() in fields, f"{name}: {key} is no setting"
        if aw:
            seen += 1
            s = Settings.from_env(aw)
            defaults = Settings()
            # the same topic names as the tests use (none is overridden here)
            for t in ("topic_actions", "topic_dlq", "topic_alerts", "topic_revocations"):
                assert getattr(s, t) == getattr(defaults, t)
            assert s.store_url.startswith("http://") and "@clickhouse:8123" in s.store_url
            assert s.web_port == 6066 and s.web_host == "0.0.0.0"
    assert seen >= 4


def test_services_that_read_settings_share_one_environment(compose: dict[str, Any]) -> None:
    envs = [
        svc["environment"]
        for name, svc in compose["services"].items()
        if name in ("topics", "worker", "revocations", "simulator")
    ]
    assert all(e == envs[0] for e in envs)


def test_volumes_and_bind_mounts_exist(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    for name, svc in compose["services"].items():
        for v in svc.get("volumes") or []:
            src = v.split(":", 1)[0]
            if src.startswith("."):
                assert (ROOT / src).exists(), f"{name}: {src} does not exist"
            else:
                assert src in declared, f"{name}: volume {src} is not declared"


def test_revocation_consumer_and_simulator_use_the_worker_and_kafka(
    compose: dict[str, Any],
) -> None:
    rev = compose["services"]["revocations"]["command"]
    assert rev[:3] == ["agentwatch", "revocations", "follow"]
    jwks = rev[rev.index("--jwks") + 1]
    assert jwks == "http://worker:6066/.well-known/jwks.json"
    sim = compose["services"]["simulator"]["command"]
    assert (
        sim[:2] == ["agentwatch", "simulate"] and sim[sim.index("--bootstrap") + 1] == "kafka:9092"
    )


def test_dockerfile_matches(compose: dict[str, Any]) -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "EXPOSE 6066" in text and 'CMD ["agentwatch", "worker"]' in text
    for src in re.findall(r"^COPY (?!--)(\S+)", text, re.M):
        assert (ROOT / src).exists(), f"Dockerfile copies {src}, which does not exist"


def _compose_cli() -> list[str] | None:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def test_compose_cli_accepts_the_file(tmp_path: Path) -> None:
    cli = _compose_cli()
    if cli is None:
        pytest.skip("no docker compose client installed (apt-get install docker-compose)")
    text = COMPOSE.read_text()
    if cli == ["docker-compose"]:  # v1 predates the top-level `name`
        text = re.sub(r"^name: .*\n", "", text, flags=re.M)
    target = tmp_path / "docker-compose.yml"
    target.write_text(text)
    for item in ("deploy", "Dockerfile"):
        (tmp_path / item).symlink_to(ROOT / item)
    res = subprocess.run(
        [*cli, "-f", str(target), "config", "-q"], capture_output=True, text=True, cwd=tmp_path
    )
    assert res.returncode == 0, res.stderr


def test_prometheus_discovers_every_worker_replica(compose: dict[str, Any]) -> None:
    prom = yaml.safe_load(PROM.read_text())
    job = next(j for j in prom["scrape_configs"] if j["job_name"] == "agentwatch")
    sd = job["dns_sd_configs"][0]
    assert sd["names"] == ["worker"] and sd["type"] == "A"
    assert str(sd["port"]) == compose["services"]["worker"]["environment"]["AGENTWATCH_WEB_PORT"]
    assert job["metrics_path"] == "/metrics"
    if shutil.which("promtool"):
        res = subprocess.run(
            ["promtool", "check", "config", str(PROM)], capture_output=True, text=True
        )
        assert res.returncode == 0, res.stdout + res.stderr


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def _exprs(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def test_grafana_provisioning_points_at_the_dashboard_and_datasource(
    dashboard: dict[str, Any], compose: dict[str, Any]
) -> None:
    ds = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    source = ds["datasources"][0]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    prov = yaml.safe_load((GRAFANA / "provisioning/dashboards/agentwatch.yml").read_text())
    path = prov["providers"][0]["options"]["path"]
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./deploy/grafana/dashboards:{path}:ro" in mounts
    for p in dashboard["panels"]:
        if p["type"] != "row":
            assert p["datasource"]["uid"] == source["uid"], p["title"]
            assert all(t["datasource"]["uid"] == source["uid"] for t in p["targets"])


def test_dashboard_is_well_formed(dashboard: dict[str, Any]) -> None:
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for p in dashboard["panels"]:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] > 0
        for t in p.get("targets", []):
            e = t["expr"]
            assert e.count("(") == e.count(")") and e.count("[") == e.count("]"), e
            assert e.count("{") == e.count("}"), e
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for needed in (
        "events/s",
        "dead-letter",
        "alerts",
        "kill",
        "p50 / p99",
        "active sessions",
        "sink lag",
        "insert errors",
    ):
        assert needed in titles, needed


def _sample_names(registry: Any) -> set[str]:
    """Series names a registry exports (labelled metrics count before their first child)."""
    names = set()
    for fam in registry.collect():
        names |= {s.name for s in fam.samples}
        if fam.type == "counter":
            names.add(fam.name + "_total")
        elif fam.type == "histogram":
            names |= {fam.name + suffix for suffix in ("_bucket", "_sum", "_count")}
        else:
            names.add(fam.name)
    return names


def _queried(dashboard: dict[str, Any]) -> set[str]:
    return {m for e in _exprs(dashboard) for m in re.findall(r"\bagentwatch_[a-z_]+\b", e)}


def test_dashboard_sink_metrics_are_exported(dashboard: dict[str, Any]) -> None:
    from prometheus_client import CollectorRegistry

    from monitor.sinks.base import SinkStats
    from monitor.sinks.metrics import SinkCollector

    class Stub:
        def stats(self) -> SinkStats:
            return SinkStats(rows_inserted={"events": 3})

    reg = CollectorRegistry()
    reg.register(SinkCollector(Stub()))
    exported = _sample_names(reg)
    mine = {m for m in _queried(dashboard) if m.split("_")[1] == "sink"} - {
        "agentwatch_sink_buffered_rows",  # exported by the worker's own metrics
        "agentwatch_sink_oldest_unflushed_age_seconds",
        "agentwatch_sink_errors_total",
    }
    assert mine and mine <= exported, mine - exported


def test_dashboard_worker_metrics_are_exported(dashboard: dict[str, Any]) -> None:
    metrics = pytest.importorskip("monitor.metrics", reason="the worker's metrics module")
    exported = _sample_names(metrics.Metrics().registry)
    from monitor.sinks.metrics import METRIC_NAMES

    missing = {m for m in _queried(dashboard) if m not in exported} - set(METRIC_NAMES)
    assert not missing, f"the dashboard queries metrics nobody exports: {sorted(missing)}"
