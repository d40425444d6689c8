"""The jobs file's triggers as APScheduler 3 triggers: the same slots, the policies mapped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from broker_jobs.scheduling.aps_triggers import aps_options, aps_trigger, slot_of, version
from broker_jobs.scheduling.config import JobDef
from broker_jobs.scheduling.triggers import CronTrigger, DateTrigger, IntervalTrigger, next_fire

START = datetime(2026, 1, 5, 0, 0, 7, tzinfo=UTC)  # a Monday


def job(trigger, **fields) -> JobDef:
    return JobDef(id="j", actor="diagnostics", trigger=trigger, **fields)


def aps_slots(trigger, count: int) -> list[datetime]:
    slots, previous, now = [], None, START
    for _ in range(count):
        nxt = trigger.get_next_fire_time(previous, now)
        if nxt is None:
            break
        slots.append(nxt.astimezone(UTC))
        previous, now = nxt, nxt + timedelta(microseconds=1)
    return slots


def our_slots(trigger, count: int) -> list[datetime]:
    slots, now = [], START - timedelta(microseconds=1)
    for _ in range(count):
        nxt = next_fire(trigger, now)
        if nxt is None:
            break
        slots.append(nxt)
        now = nxt
    return slots


@pytest.mark.parametrize("trigger", [
    CronTrigger("0 5 * * sun"),  # APScheduler reads a bare 0 as Monday: names are written
    CronTrigger("0 5 * * 0"),
    CronTrigger("30 2 * * 1-5", timezone="America/New_York"),
    CronTrigger("*/15 9-17 * * mon,wed,fri"),
    CronTrigger("0 0 13 * fri"),  # both day fields: Vixie's "either" rule
    CronTrigger("0 0 1,15 * *"),
    CronTrigger("*/10 * * * * *"),  # seconds
    CronTrigger("@weekly"),
    IntervalTrigger(7),
    IntervalTrigger(5400, start=datetime(2026, 1, 1, 0, 3, tzinfo=UTC)),
    IntervalTrigger(0.5),
    DateTrigger(datetime(2026, 2, 1, 9, 0), timezone="Europe/Paris"),
], ids=repr)
def test_apscheduler_fires_at_our_slots(trigger):
    count = 40
    assert aps_slots(aps_trigger(job(trigger)), count) == our_slots(trigger, count)


@pytest.mark.parametrize(("misfire", "overlap", "expected"), [
    ("skip", "skip", {"coalesce": True, "misfire_grace_time": 2, "max_instances": 1}),
    ("run_once", "allow", {"coalesce": True, "misfire_grace_time": None, "max_instances": 1000}),
    ("run_all", "buffer_one", {"coalesce": False, "misfire_grace_time": 45, "max_instances": 1}),
])
def test_misfire_and_overlap_map_to_coalesce_grace_and_instances(misfire, overlap, expected):
    assert aps_options(job(IntervalTrigger(60), misfire=misfire, misfire_grace=45, overlap=overlap)) == expected


def test_a_run_time_that_is_a_slot_is_its_own_slot():
    trigger = CronTrigger("*/5 * * * *")
    run = datetime(2026, 1, 5, 10, 5, tzinfo=UTC)
    assert slot_of(trigger, run) == run


def test_dst_run_times_map_to_the_native_engines_slots():
    paris = CronTrigger("30 2 * * *", timezone="Europe/Paris")
    aps = aps_trigger(job(paris))
    # Spring forward: 02:30 does not exist; APScheduler runs at 03:30 CEST, we at 03:00 (gap: shift).
    gap_run = aps.get_next_fire_time(None, datetime(2026, 3, 28, 12, tzinfo=UTC)).astimezone(UTC)
    assert gap_run == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert slot_of(paris, gap_run) == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    # Fall back: APScheduler runs 02:30 twice; the second maps to the first (fold: once): one fire id.
    first = aps.get_next_fire_time(None, datetime(2026, 10, 24, 12, tzinfo=UTC))
    second = aps.get_next_fire_time(first, first + timedelta(seconds=1))
    assert second.astimezone(UTC) - first.astimezone(UTC) == timedelta(hours=1)
    assert slot_of(paris, second) == slot_of(paris, first) == first.astimezone(UTC)


def test_the_version_changes_with_the_definition_only():
    a, b = job(IntervalTrigger(60)), job(IntervalTrigger(60))
    assert version(a) == version(b) != version(job(IntervalTrigger(61)))
    assert version(a) != version(job(IntervalTrigger(60), kwargs={"x": 1}))
