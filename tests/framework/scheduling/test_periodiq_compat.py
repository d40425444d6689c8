"""``periodiq broker_jobs.actors``: the jobs file's jobs as periodiq trigger actors."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from broker_jobs.scheduling.config import load_config
from broker_jobs.scheduling.periodiq_compat import periodiq_cron, register
from tests.support import ROOT
from tests.support.scheduling import fake_settings, jobs_file

JOBS = """
jobs:
  - {id: every-5m, actor: sched_pq_probe, interval: {minutes: 5}, kwargs: {n: 7}, priority: high}
  - {id: every-2h, actor: sched_pq_probe, interval: {hours: 2}}
  - {id: every-45s, actor: sched_pq_probe, interval: 45}
  - {id: sundays, actor: sched_pq_probe, cron: "0 5 * * sun"}
  - {id: with-seconds-zero, actor: sched_pq_probe, cron: "0 0 2 * * mon-fri"}
  - {id: with-seconds, actor: sched_pq_probe, cron: "30 * * * * *"}
  - {id: once, actor: sched_pq_probe, date: "2030-01-01T00:00:00Z"}
  - {id: paris, actor: sched_pq_probe, cron: "0 3 * * *", timezone: Europe/Paris}
  - {id: disabled, actor: sched_pq_probe, cron: "0 3 * * *", enabled: false}
"""


@pytest.fixture
def pq_broker(stub_broker):
    from periodiq import PeriodiqMiddleware

    from broker_jobs import job

    stub_broker.add_middleware(PeriodiqMiddleware())

    @job(queue="default", broker=stub_broker)
    def sched_pq_probe(n: int = 0) -> None: ...

    return stub_broker


def test_jobs_become_periodiq_crons_when_exact(tmp_path, pq_broker):
    path = jobs_file(tmp_path, JOBS)
    crons = {job.id: periodiq_cron(job)[0] for job in load_config(path, fake_settings(path)).jobs}
    assert crons == {
        "every-5m": "*/5 * * * *", "every-2h": "0 */2 * * *", "every-45s": None,
        "sundays": "0 5 * * 0,7",  # periodiq never fires a Sunday-only 0
        "with-seconds-zero": "0 2 * * 1,2,3,4,5", "with-seconds": None, "once": None,
        "paris": "0 3 * * *", "disabled": "0 3 * * *",
    }


def test_a_trigger_sends_the_real_job_with_its_arguments_priority_and_fire_id(tmp_path, pq_broker):
    path = jobs_file(tmp_path, JOBS)
    names = register(pq_broker, fake_settings(path))
    assert names == ["periodic__every_5m", "periodic__every_2h", "periodic__sundays",
                     "periodic__with_seconds_zero"]  # Paris needs TZ=Europe/Paris; disabled jobs are left out
    trigger = pq_broker.get_actor("periodic__every_5m")
    assert str(trigger.options["periodic"]) == "*/5 * * * *"
    message = trigger.send_with_options(scheduled_at="2026-01-01T10:05:00.400000+00:00")
    assert message.actor_name == "sched_pq_probe" and message.kwargs == {"n": 7}
    assert message.options["fire_id"] == "every-5m@2026-01-01T10:05:00Z"
    assert (message.options["priority"], message.options["broker_priority"]) == ("high", 9)
    assert pq_broker.queues["default"].qsize() == 1  # the trigger message itself is never sent


@pytest.mark.slow
def test_periodiq_loads_the_jobs_file(tmp_path, rabbitmq_url):
    minute = (datetime.now(UTC).minute + 30) % 60  # never due during the test
    path = jobs_file(tmp_path, f"jobs:\n  - {{id: pq, actor: diagnostics, cron: '{minute} 3 * * *'}}\n")
    env = {**os.environ, "RABBITMQ_URL": rabbitmq_url, "JOBS_CONFIG": str(path), "TZ": "UTC",
           "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3"}
    process = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "periodiq"), "broker_jobs.actors"],
                               env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output = ""
        for line in process.stdout:  # type: ignore[union-attr]
            output += line
            if "Nothing to do until" in line or "periodic__pq" in line:
                break
    finally:
        process.kill()
        process.wait()
    assert "periodic__pq" in output, output
