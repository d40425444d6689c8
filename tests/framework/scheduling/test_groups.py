"""Seed 001: a scheduler per job group (own lease, own fence: groups fail apart), and pausing whole schedulers."""

from __future__ import annotations

from datetime import timedelta

import pytest

from broker_jobs.errors import ConfigError, NotFoundError
from broker_jobs.scheduling import control
from broker_jobs.scheduling.lease import DatabaseLease, lease_name
from broker_jobs.scheduling.scheduler import Scheduler
from broker_jobs.store.scheduler_state import open_scheduler_store
from tests.support import run_cli
from tests.support.scheduling import T0, Clock, StubPublisher, fake_settings, jobs_file


@pytest.fixture
def probes(stub_broker):
    from broker_jobs import job

    @job(queue="default", priority="low", broker=stub_broker)
    def group_probe(n: int = 0) -> None:
        """A scheduled probe."""

    return group_probe


BODY = """\
jobs:
  - id: csv-import
    actor: group_probe
    interval: {seconds: 10}
    overlap: allow
    group: csv
  - id: sessions
    actor: group_probe
    interval: {seconds: 10}
    overlap: allow
    group: sessions
  - id: loose
    actor: group_probe
    interval: {seconds: 10}
    overlap: allow
"""


def group_scheduler(path, broker, clock, group):
    settings = fake_settings(path)
    store = open_scheduler_store(settings.database_url, fence=lease_name(group))
    scheduler = Scheduler(settings, store=store, lease=DatabaseLease(store.engine, name=lease_name(group)),
                          publisher=StubPublisher(broker), clock=clock, group=group)
    scheduler.load()
    return scheduler


def fired(scheduler):
    return sorted(m.options["fire_id"] for m in scheduler.publisher.published)


def stamp(job, seconds):
    return (T0 + timedelta(seconds=seconds)).strftime(f"{job}@%Y-%m-%dT%H:%M:%SZ")


def test_a_group_scheduler_runs_only_its_group_and_leads_beside_the_other_groups(tmp_path, stub_broker, probes):
    clock, path = Clock(), jobs_file(tmp_path, BODY)
    csv = group_scheduler(path, stub_broker, clock, "csv")
    sessions = group_scheduler(path, stub_broker, clock, "sessions")
    loose = group_scheduler(path, stub_broker, clock, "default")
    assert set(csv.jobs) == {"csv-import"} and set(loose.jobs) == {"loose"}
    # Three leases: all three lead at once.
    assert csv.step_lease() and sessions.step_lease() and loose.step_lease()
    assert csv.instance_id.startswith("csv@")
    for scheduler in (csv, sessions, loose):
        scheduler.tick(clock.advance(0) + timedelta(seconds=10))
    assert fired(csv) == [stamp("csv-import", 10)]
    assert fired(sessions) == [stamp("sessions", 10)]
    assert fired(loose) == [stamp("loose", 10)]


def test_a_failed_group_leaves_the_others_firing_and_its_standby_takes_over(tmp_path, stub_broker, probes):
    clock, path = Clock(), jobs_file(tmp_path, BODY)
    csv = group_scheduler(path, stub_broker, clock, "csv")
    sessions = group_scheduler(path, stub_broker, clock, "sessions")
    standby = group_scheduler(path, stub_broker, clock, "csv")
    assert csv.step_lease() and sessions.step_lease()
    assert not standby.step_lease()  # one leader per group
    csv.release()  # the csv scheduler dies (SIGTERM releases its lease)
    sessions.tick(clock.advance(10))
    assert fired(sessions) == [stamp("sessions", 10)]
    assert standby.step_lease()  # its own group's standby, not the sessions scheduler, takes csv over
    standby.tick(clock.now)
    assert stamp("csv-import", 10) in fired(standby)
    assert "csv-import" not in sessions.jobs


def test_pausing_one_group_records_its_slots_paused_while_other_groups_fire(tmp_path, stub_broker, probes):
    clock, path = Clock(), jobs_file(tmp_path, BODY)
    csv = group_scheduler(path, stub_broker, clock, "csv")
    sessions = group_scheduler(path, stub_broker, clock, "sessions")
    csv.step_lease(), sessions.step_lease()
    assert control.pause_scheduler(csv.settings, "csv", "vendor outage") == {
        "scheduler": "csv", "paused": True, "note": "vendor outage"}
    csv.refresh(), sessions.refresh()
    csv.tick(clock.advance(10)), sessions.tick(clock.now)
    assert fired(csv) == [] and fired(sessions) == [stamp("sessions", 10)]
    [row] = csv.store.audit("csv-import")
    assert (row["outcome"], row["detail"]) == ("paused", "vendor outage")
    control.resume_scheduler(csv.settings, "csv")
    csv.refresh()
    csv.tick(clock.advance(10))
    assert fired(csv) == [stamp("csv-import", 20)]  # from the next slot: no catch-up of paused ones


