"""``enqueue`` for an application's own APScheduler: the message it publishes and the fire id's slot."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
from apscheduler.executors.base import run_job
from apscheduler.schedulers.background import BackgroundScheduler

from broker_jobs.errors import ArgumentsInvalid, NotFoundError
from broker_jobs.scheduling.enqueue import outgoing, scheduled_run_time
from tests.support.scheduling import fake_settings, jobs_file


def test_the_run_time_is_the_one_apscheduler_scheduled_not_the_clock():
    seen = []
    scheduler = BackgroundScheduler(timezone="UTC")
    job = scheduler.add_job(lambda: seen.append(scheduled_run_time()), "interval", hours=1, misfire_grace_time=None)
    slot = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
    run_job(job, "default", [slot], logging.getLogger(__name__).name)  # what APScheduler's executors call
    assert seen == [slot]
    assert scheduled_run_time() is None  # outside APScheduler


def test_an_actor_is_published_with_its_queue_priority_and_a_slot_fire_id(tmp_path):
    settings = fake_settings(jobs_file(tmp_path, "jobs: []\n"))
    slot = datetime(2026, 1, 1, 2, 0, tzinfo=UTC)
    out = outgoing("etl_sync", (), {"entities": ["vault_documents"]}, slot, settings)
    assert (out.actor, out.queue, out.priority.label) == ("etl_sync", "etl", "medium")
    assert out.fire_id == "etl_sync@2026-01-01T02:00:00Z" and out.kwargs == {"entities": ["vault_documents"]}


def test_a_job_id_of_the_jobs_file_publishes_that_job_as_the_scheduler_would(tmp_path):
    path = jobs_file(tmp_path, """
        jobs:
          - {id: nightly, actor: etl_sync, cron: "0 2 * * *", priority: high, kwargs: {entities: [vault_documents]}}
    """)
    out = outgoing("nightly", (), {}, datetime(2026, 1, 1, 2, 0, tzinfo=UTC), fake_settings(path))
    assert (out.actor, out.priority.label, out.kwargs) == ("etl_sync", "high", {"entities": ["vault_documents"]})
    assert out.fire_id == "nightly@2026-01-01T02:00:00Z"


def test_outside_apscheduler_it_is_a_manual_run(tmp_path):
    out = outgoing("diagnostics", (), {}, None, fake_settings(jobs_file(tmp_path, "jobs: []\n")))
    assert out.fire_id.startswith("diagnostics@manual:") and out.slot is None


def test_unknown_names_and_bad_arguments_are_refused(tmp_path):
    settings = fake_settings(jobs_file(tmp_path, "jobs: []\n"))
    with pytest.raises(NotFoundError, match="'nope' is neither a job nor a job id"):
        outgoing("nope", (), {}, None, settings)
    with pytest.raises(ArgumentsInvalid):
        outgoing("diagnostics", (1, 2), {}, None, settings)
