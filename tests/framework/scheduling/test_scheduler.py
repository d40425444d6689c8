"""The scheduler's tick on a fake clock: slots, misfire, overlap, pauses, jitter, fencing, retries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from broker_jobs.coordination import get_claims
from broker_jobs.scheduling import control
from broker_jobs.store.models import job_runs, leases
from tests.support.scheduling import T0, Clock, jobs_file, make_scheduler


@pytest.fixture
def probe(stub_broker):
    from broker_jobs import job

    @job(queue="default", priority="low", broker=stub_broker)
    def sched_probe(n: int = 0) -> None:
        """A scheduled probe."""

    return sched_probe


def probe_file(tmp_path, **fields):
    lines = "".join(f"    {k}: {v}\n" for k, v in {"interval": "{seconds: 10}", **fields}.items())
    return jobs_file(tmp_path, "jobs:\n  - id: probe\n    actor: sched_probe\n" + lines)


def fire_ids(scheduler):
    return [m.options["fire_id"] for m in scheduler.publisher.published]


def outcomes(scheduler, job_id="probe"):
    return [(row["slot"], row["outcome"]) for row in reversed(scheduler.store.audit(job_id, 100))]


def stamp(seconds):
    return (T0 + timedelta(seconds=seconds)).strftime("probe@%Y-%m-%dT%H:%M:%SZ")


def test_a_due_slot_is_published_once_with_its_fire_id_and_priority(tmp_path, stub_broker, probe):
    clock = Clock()
    scheduler = make_scheduler(probe_file(tmp_path, kwargs="{n: 3}", priority="high", overlap="allow"),
                               stub_broker, clock)
    assert scheduler.step_lease()
    assert scheduler.next_run() == T0 + timedelta(seconds=10)
    scheduler.tick(clock.advance(10.003))
    scheduler.tick(clock.advance(0.5))
    [message] = scheduler.publisher.published
    assert message.actor_name == "sched_probe" and message.kwargs == {"n": 3}
    assert message.options["fire_id"] == stamp(10)
    assert (message.options["priority"], message.options["broker_priority"]) == ("high", 9)
    assert message.options["slot"] == "2026-01-01T10:00:10Z" and message.options["job_id"] == "probe"
    assert outcomes(scheduler) == [(T0 + timedelta(seconds=10), "fired")]
    assert stub_broker.queues["default"].qsize() == 1


@pytest.mark.parametrize(("policy", "grace", "fired", "expected"), [
    ("skip", 300, [], ["missed"] * 5),
    ("run_once", 300, [50], ["missed"] * 4 + ["caught_up"]),
    ("run_all", 300, [10, 20, 30, 40, 50], ["caught_up"] * 5),
    ("run_all", 25, [30, 40, 50], ["skipped_stale"] + ["caught_up"] * 3),  # older slots: one summary row
])
def test_a_restarted_scheduler_applies_the_misfire_policy(tmp_path, stub_broker, probe, policy, grace,
                                                          fired, expected):
    clock = Clock()
    path = probe_file(tmp_path, misfire=policy, misfire_grace=grace, overlap="allow")
    first = make_scheduler(path, stub_broker, clock)
    assert first.step_lease()
    first.release()  # stopped at T0 after recording the job's start
    clock.advance(55)
    second = make_scheduler(path, stub_broker, clock)
    assert second.step_lease()
    second.tick(clock.now)
    assert fire_ids(second) == [stamp(s) for s in fired]
    assert [o for _, o in outcomes(second)] == expected


def test_overlap_skip_waits_for_the_previous_run_to_finish(tmp_path, stub_broker, probe):
    clock = Clock()
    scheduler = make_scheduler(probe_file(tmp_path), stub_broker, clock)
    scheduler.step_lease()
    scheduler.tick(clock.advance(10))
    scheduler.tick(clock.advance(10))  # slot 20: slot 10 is still queued
    with scheduler.store.engine.begin() as conn:
        conn.execute(job_runs.insert().values(message_id="m1", actor="sched_probe", queue="default",
                                                      status="succeeded", fire_id=stamp(10)))
    scheduler.tick(clock.advance(10))
    assert fire_ids(scheduler) == [stamp(10), stamp(30)]
    rows = scheduler.store.audit("probe")
    assert rows[1]["outcome"] == "skipped_overlap" and stamp(10) in rows[1]["detail"]


def test_buffer_one_queues_one_run_behind_the_running_one(tmp_path, stub_broker, probe):
    clock = Clock()
    scheduler = make_scheduler(probe_file(tmp_path, overlap="buffer_one"), stub_broker, clock)
    scheduler.step_lease()
    scheduler.tick(clock.advance(10))
    with scheduler.store.engine.begin() as conn:
        conn.execute(job_runs.insert().values(message_id="m1", actor="sched_probe", queue="default",
                                                      status="running", fire_id=stamp(10)))
    scheduler.tick(clock.advance(10))
    scheduler.tick(clock.advance(10))
    assert fire_ids(scheduler) == [stamp(10), stamp(20)]
    assert [o for _, o in outcomes(scheduler)] == ["fired", "fired", "skipped_overlap"]


def test_replace_supersedes_the_queued_run_which_workers_then_drop(tmp_path, stub_broker, stub_worker, probe):
    clock = Clock()
    scheduler = make_scheduler(probe_file(tmp_path, overlap="replace"), stub_broker, clock)
    scheduler.step_lease()
    stub_worker.pause()
    scheduler.tick(clock.advance(10))
    scheduler.tick(clock.advance(10))
    assert fire_ids(scheduler) == [stamp(10), stamp(20)]
    assert get_claims().claim("fire:" + stamp(10), "someone", 60) == f"superseded by {stamp(20)}"
    assert "superseded" in [o for _, o in outcomes(scheduler)]
    stub_worker.resume()
    stub_broker.join("default")
    stub_worker.join()
    from broker_jobs.store.db import get_engine
    from broker_jobs.store.history import writer

    writer.flush()
    ids = [m.message_id for m in scheduler.publisher.published]
    with get_engine().connect() as conn:  # the workers' history database
        runs = dict(conn.execute(job_runs.select().with_only_columns(job_runs.c.fire_id, job_runs.c.status)
                                 .where(job_runs.c.message_id.in_(ids))).all())
    assert runs[stamp(10)] == "skipped" and runs[stamp(20)] == "succeeded"


def test_a_paused_job_records_paused_slots_and_resumes_without_catch_up(tmp_path, stub_broker, probe):
    clock = Clock()
    path = probe_file(tmp_path, misfire="run_all", overlap="allow")
    scheduler = make_scheduler(path, stub_broker, clock)
    scheduler.step_lease()
    control.pause(scheduler.settings, "probe", "upstream down")
    scheduler.refresh()
    scheduler.tick(clock.advance(10))
    scheduler.tick(clock.advance(10))
    control.resume(scheduler.settings, "probe")
    scheduler.refresh()
    scheduler.tick(clock.advance(10))
    assert fire_ids(scheduler) == [stamp(30)]
    rows = scheduler.store.audit("probe")
    assert [r["outcome"] for r in reversed(rows)] == ["paused", "paused", "fired"]
    assert rows[-1]["detail"] == "upstream down"


def test_jitter_delays_the_message_through_the_delay_queue(tmp_path, stub_broker, probe):
    clock = Clock()
    scheduler = make_scheduler(probe_file(tmp_path, jitter=30, overlap="allow"), stub_broker, clock)
    scheduler.step_lease()
    scheduler.tick(clock.advance(10))
    [message] = scheduler.publisher.published
    assert message.queue_name == "default.DQ"
    assert 0 < message.options["eta"] - message.message_timestamp <= 30_000
    assert message.options["fire_id"] == stamp(10)  # the slot itself stays exact


def test_a_deposed_leader_cannot_record_and_steps_down(tmp_path, stub_broker, probe):
    clock = Clock()
    path = probe_file(tmp_path, overlap="allow")
    old = make_scheduler(path, stub_broker, clock)
    assert old.step_lease()
    with old.store.engine.begin() as conn:  # the old leader froze past its lease
        conn.execute(update(leases).values(expires_at=0.0))
    new = make_scheduler(path, stub_broker, clock)
    assert new.step_lease() and new.token > old.token
    clock.advance(10)
    old.tick(clock.now)  # wakes up and publishes: its record is refused
    new.tick(clock.now)
    assert old.token is None
    assert fire_ids(old) == fire_ids(new) == [stamp(10)]  # same fire id: the workers keep one
    assert [(r["outcome"], r["token"]) for r in new.store.audit("probe")] == [("fired", new.token)]


def test_an_unconfirmed_publish_is_retried_not_forgotten(tmp_path, stub_broker, probe):
    clock = Clock()
    scheduler = make_scheduler(probe_file(tmp_path, overlap="allow"), stub_broker, clock)
    scheduler.step_lease()
    scheduler.publisher.fail = 2
    scheduler.tick(clock.advance(10))
    scheduler.tick(clock.advance(1))
    assert fire_ids(scheduler) == [] and scheduler.store.audit("probe") == []
    scheduler.tick(clock.advance(1))
    assert fire_ids(scheduler) == [stamp(10)]
    assert [r["outcome"] for r in scheduler.store.audit("probe")] == ["fired"]


def test_runtime_jobs_and_config_edits_reach_the_running_scheduler(tmp_path, stub_broker, probe):
    clock = Clock()
    path = probe_file(tmp_path, overlap="allow")
    scheduler = make_scheduler(path, stub_broker, clock)
    scheduler.step_lease()
    control.add_runtime_job(scheduler.settings, {"id": "extra", "actor": "sched_probe", "interval": 5,
                                                 "kwargs": {"n": 1}, "overlap": "allow"})
    path.write_text(path.read_text().replace("seconds: 10", "seconds: 20"))
    import os

    os.utime(path, (1, 1))
    scheduler.refresh()
    assert set(scheduler.jobs) == {"probe", "extra"}
    for _ in range(4):
        scheduler.tick(clock.advance(5))
    assert sorted(fire_ids(scheduler)) == ["extra@2026-01-01T10:00:05Z", "extra@2026-01-01T10:00:10Z",
                                           "extra@2026-01-01T10:00:15Z", "extra@2026-01-01T10:00:20Z",
                                           stamp(20)]
    control.remove_runtime_job(scheduler.settings, "extra")
    scheduler.refresh()
    assert set(scheduler.jobs) == {"probe"}
    path.write_text("jobs: [\n")
    os.utime(path, (2, 2))
    scheduler.refresh()  # a broken edit keeps the previous jobs
    assert "probe" in scheduler.jobs and "jobs file not reloaded" in scheduler.last_error


def test_a_new_job_starts_at_its_next_slot_without_catching_up(tmp_path, stub_broker, probe):
    clock = Clock(datetime(2026, 1, 1, 10, 0, 7, tzinfo=UTC))
    scheduler = make_scheduler(probe_file(tmp_path, misfire="run_all"), stub_broker, clock)
    scheduler.step_lease()
    scheduler.tick(clock.now)
    assert fire_ids(scheduler) == []
    assert scheduler.next_run() == T0 + timedelta(seconds=10)