def test_pausing_the_whole_scheduler_pauses_every_job_and_resume_brings_them_back(tmp_path, stub_broker, probes):
    clock, path = Clock(), jobs_file(tmp_path, BODY)
    everything = group_scheduler(path, stub_broker, clock, None)
    assert set(everything.jobs) == {"csv-import", "sessions", "loose"}
    everything.step_lease()
    control.pause_scheduler(everything.settings, None, "deploy")
    assert control.scheduler_status(everything.settings)["paused"] is True
    everything.refresh()
    everything.tick(clock.advance(10))
    assert fired(everything) == []
    assert {r["outcome"] for j in everything.jobs for r in everything.store.audit(j)} == {"paused"}
    control.resume_scheduler(everything.settings, None)
    everything.refresh()
    everything.tick(clock.advance(10))
    assert len(fired(everything)) == 3


def test_schedulers_answer_in_seed_001s_health_shape(tmp_path, stub_broker, probes):
    clock, path = Clock(), jobs_file(tmp_path, BODY)
    csv = group_scheduler(path, stub_broker, clock, "csv")
    csv.step_lease()
    csv.refresh()
    control.pause_scheduler(csv.settings, "sessions")
    report = control.schedulers(csv.settings)
    assert set(report) >= {"healthy", "status", "timestamp", "schedulers", "details"}
    assert report["schedulers"] == {"total": 3, "running": 1, "paused": 1, "errors": 0}
    assert report["details"]["csv"]["status"] == "RUNNING" and report["details"]["csv"]["leader"] == csv.instance_id
    assert report["details"]["csv"]["instances"] == 1 and report["details"]["csv"]["lease"] == "scheduler:csv"
    assert report["details"]["sessions"]["status"] == "PAUSED" and report["details"]["sessions"]["healthy"]
    assert report["details"]["default"]["status"] == "STOPPED"
    assert (report["healthy"], report["status"]) == (False, "unhealthy")  # nothing runs the default group


def test_an_unknown_group_is_refused_naming_the_known_ones(tmp_path, stub_broker, probes):
    path = jobs_file(tmp_path, BODY)
    with pytest.raises(NotFoundError, match=r"no job is in group 'csvv' \(groups: csv, default, sessions\)"):
        control.pause_scheduler(fake_settings(path), "csvv")


@pytest.mark.parametrize(("value", "fragment"), [("all", "reserved"), ("'bad group'", "must be a name")])
def test_a_bad_group_name_is_a_config_error(tmp_path, stub_broker, probes, value, fragment):
    from broker_jobs.scheduling.config import load_config

    path = jobs_file(tmp_path, f"jobs:\n  - id: x\n    actor: group_probe\n    cron: '* * * * *'\n    group: {value}\n")
    with pytest.raises(ConfigError, match=rf"jobs\[0\]\.group: .*{fragment}"):
        load_config(path, fake_settings(path))


def test_the_cli_pauses_and_resumes_the_whole_scheduler_and_refuses_an_ambiguous_request(tmp_path):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path}/cli.sqlite3"}
    done = run_cli("jobs", "pause", "--all", "--note", "maintenance window", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "paused all: maintenance window"
    status = run_cli("jobs", "status", "--json", env=env)
    assert '"paused": true' in status.stdout
    assert run_cli("jobs", "resume", "--all", env=env).stdout.strip() == "resumed all"
    ambiguous = run_cli("jobs", "pause", env=env)
    assert ambiguous.returncode == 2 and "Traceback" not in ambiguous.stderr
    assert "a JOB_ID, --all (the whole scheduler) or --group NAME" in ambiguous.stderr
    unknown = run_cli("scheduler", "--group", "nope", env=env)
    assert unknown.returncode != 0 and "--group: no job is in group 'nope'" in unknown.stderr
    assert "Traceback" not in unknown.stderr
