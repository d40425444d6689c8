"""The Python API of seed 004 (``add_cron_job``, ``add_interval_job``, ``remove_job``, ``run_now``,
``get_job_stats``) over the persistent runtime jobs, and ``broker-jobs jobs stats``."""

from __future__ import annotations

import json

import pika
import pytest

from broker_jobs.errors import ConfigError, NotFoundError
from broker_jobs.scheduling.runtime_api import RuntimeJobs
from tests.support import run_cli


@pytest.fixture
def env(settings_env, tmp_path, rabbitmq_url):
    values = {"DATABASE_URL": f"sqlite:///{tmp_path}/api.sqlite3", "RABBITMQ_URL": rabbitmq_url,
              "JOBS_CONFIG": str(tmp_path / "jobs.yaml")}
    (tmp_path / "jobs.yaml").write_text("jobs: []\n")
    for key, value in values.items():
        settings_env.setenv(key, value)
    return values


@pytest.mark.rabbitmq
def test_the_seeds_calls_store_runtime_jobs_every_scheduler_runs(env, rabbit_broker):
    scheduler = RuntimeJobs()
    daily = scheduler.add_cron_job(job_id="daily_update", hour=2, minute=0,
                                   pipeline_config={"incremental_mode": "auto", "ci_mode": True})
    assert (daily["actor"], daily["trigger"], daily["origin"]) == ("etl_pipeline", "at 02:00 every day (UTC)",
                                                                   "runtime")
    scheduler.add_interval_job(job_id="interval_check", hours=6, pipeline_config={"dry_run": True})
    scheduler.add_cron_job(job_id="weekend_rebuild", day_of_week="sat", hour=2,
                           pipeline_config={"force_recreate": True})
    listed = {row["id"]: row for row in run_json("jobs", "list", "--json", env=env)}
    assert listed["interval_check"]["trigger"] == "every 6 hours"
    assert listed["weekend_rebuild"]["trigger"] == "at 02:00 every Saturday (UTC)"

    ran = scheduler.run_now("daily_update")
    assert ran["fire_id"].startswith("daily_update@manual:") and ran["queue"] == "etl"
    connection = pika.BlockingConnection(pika.URLParameters(env["RABBITMQ_URL"]))
    channel, queued = connection.channel(), []
    while (got := channel.basic_get("etl", auto_ack=True))[0] is not None:  # other tests share the vhost
        queued.append(json.loads(got[2]))
    connection.close()
    [message] = [m for m in queued if m["message_id"] == ran["message_id"]]
    assert message["actor_name"] == "etl_pipeline"
    assert message["kwargs"] == {"incremental_mode": "auto", "ci_mode": True}

    scheduler.remove_job("interval_check")
    assert "interval_check" not in {row["id"] for row in scheduler.get_jobs()}
    with pytest.raises(NotFoundError):
        scheduler.remove_job("interval_check")
    stats = scheduler.get_job_stats()
    assert (stats["jobs_executed"], stats["jobs_failed"], stats["jobs_missed"]) == (0, 0, 0)
    assert set(stats["jobs"]) == {"daily_update", "weekend_rebuild"}


def test_a_bad_field_is_refused_with_its_name_and_nothing_stored(env):
    scheduler = RuntimeJobs()
    with pytest.raises(ConfigError, match="day_of_week: 'someday' is not a weekday"):
        scheduler.add_cron_job("x", day_of_week="someday", pipeline_config={})
    with pytest.raises(ConfigError, match="interval must be longer than 0"):
        scheduler.add_interval_job("y", pipeline_config={})
    assert scheduler.get_jobs() == []


def test_jobs_stats_prints_per_job_and_total(env):
    RuntimeJobs().add_interval_job("hourly", hours=1, pipeline_config={"dry_run": True})
    result = run_cli("jobs", "stats", env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["JOB", "EXECUTED", "FAILED", "MISSED", "LAST_ERROR"]
    assert [line.split()[:4] for line in lines[1:]] == [["hourly", "0", "0", "0"], ["TOTAL", "0", "0", "0"]]
    as_json = run_json("jobs", "stats", "--json", env=env)
    assert as_json["total"] == {"jobs_executed": 0, "jobs_failed": 0, "jobs_missed": 0, "last_error": None}


def run_json(*args: str, env: dict[str, str]):
    result = run_cli(*args, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)
