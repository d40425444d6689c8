"""deploy/ensure-services.sh, the Makefile and .ci/run: the set-up a newcomer runs."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.deploy.conftest import tool
from tests.support import RABBITMQ_URL, ROOT, TEST_POSTGRES_URL, TEST_REDIS_URL, port_open, unavailable

SCRIPT = ROOT / "deploy" / "ensure-services.sh"
#: Ports nothing listens on, so the script walks its install-and-start path.
CLOSED = {"ENSURE_RABBITMQ_PORT": "1", "ENSURE_MANAGEMENT_PORT": "2", "ENSURE_REDIS_PORT": "3",
          "ENSURE_POSTGRES_PORT": "4"}
#: Leave the test tools (Chromium, Prometheus) out of the services' own tests.
NO_TOOLS = {"ENSURE_SKIP_BROWSER": "1", "ENSURE_SKIP_PROMETHEUS": "1"}


def ensure(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT)], env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=120, cwd=ROOT)


def test_the_shell_scripts_pass_shellcheck():
    result = subprocess.run([tool("shellcheck"), "--severity=style", str(SCRIPT), str(ROOT / ".ci" / "run")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_running_services_are_left_alone():
    for url, port in ((RABBITMQ_URL, 5672), (TEST_REDIS_URL, 6379), (TEST_POSTGRES_URL, 5432)):
        if not port_open(url, port):
            unavailable(f"the service at {url}")
    result = ensure(**NO_TOOLS)
    assert result.returncode == 0, result.stderr
    for name, port in (("RabbitMQ", 5672), ("Redis", 6379), ("PostgreSQL", 5432)):
        assert f"{name} already answers on 127.0.0.1:{port}" in result.stdout
    assert "starting" not in result.stdout
    assert "+ " not in result.stdout


def test_as_root_it_would_start_each_missing_service_with_the_documented_command():
    result = ensure(ENSURE_DRY_RUN="1", ENSURE_AS_ROOT="1", **NO_TOOLS, **CLOSED)
    assert result.returncode == 0, result.stderr
    commands = [line[2:] for line in result.stdout.splitlines() if line.startswith("+ ")]
    started = [c for c in commands if not c.startswith("apt-get")]
    assert started[:3] == [
        "rabbitmq-server -detached",
        "rabbitmq-plugins enable rabbitmq_management rabbitmq_prometheus",
        "redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no",
    ]
    assert started[3].startswith("pg_ctlcluster --skip-systemctl-redirect ")
    assert started[3].endswith(" main start")
    assert sum(c.startswith("apt-get update") for c in commands) <= 1
    assert "would wait up to 90s for PostgreSQL on 127.0.0.1:4" in result.stdout
    assert "nothing was changed" in result.stdout


def test_without_root_it_prints_what_to_run_and_fails():
    result = ensure(ENSURE_DRY_RUN="1", ENSURE_AS_ROOT="0", **NO_TOOLS, **CLOSED)
    assert result.returncode == 1
    assert "not running: RabbitMQ RabbitMQ management API Redis PostgreSQL." in result.stderr
    assert "    rabbitmq-server -detached\n" in result.stderr
    assert "host all postgres 127.0.0.1/32 trust" in result.stderr


def test_as_root_it_installs_prometheus_when_a_command_is_missing_and_never_starts_it():
    result = ensure(ENSURE_DRY_RUN="1", ENSURE_AS_ROOT="1", ENSURE_SKIP_BROWSER="1",
                    ENSURE_PROMETHEUS_COMMANDS="promtool no-such-prometheus", **CLOSED)
    assert result.returncode == 0, result.stderr
    commands = [line[2:] for line in result.stdout.splitlines() if line.startswith("+ ")]
    assert commands[-1] == ("env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "
                            "prometheus")
    assert not any(c.startswith(("prometheus", "systemctl")) for c in commands)
    assert sum(c.startswith("apt-get update") for c in commands) <= 1


def test_without_root_a_missing_prometheus_is_named_with_its_install_command():
    result = ensure(ENSURE_DRY_RUN="1", ENSURE_AS_ROOT="0", ENSURE_SKIP_BROWSER="1",
                    ENSURE_PROMETHEUS_COMMANDS="no-such-prometheus", **CLOSED)
    assert result.returncode == 1
    assert "prometheus (monitoring tests)" in result.stderr
    assert "    apt-get install -y --no-install-recommends prometheus\n" in result.stderr


def test_ci_runs_make_test_and_nothing_else():
    ci = ROOT / ".ci" / "run"
    assert os.access(ci, os.X_OK)
    lines = [line for line in ci.read_text().splitlines() if line and not line.startswith("#")]
    assert lines == ["set -euo pipefail", 'cd "$(dirname "${BASH_SOURCE[0]}")/.."', "make test",
                     "exec make test-cluster"]
    assert ci.read_text().startswith("#!/usr/bin/env bash\n")


@pytest.mark.parametrize("target", ["test", "test-cluster", "run", "bench", "lint", "clean", "venv", "services"])
def test_every_documented_make_target_exists(target):
    result = subprocess.run(["make", "-n", "--no-print-directory", target], capture_output=True, text=True,
                            cwd=ROOT, env={**os.environ, "MAKEFLAGS": ""})
    assert result.returncode == 0, result.stderr


def test_make_test_runs_the_default_suite_without_soak_tests():
    result = subprocess.run(["make", "-n", "test"], capture_output=True, text=True, cwd=ROOT)
    [pytest_line] = [line for line in result.stdout.splitlines() if "pytest" in line]
    assert '-m "not soak"' in pytest_line and pytest_line.endswith(" tests")


def test_make_refuses_a_python_older_than_3_11_with_one_clear_message(tmp_path):
    old_python = tmp_path / "python3"
    old_python.write_text('#!/bin/sh\n[ "$1" = "--version" ] && echo "Python 3.9.2" && exit 0\nexit 1\n')
    old_python.chmod(0o755)
    # -B: rebuild the install stamp, which is where the version is checked; nothing is installed.
    result = subprocess.run(["make", "-B", f"PYTHON={old_python}", "venv"], capture_output=True, text=True,
                            cwd=ROOT, timeout=60)
    assert result.returncode != 0
    assert "needs Python 3.11 or newer" in result.stderr and "Python 3.9.2" in result.stderr
