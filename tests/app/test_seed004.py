"""Seed 004's scheduler config, as written (``fixtures/seed004_scheduler_config.json``, copied verbatim from the
seed): loaded as a jobs file, shown by ``check-config``, each job the ETL pipeline with its ``config``."""

from __future__ import annotations

from datetime import UTC, datetime

from broker_jobs import registry
from broker_jobs.scheduling.config import load_config
from broker_jobs.scheduling.triggers import next_fire
from tests.support import ROOT, run_cli
from tests.support.scheduling import fake_settings

SEED_CONFIG = ROOT / "tests" / "app" / "fixtures" / "seed004_scheduler_config.json"


def test_the_seed_config_loads_unchanged_as_a_jobs_file():
    jobs = {job.id: job for job in load_config(SEED_CONFIG, fake_settings(SEED_CONFIG)).jobs}
    assert list(jobs) == ["daily_incremental_update", "weekly_full_rebuild", "hourly_health_check"]
    assert {job.actor for job in jobs.values()} == {"etl_pipeline"}
    assert jobs["daily_incremental_update"].kwargs == {"incremental_mode": "auto", "force_recreate": False,
                                                       "ci_mode": True}
    assert jobs["hourly_health_check"].kwargs == {"dry_run": True, "ci_mode": True}
    monday = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    assert next_fire(jobs["daily_incremental_update"].trigger, monday) == datetime(2026, 1, 6, 2, 0, tzinfo=UTC)
    assert next_fire(jobs["weekly_full_rebuild"].trigger, monday) == datetime(2026, 1, 11, 1, 0, tzinfo=UTC)  # Sunday
    assert next_fire(jobs["hourly_health_check"].trigger, monday) == datetime(2026, 1, 5, 13, 0, tzinfo=UTC)


def test_check_config_shows_what_each_seed_job_became():
    result = run_cli("check-config", str(SEED_CONFIG))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].endswith("jobs OK (development 3, production 3)")
    assert lines[2] == ('  weekly_full_rebuild: etl_pipeline({"incremental_mode": "full", '
                        '"force_recreate": true, "ci_mode": true}) cron at 01:00 every Sunday (UTC) [0 0 1 * * sun], '
                        'priority medium, queue etl')


def test_the_pipeline_runs_with_the_seed_config_as_arguments():
    pipeline = registry.get("etl_pipeline").fn
    assert pipeline is not None
    report = pipeline(dry_run=True, ci_mode=True, chunk_size=1000)
    assert report == {"dry_run": True, "would_run": "incremental (etl_sync)", "entities": "all",
                      "not_applicable": {"chunk_size": "each row is embedded whole (its entity's text template)"}}
    assert pipeline(incremental_mode="full", dry_run=True)["would_run"] == "full rebuild (batch_reprocess)"
