"""The system as users run it: a `dramatiq broker_jobs.actors` worker and `.send()` from elsewhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT, run_cli, start, stop, wait_for

pytestmark = pytest.mark.rabbitmq


@pytest.fixture
def env(rabbitmq_url: str, tmp_path: Path) -> dict[str, str]:
    return {"RABBITMQ_URL": rabbitmq_url, "DATABASE_URL": f"sqlite:///{tmp_path}/jobs.sqlite3",
            "RETRY_MIN_BACKOFF": "0.1", "PYTHONUNBUFFERED": "1"}


@pytest.fixture
def worker(env: dict[str, str], tmp_path: Path):
    log = tmp_path / "worker.log"
    proc = start(["-m", "dramatiq", "broker_jobs.actors", "--processes", "1", "--threads", "2"], env, log)
    yield proc
    stop(proc, timeout=20)
    assert "PRECONDITION_FAILED" not in log.read_text()


def history(env: dict[str, str]) -> list[dict]:
    result = run_cli("history", "--json", env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def wait_for_status(env: dict[str, str], message_id: str, statuses: set[str], timeout: float = 30) -> dict:
    def reached() -> dict | None:
        return next((run for run in history(env) if run["message_id"] == message_id and run["status"] in statuses),
                    None)

    try:
        return wait_for(reached, f"message {message_id} to reach {statuses}", timeout)
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {history(env)}") from None


def test_a_send_from_another_process_is_executed_by_the_dramatiq_worker(env, worker):
    code = "from broker_jobs.actors import diagnostics; print(diagnostics.send().message_id)"
    sent = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True,
                          text=True, cwd=ROOT, timeout=60)
    assert sent.returncode == 0, sent.stderr
    run = wait_for_status(env, sent.stdout.strip(), {"succeeded"})
    assert run["actor"] == "diagnostics" and run["queue"] == "default" and run["priority"] == "high"
    assert run["report"]["ok"] is True
    assert {c["name"] for c in run["report"]["checks"]} >= {"rabbitmq", "database"}


def test_the_cli_round_trip_send_history_dlq_replay(env, worker):
    sent = run_cli("send", "diagnostics", "--args", "[1]", env=env)
    assert sent.returncode == 0, sent.stderr
    bad_id = sent.stdout.strip()
    wait_for_status(env, bad_id, {"dead"})

    listed = run_cli("dlq", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    [letter] = [d for d in json.loads(listed.stdout) if d["id"] == bad_id]
    assert "too many positional arguments" in letter["reason"]

    replayed = run_cli("dlq", "replay", "--id", bad_id, "--args", "[]", "--json", env=env)
    assert replayed.returncode == 0, replayed.stderr
    [done] = json.loads(replayed.stdout)["replayed"]
    wait_for_status(env, done["replayed_as"], {"succeeded"})
    after = json.loads(run_cli("dlq", "list", "--json", env=env).stdout)
    assert bad_id not in {d["id"] for d in after}


def test_queues_reports_every_builtin_queue(env, worker):
    result = run_cli("queues", "--json", env=env)
    assert result.returncode == 0, result.stderr
    rows = {row["queue"]: row for row in json.loads(result.stdout)}
    assert {"etl", "sync", "maintenance", "default"} <= set(rows)
    assert all(row["dead"] >= 0 and row["ready"] >= 0 for row in rows.values())


def test_queues_json_gives_the_age_of_the_oldest_dead_letter_of_each_queue_that_has_one(env, worker):
    sent = run_cli("send", "diagnostics", "--args", "[1]", env=env)  # too many arguments: dead at once
    assert sent.returncode == 0, sent.stderr
    wait_for_status(env, sent.stdout.strip(), {"dead"})

    def counted() -> dict | None:  # RabbitMQ's management API refreshes its counts every few seconds
        rows = {row["queue"]: row for row in json.loads(run_cli("queues", "--json", env=env).stdout)}
        return rows if rows["default"]["dead"] >= 1 else None

    rows = wait_for(counted, "the dead letter to be counted in default.XQ", 30)
    default = rows["default"]
    assert isinstance(default["oldest_dead_age_s"], float), default
    assert 0 <= default["oldest_dead_age_s"] < 3600
    assert all(row["oldest_dead_age_s"] is None for row in rows.values() if row["dead"] == 0)
    table = run_cli("queues", env=env)
    assert table.returncode == 0 and "OLDEST_DEAD_AGE_S" in table.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["send", "no_such_job"], "unknown actor 'no_such_job'"),
        (["send", "diagnostics", "--kwargs", "[1]"], "--kwargs: expected a JSON object"),
        (["send", "diagnostics", "--priority", "urgent"], "--priority"),
        (["dlq", "replay"], "say which dead letters"),
        (["history", "--status", "weird"], "Invalid value for '--status'"),
    ],
)
def test_user_mistakes_get_one_line_and_a_non_zero_exit(env, args, message):
    result = run_cli(*args, env=env)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_a_bad_environment_value_stops_the_worker_with_one_line(env):
    result = subprocess.run(
        [sys.executable, "-m", "dramatiq", "broker_jobs.actors", "--processes", "1", "--threads", "1"],
        env={**os.environ, **env, "ETL_CONCURRENCY": "lots"}, capture_output=True, text=True, cwd=ROOT,
        timeout=60,
    )
    assert result.returncode != 0
    assert "ETL_CONCURRENCY" in result.stderr
    assert "Traceback" not in result.stderr
