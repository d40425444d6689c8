"""Operator controls: list, show, preview, pause, run-now, backfill, runtime jobs, status."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pika
import pytest

from broker_jobs.errors import ConfigError, NotFoundError
from broker_jobs.scheduling import control, firing
from tests.support.scheduling import fake_settings, jobs_file

JOBS = """
jobs:
  - id: nightly
    actor: sched_control_probe
    cron: "30 2 * * *"
    timezone: Europe/Paris
    priority: high
  - id: every-10s
    actor: sched_control_probe
    interval: 10
    kwargs: {n: 2}
"""


@pytest.fixture
def settings(tmp_path, stub_broker):
    from broker_jobs import job

    @job(queue="sched_control", broker=stub_broker)
    def sched_control_probe(n: int = 0) -> None: ...

    return fake_settings(jobs_file(tmp_path, JOBS))


def test_list_shows_every_job_with_its_trigger_in_words_and_next_run(settings):
    rows = {row["id"]: row for row in control.list_jobs(settings)}
    assert set(rows) == {"nightly", "every-10s"}
    assert rows["nightly"]["trigger"] == "at 02:30 every day (Europe/Paris)"
    assert rows["nightly"]["priority"] == "high" and rows["every-10s"]["priority"] == "medium"
    assert rows["every-10s"]["next_run"] > datetime.now(UTC)
    assert rows["nightly"]["paused"] is False and rows["nightly"]["last_run"] is None


def test_preview_is_dst_aware_in_the_jobs_time_zone(settings):
    times = control.preview(settings, "nightly", 3, datetime(2026, 3, 28, 12, 0))
    # 2026-03-29 02:30 does not exist in Paris (spring forward): shifted to 03:00.
    assert [t.isoformat() for t in times] == ["2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00",
                                              "2026-03-31T02:30:00+02:00"]


def test_pause_and_resume_are_shown_with_the_note(settings):
    control.pause(settings, "nightly", "vault migration")
    row = control.show_job(settings, "nightly")
    assert row["paused"] and row["note"] == "vault migration"
    control.resume(settings, "nightly")
    assert not control.show_job(settings, "nightly")["paused"]


def test_an_unknown_job_is_not_found(settings):
    for call in (lambda: control.show_job(settings, "nope"), lambda: control.pause(settings, "nope", None),
                 lambda: control.preview(settings, "nope"), lambda: firing.run_now(settings, "nope"),
                 lambda: control.remove_runtime_job(settings, "nope")):
        with pytest.raises(NotFoundError):
            call()


def test_runtime_jobs_are_validated_stored_and_removed(settings):
    with pytest.raises(ConfigError, match=r"^job.cron: "):
        control.add_runtime_job(settings, {"id": "r", "actor": "sched_control_probe", "cron": "* * *"})
    with pytest.raises(ConfigError, match="defined in"):
        control.add_runtime_job(settings, {"id": "nightly", "actor": "sched_control_probe", "interval": 60})
    row = control.add_runtime_job(settings, {"id": "r", "actor": "sched_control_probe", "interval": 60})
    assert row["origin"] == "runtime" and row["trigger"] == "every minute"
    assert "r" in {j["id"] for j in control.list_jobs(settings)}
    with pytest.raises(ConfigError, match="remove it there"):
        control.remove_runtime_job(settings, "nightly")
    control.remove_runtime_job(settings, "r")
    assert "r" not in {j["id"] for j in control.list_jobs(settings)}


def queued(rabbitmq_url: str, queue: str) -> list[dict]:
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
    channel = connection.channel()
    out = []
    while True:
        method, _, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            break
        out.append(json.loads(body))
    connection.close()
    return out


@pytest.mark.rabbitmq
def test_run_now_respects_the_overlap_policy_unless_forced(settings, rabbitmq_url, rabbit_broker):
    settings.amqp_urls = [rabbitmq_url]
    first = firing.run_now(settings, "every-10s")
    second = firing.run_now(settings, "every-10s")  # the first is still queued: overlap skip
    forced = firing.run_now(settings, "every-10s", force=True)
    assert first["fire_id"].startswith("every-10s@manual:") and "message_id" in first
    assert "still queued" in second["skipped"]
    messages = queued(rabbitmq_url, "sched_control")
    assert [m["message_id"] for m in messages] == [first["message_id"], forced["message_id"]]
    assert messages[0]["kwargs"] == {"n": 2} and messages[0]["options"]["broker_priority"] == 5
    outcomes = [row["outcome"] for row in control.show_job(settings, "every-10s")["audit"]]
    assert outcomes == ["manual", "skipped_overlap", "manual"]


@pytest.mark.rabbitmq
def test_backfill_publishes_every_slot_in_the_range(settings, rabbitmq_url, rabbit_broker):
    settings.amqp_urls = [rabbitmq_url]
    start, end = datetime(2026, 1, 1, 10, 0, 0, tzinfo=UTC), datetime(2026, 1, 1, 10, 0, 30, tzinfo=UTC)
    skipped = firing.backfill(settings, "every-10s", start, end)  # overlap skip: one at a time
    result = firing.backfill(settings, "every-10s", start, end, force=True)
    assert (skipped["slots"], skipped["published"], skipped["skipped_overlap"]) == (4, 1, 3)
    assert result["fire_ids"] == [f"every-10s@2026-01-01T10:00:{s:02d}Z" for s in (0, 10, 20, 30)]
    fire_ids = [m["options"]["fire_id"] for m in queued(rabbitmq_url, "sched_control")]
    assert fire_ids == ["every-10s@2026-01-01T10:00:00Z", *result["fire_ids"]]


def test_scheduler_status_reports_no_leader_when_none_runs(settings):
    status = control.scheduler_status(settings)
    assert status["leader"] is None and status["alive"] == 0


def test_the_jobs_commands_print_json_and_one_line_errors(tmp_path, settings_env):
    from click.testing import CliRunner

    from broker_jobs.app.main import cli as main

    path = jobs_file(tmp_path, "jobs:\n  - {id: d, actor: diagnostics, interval: 60}\n")
    settings_env.setenv("JOBS_CONFIG", str(path))
    settings_env.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/cli.sqlite3")
    listed = CliRunner().invoke(main, ["jobs", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.output)
    assert (row["id"], row["trigger"], row["priority"], row["paused"]) == ("d", "every minute", "high", False)
    missing = CliRunner().invoke(main, ["jobs", "pause", "nope", "--note", "x"])
    assert missing.exit_code == 2
    assert missing.output == "broker-jobs: unknown job 'nope' (known: d)\n"
