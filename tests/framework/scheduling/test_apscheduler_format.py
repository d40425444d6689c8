"""Jobs written APScheduler's way (``job_id``, ``type``, fields, ``config``) read as jobs of the jobs file."""

from __future__ import annotations

import pytest

from broker_jobs.errors import ConfigError
from broker_jobs.scheduling.apscheduler_format import convert, weekdays
from broker_jobs.scheduling.config import load_config
from tests.support.scheduling import fake_settings, jobs_file


@pytest.mark.parametrize(("fields", "cron"), [
    ({"hour": 2, "minute": 0}, "0 0 2 * * *"),
    ({"hour": 2}, "0 0 2 * * *"),  # below the smallest field given: its minimum
    ({"minute": 30}, "0 30 * * * *"),  # above it: '*'
    ({"day_of_week": "sun", "hour": 1, "minute": 0}, "0 0 1 * * sun"),
    ({"day_of_week": "mon,wed,fri", "hour": 2, "minute": 30}, "0 30 2 * * mon,wed,fri"),
    ({"day_of_week": 0, "hour": 2}, "0 0 2 * * mon"),  # APScheduler's 0 is Monday
    ({"day_of_week": "0-4", "hour": "9-17"}, "0 0 9-17 * * mon,tue,wed,thu,fri"),
    ({"day_of_week": "5-6"}, "0 0 0 * * sun,sat"),  # only the days: midnight, as APScheduler does
    ({"day_of_week": "sat", "hour": 2}, "0 0 2 * * sat"),
    ({"day": 1, "hour": 3}, "0 0 3 1 * *"),
    ({"cron_expression": "0 2 * * 1-5"}, "0 2 * * 1-5"),  # a crontab line: 1-5 is Monday to Friday
])
def test_cron_fields_read_with_apschedulers_meaning(fields, cron):
    entry = convert({"job_id": "j", "type": "cron", **fields, "config": {"dry_run": True}}, "etl_pipeline")
    assert entry == {"id": "j", "actor": "etl_pipeline", "kwargs": {"dry_run": True}, "cron": cron}


def test_weekday_steps_and_lists():
    assert weekdays("*/2") == "sun,mon,wed,fri"  # Monday, Wednesday, Friday, Sunday
    assert weekdays("mon-wed,sun") == "sun,mon,tue,wed"


def test_interval_and_date_jobs():
    interval = convert({"job_id": "i", "type": "interval", "minutes": 30, "hours": 2, "days": 1}, "p")
    assert interval["interval"] == {"days": 1, "hours": 2, "minutes": 30} and interval["kwargs"] == {}
    weekly = convert({"job_id": "w", "type": "interval", "weeks": 1, "start_date": "2026-01-01T00:00:00"}, "p")
    assert weekly["interval"] == {"days": 7, "start": "2026-01-01T00:00:00"}
    once = convert({"job_id": "o", "type": "date", "run_date": "2025-06-20T15:30:00", "config": {}}, "p")
    assert once["date"] == "2025-06-20T15:30:00"


def test_policies_and_options_map_to_ours():
    entry = convert({"job_id": "j", "type": "interval", "hours": 1, "coalesce": False, "misfire_grace_time": 300,
                     "max_instances": 3, "timezone": "Europe/Paris", "actor": "diagnostics", "name": "Hourly"}, None)
    assert entry["misfire"] == "run_all" and entry["misfire_grace"] == 300 and entry["overlap"] == "allow"
    assert entry["actor"] == "diagnostics" and entry["timezone"] == "Europe/Paris"
    assert entry["description"] == "Hourly"


@pytest.mark.parametrize(("fields", "message"), [
    ({"type": "weekly"}, "type: must be 'cron', 'interval' or 'date'"),
    ({"type": "cron", "hour": 2, "cron_expression": "0 2 * * *"}, "cron_expression: give it or the fields"),
    ({"type": "cron", "day_of_week": "funday"}, "day_of_week: 'funday' is not a weekday"),
    ({"type": "cron", "hour": 2, "week": 3}, "week: unknown field for a cron job"),
    ({"type": "date"}, "run_date: a date job needs run_date"),
    ({"type": "interval", "hours": 1, "config": [1]}, "config: must be an object"),
])
def test_mistakes_name_the_field(fields, message):
    with pytest.raises(ValueError, match=message):
        convert({"job_id": "j", **fields}, "etl_pipeline")


def test_a_json_jobs_file_mixes_both_ways_and_errors_are_located(tmp_path, stub_broker):
    path = jobs_file(tmp_path, """
        {"jobs": [
          {"job_id": "weekly", "type": "cron", "day_of_week": "sun", "hour": 1, "actor": "diagnostics"},
          {"id": "ours", "actor": "diagnostics", "cron": "0 5 * * 0"}
        ]}
    """, name="jobs.json")
    jobs = {job.id: job for job in load_config(path, fake_settings(path)).jobs}
    assert jobs["weekly"].trigger.expression == "0 0 1 * * sun"  # type: ignore[union-attr]
    assert jobs["ours"].trigger.expression == "0 5 * * 0"  # type: ignore[union-attr]
    bad = jobs_file(tmp_path, '{"jobs": [\n  {"job_id": "x", "type": "cron",\n   "day_of_week": 9}\n]}\n',
                    name="bad.json")
    with pytest.raises(ConfigError, match=r"bad.json:\d+: jobs\[0\].day_of_week: '9' is not a weekday"):
        load_config(bad, fake_settings(bad))
