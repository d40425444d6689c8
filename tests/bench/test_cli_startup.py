"""``benchmarks/cli_startup.py`` (the CLI section of ``make bench``) runs every command for real and reports ratios.

No figure is asserted (the machine is shared): what is checked is that each command ran and succeeded (``send``
published to a vhost of its own) and that every broker-jobs row carries its ratio to ``dramatiq --help``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import RABBITMQ_URL, ROOT, port_open, unavailable
from tests.support import vhost

pytestmark = [pytest.mark.rabbitmq]


def test_the_cli_startup_benchmark_runs_each_command_and_prints_its_ratio_to_dramatiq_help(tmp_path):
    if not port_open(RABBITMQ_URL, 5672):
        unavailable(f"RabbitMQ at {RABBITMQ_URL}")
    with vhost("bj-cli-bench") as amqp_url:
        if amqp_url is None:
            unavailable("a vhost of its own on RabbitMQ")
        env = {**os.environ, "RABBITMQ_URL": amqp_url, "DATABASE_URL": f"sqlite:///{tmp_path}/cli.sqlite3"}
        env.pop("JOBS_CONFIG", None)
        done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "cli_startup.py"), "--runs", "2", "--json"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = {row["command"]: row for row in json.loads(done.stdout.strip().splitlines()[-1])["cli"]}
    assert set(rows) == {"dramatiq --help", "broker-jobs --help", "broker-jobs jobs list",
                         "broker-jobs history --limit 1", "broker-jobs send diagnostics"}
    for command, row in rows.items():
        assert row["failures"] == 0 and row["runs"] == 2, (command, row["error"])
        assert row["median_ms"] > 0
        if command != "dramatiq --help":
            assert row["ratio"] is not None and row["ratio"] > 0 and row["target"] in (2.5, 5.0), command
    simulated = {(row["app_env"], row["output"]): row
                 for row in json.loads(done.stdout.strip().splitlines()[-1])["simulate"]}
    assert set(simulated) == {(app_env, output) for app_env in ("development", "production")
                              for output in ("table", "json")}
    for case, row in simulated.items():
        # A year of the shipped jobs file: every 5 minutes at least somewhere, so well over 100,000 slots.
        assert row["error"] is None and row["slots"] > 100_000 and row["median_ms"] > 0, (case, row)
    for app_env in ("development", "production"):
        assert simulated[app_env, "table"]["slots"] == simulated[app_env, "json"]["slots"], app_env
