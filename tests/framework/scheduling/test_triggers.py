"""Tables of (trigger, after, expected) for the pure time math in broker_jobs.scheduling.triggers.

Times in the tables are written with their UTC offset so each row reads as wall clock and instant at once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from broker_jobs.errors import ScheduleError
from broker_jobs.scheduling.cron import next_wall_match
from broker_jobs.scheduling.triggers import (
    CronTrigger,
    DateTrigger,
    IntervalTrigger,
    TriggerError,
    describe,
    fire_times,
    next_fire,
    parse_cron,
)


def t(text: str) -> datetime:
    """An aware datetime from ISO text; no offset means UTC."""
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def ids(rows: list[tuple[object, ...]]) -> list[str]:
    return [" ".join(str(part) for part in row if not isinstance(part, list)) for row in rows]


# -- cron in UTC: fields, names, aliases, calendar edges ---------------------------------------------------------

CRON_UTC = [
    # a leading sixth field is the second
    ("30 * * * * *", "2026-01-01T00:00:00", "2026-01-01T00:00:30"),
    ("30 * * * * *", "2026-01-01T00:00:30", "2026-01-01T00:01:30"),
    ("*/15 * * * * *", "2026-01-01T00:00:50", "2026-01-01T00:01:00"),
    ("0 30 2 * * *", "2026-01-01T00:00:00", "2026-01-01T02:30:00"),
    # without it the second is 0, and `after` itself is never returned
    ("* * * * *", "2026-01-01T10:00:00", "2026-01-01T10:01:00"),
    ("* * * * *", "2026-01-01T10:00:00.500000", "2026-01-01T10:01:00"),
    ("* * * * * *", "2026-01-01T10:00:00.500000", "2026-01-01T10:00:01"),
    ("0 10 * * *", "2026-01-01T10:00:00", "2026-01-02T10:00:00"),
    # steps, ranges, lists
    ("*/15 * * * *", "2026-01-01T10:07:00", "2026-01-01T10:15:00"),
    ("*/15 * * * *", "2026-01-01T10:45:00", "2026-01-01T11:00:00"),
    ("*/15 * * * *", "2026-12-31T23:50:00", "2027-01-01T00:00:00"),
    ("1-30/5 * * * *", "2026-01-01T10:26:00", "2026-01-01T11:01:00"),
    ("5/20 * * * *", "2026-01-01T10:46:00", "2026-01-01T11:05:00"),
    ("0 8,12,18 * * *", "2026-01-01T12:00:00", "2026-01-01T18:00:00"),
    ("59 23 31 12 *", "2026-12-31T23:59:00", "2027-12-31T23:59:00"),
    # month and weekday names (2026-01-01 is a Thursday)
    ("0 9 * * mon-fri", "2026-01-02T10:00:00", "2026-01-05T09:00:00"),
    ("0 0 1 jan,JUL *", "2026-01-01T00:00:00", "2026-07-01T00:00:00"),
    ("0 0 * mar-may mon", "2026-01-01T00:00:00", "2026-03-02T00:00:00"),
    ("0 0 * * fri-sun", "2026-01-01T10:00:00", "2026-01-02T00:00:00"),
    ("0 0 * * fri-sun", "2026-01-03T00:00:00", "2026-01-04T00:00:00"),
    # Sunday is 0, 7 and sun; @weekly is Sunday midnight
    ("0 12 * * 0", "2026-01-01T00:00:00", "2026-01-04T12:00:00"),
    ("0 12 * * 7", "2026-01-01T00:00:00", "2026-01-04T12:00:00"),
    ("0 12 * * sun", "2026-01-01T00:00:00", "2026-01-04T12:00:00"),
    ("0 12 * * 5-7", "2026-01-03T12:00:00", "2026-01-04T12:00:00"),
    ("@weekly", "2026-01-01T00:00:00", "2026-01-04T00:00:00"),
    ("@weekly", "2026-01-04T00:00:00", "2026-01-11T00:00:00"),
    # Vixie: both day fields restricted -> either matches; one starting with '*' -> both must
    ("0 0 13 * fri", "2026-01-01T00:00:00", "2026-01-02T00:00:00"),
    ("0 0 13 * fri", "2026-01-10T00:00:00", "2026-01-13T00:00:00"),
    ("0 0 1 * mon", "2026-01-27T00:00:00", "2026-02-01T00:00:00"),
    ("0 0 */10 * mon", "2026-01-01T00:00:00", "2026-05-11T00:00:00"),
    ("0 0 * * mon", "2026-01-01T00:00:00", "2026-01-05T00:00:00"),
    # month ends: the 31st skips short months
    ("0 0 31 * *", "2026-01-31T00:00:00", "2026-03-31T00:00:00"),
    ("0 0 31 * *", "2026-03-31T00:00:00", "2026-05-31T00:00:00"),
    ("0 0 30 * *", "2026-01-30T00:00:00", "2026-03-30T00:00:00"),
    # Feb 29 only in leap years; 2100 is not one
    ("0 0 29 2 *", "2025-01-01T00:00:00", "2028-02-29T00:00:00"),
    ("0 0 29 2 *", "2028-02-29T00:00:00", "2032-02-29T00:00:00"),
    ("0 0 29 2 *", "2096-03-01T00:00:00", "2104-02-29T00:00:00"),
    # aliases
    ("@yearly", "2026-06-15T00:00:00", "2027-01-01T00:00:00"),
    ("@annually", "2026-12-31T23:59:59", "2027-01-01T00:00:00"),
    ("@monthly", "2026-01-31T12:00:00", "2026-02-01T00:00:00"),
    ("@daily", "2026-01-01T00:00:00", "2026-01-02T00:00:00"),
    ("@midnight", "2026-01-01T23:00:00", "2026-01-02T00:00:00"),
    ("@hourly", "2026-01-01T10:59:59", "2026-01-01T11:00:00"),
    ("@HOURLY", "2026-01-01T11:00:00", "2026-01-01T12:00:00"),
]


@pytest.mark.parametrize(("expression", "after", "expected"), CRON_UTC, ids=ids(CRON_UTC))
def test_cron_fires_at_the_first_matching_second_strictly_after(expression, after, expected):
    fired = next_fire(CronTrigger(expression), t(after))
    assert fired == t(expected)
    assert fired is not None and fired.tzinfo is UTC


ZONED = [
    ("0 9 * * *", "Asia/Tokyo", "2025-12-31T12:00:00", "2026-01-01T09:00:00+09:00"),
    ("0 9 * * *", "Asia/Tokyo", "2026-01-01T00:00:00", "2026-01-02T09:00:00+09:00"),
    ("0 9 * * mon", "Asia/Kolkata", "2026-01-04T12:00:00", "2026-01-05T09:00:00+05:30"),
    ("0 0 1 * *", "America/New_York", "2026-01-31T12:00:00", "2026-02-01T00:00:00-05:00"),
]


@pytest.mark.parametrize(("expression", "zone", "after", "expected"), ZONED, ids=ids(ZONED))
def test_cron_reads_the_wall_clock_of_its_timezone(expression, zone, after, expected):
    assert next_fire(CronTrigger(expression, zone), t(after)) == t(expected)


def test_the_reference_time_may_be_given_in_any_timezone():
    paris = datetime(2026, 1, 1, 11, 0, tzinfo=ZoneInfo("Europe/Paris"))
    assert next_fire(CronTrigger("0 * * * *"), paris) == t("2026-01-01T11:00:00")


# -- daylight saving time ----------------------------------------------------------------------------------------
# Europe/Paris: 2026-03-29 02:00 CET -> 03:00 CEST (01:00Z); 2026-10-25 03:00 CEST -> 02:00 CET (01:00Z).
# America/New_York: 2026-03-08 02:00 EST -> 03:00 EDT (07:00Z); 2026-11-01 02:00 EDT -> 01:00 EST (06:00Z).

DST = [
    # spring forward: the missing time fires at the end of the gap (shift) or not that day (skip)
    ("30 2 * * *", "Europe/Paris", "shift", "once", "2026-03-28T12:00:00", "2026-03-29T03:00:00+02:00"),
    ("30 2 * * *", "Europe/Paris", "skip", "once", "2026-03-28T12:00:00", "2026-03-30T02:30:00+02:00"),
    ("0 2 * * *", "Europe/Paris", "shift", "once", "2026-03-28T12:00:00", "2026-03-29T03:00:00+02:00"),
    ("0 2 * * *", "Europe/Paris", "skip", "once", "2026-03-28T12:00:00", "2026-03-30T02:00:00+02:00"),
    ("59 2 * * *", "Europe/Paris", "shift", "twice", "2026-03-29T00:59:00+01:00", "2026-03-29T03:00:00+02:00"),
    ("0 3 * * *", "Europe/Paris", "skip", "once", "2026-03-28T12:00:00", "2026-03-29T03:00:00+02:00"),
    ("30 1 * * *", "Europe/Paris", "skip", "once", "2026-03-28T12:00:00", "2026-03-29T01:30:00+01:00"),
    ("30 2 * * *", "America/New_York", "shift", "once", "2026-03-07T12:00:00", "2026-03-08T03:00:00-04:00"),
    ("30 2 * * *", "America/New_York", "skip", "once", "2026-03-07T12:00:00", "2026-03-09T02:30:00-04:00"),
    ("30 2 * * *", "America/New_York", "shift", "twice", "2026-03-07T12:00:00", "2026-03-08T03:00:00-04:00"),
    # after the shifted fire, the next day is normal again
    ("30 2 * * *", "America/New_York", "shift", "once", "2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"),
    # fall back: the repeated time fires on its first pass (once) or on both (twice)
    ("30 2 * * *", "Europe/Paris", "shift", "once", "2026-10-24T12:00:00", "2026-10-25T02:30:00+02:00"),
    ("30 2 * * *", "Europe/Paris", "shift", "once", "2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"),
    ("30 2 * * *", "Europe/Paris", "shift", "twice", "2026-10-25T02:30:00+02:00", "2026-10-25T02:30:00+01:00"),
    ("30 2 * * *", "Europe/Paris", "skip", "twice", "2026-10-25T02:30:00+01:00", "2026-10-26T02:30:00+01:00"),
    # `after` between the two passes, or inside the second one
    ("30 2 * * *", "Europe/Paris", "shift", "once", "2026-10-25T02:45:00+02:00", "2026-10-26T02:30:00+01:00"),
    ("30 2 * * *", "Europe/Paris", "shift", "twice", "2026-10-25T02:45:00+02:00", "2026-10-25T02:30:00+01:00"),
    ("30 2 * * *", "Europe/Paris", "shift", "once", "2026-10-25T02:10:00+01:00", "2026-10-26T02:30:00+01:00"),
    ("30 2 * * *", "Europe/Paris", "shift", "twice", "2026-10-25T02:10:00+01:00", "2026-10-25T02:30:00+01:00"),
    ("0 3 * * *", "Europe/Paris", "shift", "once", "2026-10-25T02:10:00+01:00", "2026-10-25T03:00:00+01:00"),
    ("30 1 * * *", "America/New_York", "shift", "once", "2026-10-31T12:00:00", "2026-11-01T01:30:00-04:00"),
    ("30 1 * * *", "America/New_York", "shift", "once", "2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"),
    ("30 1 * * *", "America/New_York", "shift", "twice", "2026-11-01T01:30:00-04:00", "2026-11-01T01:30:00-05:00"),
    ("45 1 * * *", "America/New_York", "skip", "once", "2026-11-01T01:10:00-05:00", "2026-11-02T01:45:00-05:00"),
    ("45 1 * * *", "America/New_York", "skip", "twice", "2026-11-01T01:10:00-05:00", "2026-11-01T01:45:00-05:00"),
    # a yearly slot on the fall-back day, seen from the winter before: first pass, not the second
    ("30 2 25 10 *", "Europe/Paris", "shift", "once", "2026-01-01T00:00:00", "2026-10-25T02:30:00+02:00"),
    ("30 2 25 10 *", "Europe/Paris", "shift", "twice", "2026-10-25T02:30:00+02:00", "2026-10-25T02:30:00+01:00"),
    ("30 2 29 3 *", "Europe/Paris", "shift", "once", "2025-06-01T00:00:00", "2026-03-29T03:00:00+02:00"),
    # a 30-minute DST (Lord Howe) and a midnight transition (Santiago: 2026-09-06 00:00 -> 01:00)
    ("15 2 * * *", "Australia/Lord_Howe", "shift", "once", "2026-10-03T12:00:00", "2026-10-04T02:30:00+11:00"),
    ("30 0 * * *", "America/Santiago", "shift", "once", "2026-09-05T12:00:00", "2026-09-06T01:00:00-03:00"),
    ("30 0 * * *", "America/Santiago", "skip", "once", "2026-09-05T12:00:00", "2026-09-07T00:30:00-03:00"),
]


@pytest.mark.parametrize(("expression", "zone", "gap", "fold", "after", "expected"), DST, ids=ids(DST))
def test_cron_applies_its_gap_and_fold_policies_at_dst_transitions(expression, zone, gap, fold, after, expected):
    assert next_fire(CronTrigger(expression, zone, gap, fold), t(after)) == t(expected)


DST_RANGES = [
    # hourly through fall-back: the repeated hour once, or twice
    ("0 * * * *", "America/New_York", "shift", "once", "2026-11-01T00:30:00-04:00", "2026-11-01T03:00:00-05:00",
     ["01:00-04:00", "02:00-05:00", "03:00-05:00"]),
    ("0 * * * *", "America/New_York", "shift", "twice", "2026-11-01T00:30:00-04:00", "2026-11-01T03:00:00-05:00",
     ["01:00-04:00", "01:00-05:00", "02:00-05:00", "03:00-05:00"]),
    ("0 * * * *", "Europe/Paris", "shift", "once", "2026-10-25T01:30:00+02:00", "2026-10-25T04:00:00+01:00",
     ["02:00+02:00", "03:00+01:00", "04:00+01:00"]),
    ("*/30 * * * *", "Europe/Paris", "shift", "twice", "2026-10-25T01:45:00+02:00", "2026-10-25T03:00:00+01:00",
     ["02:00+02:00", "02:30+02:00", "02:00+01:00", "02:30+01:00", "03:00+01:00"]),
    # */15 through spring-forward: no slots in the missing hour (skip) or ONE fire at its end (shift)
    ("*/15 * * * *", "Europe/Paris", "skip", "once", "2026-03-29T01:30:00+01:00", "2026-03-29T03:30:00+02:00",
     ["01:45+01:00", "03:00+02:00", "03:15+02:00", "03:30+02:00"]),
    ("*/15 * * * *", "Europe/Paris", "shift", "once", "2026-03-29T01:30:00+01:00", "2026-03-29T03:30:00+02:00",
     ["01:45+01:00", "03:00+02:00", "03:15+02:00", "03:30+02:00"]),
    ("10 * * * *", "Europe/Paris", "shift", "once", "2026-03-29T00:30:00+01:00", "2026-03-29T04:00:00+02:00",
     ["01:10+01:00", "03:00+02:00", "03:10+02:00"]),
    ("10 * * * *", "Europe/Paris", "skip", "once", "2026-03-29T00:30:00+01:00", "2026-03-29T04:00:00+02:00",
     ["01:10+01:00", "03:10+02:00"]),
    ("*/20 * * * *", "America/New_York", "shift", "once", "2026-03-08T01:30:00-05:00", "2026-03-08T03:30:00-04:00",
     ["01:40-05:00", "03:00-04:00", "03:20-04:00"]),
]


@pytest.mark.parametrize(("expression", "zone", "gap", "fold", "start", "end", "expected"), DST_RANGES,
                         ids=ids(DST_RANGES))
def test_frequent_crons_fire_once_per_slot_through_dst_transitions(expression, zone, gap, fold, start, end, expected):
    day = start[:10]
    fired = fire_times(CronTrigger(expression, zone, gap, fold), t(start), t(end))
    assert fired == [t(f"{day}T{clock[:5]}:00{clock[5:]}") for clock in expected]


def _brute_force(expression: str, zone: ZoneInfo, start: datetime, end: datetime, fold: str, gap: str,
                 ) -> list[datetime]:
    """Every minute in (start, end] whose local wall time matches, plus the gap policy: an independent oracle."""
    spec = parse_cron(expression)

    def matches(wall: datetime) -> bool:
        dom, dow = wall.day in spec.days, (wall.weekday() + 1) % 7 in spec.weekdays
        day = (dom or dow) if spec.day_or else (dom and dow)
        return (wall.month in spec.months and day and wall.hour in spec.hours
                and wall.minute in spec.minutes and wall.second in spec.seconds)

    fired = []
    instant = start.replace(second=0) + timedelta(minutes=1)
    while instant <= end:
        local, before = instant.astimezone(zone), (instant - timedelta(minutes=1)).astimezone(zone)
        if gap == "shift" and local.utcoffset() > before.utcoffset():  # type: ignore[operator]
            wall = before.replace(tzinfo=None) + timedelta(minutes=1)
            lost = (local.replace(tzinfo=None) - wall) // timedelta(minutes=1)
            missing = [wall + timedelta(minutes=m) for m in range(lost)]
            if any(matches(w) for w in missing) and not matches(local.replace(tzinfo=None)):
                fired.append(instant)
        if matches(local.replace(tzinfo=None)) and not (local.fold and fold == "once"):
            fired.append(instant)
        instant += timedelta(minutes=1)
    return fired


ORACLE = [
    (expression, zone, day, gap, fold)
    for expression in ("*/15 * * * *", "0 * * * *", "30 2 * * *", "45 1 * * *", "0,30 0-3 * * *", "7 */2 * * *")
    for zone, day in (("Europe/Paris", "2026-03-29"), ("Europe/Paris", "2026-10-25"),
                      ("America/New_York", "2026-03-08"), ("America/New_York", "2026-11-01"),
                      ("Australia/Lord_Howe", "2026-04-05"),
                      ("Australia/Lord_Howe", "2026-10-04"), ("America/Santiago", "2026-04-05"),
                      ("America/Santiago", "2026-09-06"))
    for gap in ("shift", "skip")
    for fold in ("once", "twice")
]


@pytest.mark.parametrize(("expression", "zone", "day", "gap", "fold"), ORACLE, ids=ids(ORACLE))
def test_fire_times_around_a_transition_agree_with_a_minute_by_minute_scan(expression, zone, day, gap, fold):
    start, end = t(f"{day}T00:00:00") - timedelta(days=1), t(f"{day}T00:00:00") + timedelta(days=1)
    fired = fire_times(CronTrigger(expression, zone, gap, fold), start, end)
    assert fired == _brute_force(expression, ZoneInfo(zone), start, end, fold, gap)


# -- interval and date -------------------------------------------------------------------------------------------

INTERVALS = [
    # anchored on the epoch: every process agrees on the slots
    (IntervalTrigger(300), "2026-01-01T10:02:00", "2026-01-01T10:05:00"),
    (IntervalTrigger(300), "2026-01-01T10:05:00", "2026-01-01T10:10:00"),
    (IntervalTrigger(7), "2026-01-01T00:00:00", "2026-01-01T00:00:07"),  # 1767225600 is a multiple of 7
    (IntervalTrigger(7), "2026-01-01T00:00:06.999999", "2026-01-01T00:00:07"),
    (IntervalTrigger(0.25), "2026-01-01T00:00:00.100000", "2026-01-01T00:00:00.250000"),
    (IntervalTrigger(3600), "1969-12-31T22:30:00", "1969-12-31T23:00:00"),
    # anchored on start: the first slot is start itself
    (IntervalTrigger(3600, start=t("2026-01-01T00:30:00")), "2025-12-31T00:00:00", "2026-01-01T00:30:00"),
    (IntervalTrigger(3600, start=t("2026-01-01T00:30:00")), "2026-01-01T00:30:00", "2026-01-01T01:30:00"),
    (IntervalTrigger(3600, start=t("2026-01-01T00:30:00")), "2026-01-01T02:10:00", "2026-01-01T02:30:00"),
    # end is inclusive, then exhausted
    (IntervalTrigger(3600, start=t("2026-01-01T00:30:00"), end=t("2026-01-01T02:30:00")),
     "2026-01-01T01:45:00", "2026-01-01T02:30:00"),
    (IntervalTrigger(3600, start=t("2026-01-01T00:30:00"), end=t("2026-01-01T02:30:00")), "2026-01-01T02:30:00", None),
    (IntervalTrigger(600, end=t("2026-01-01T00:00:00")), "2026-01-01T00:00:00", None),
    # real seconds, not wall clock: 24 h after 12:00 CET across spring-forward is 13:00 CEST
    (IntervalTrigger(86400, "Europe/Paris", start=datetime(2026, 3, 28, 12, 0)),
     "2026-03-29T00:00:00", "2026-03-29T13:00:00+02:00"),
]


@pytest.mark.parametrize(("trigger", "after", "expected"), INTERVALS, ids=ids(INTERVALS))
def test_interval_fires_on_its_anchored_grid_until_its_end(trigger, after, expected):
    assert next_fire(trigger, t(after)) == (None if expected is None else t(expected))


DATES = [
    (DateTrigger(t("2026-01-01T10:00:00")), "2026-01-01T09:00:00", "2026-01-01T10:00:00"),
    (DateTrigger(t("2026-01-01T10:00:00")), "2026-01-01T10:00:00", None),
    (DateTrigger(t("2026-01-01T10:00:00")), "2027-01-01T00:00:00", None),
    # a naive `at` is a wall time in the trigger's zone, resolved like a cron slot
    (DateTrigger(datetime(2026, 1, 1, 10, 0), "Europe/Paris"), "2026-01-01T00:00:00", "2026-01-01T09:00:00"),
    (DateTrigger(datetime(2026, 3, 29, 2, 30), "Europe/Paris"), "2026-01-01T00:00:00", "2026-03-29T03:00:00+02:00"),
    (DateTrigger(datetime(2026, 10, 25, 2, 30), "Europe/Paris"), "2026-01-01T00:00:00", "2026-10-25T02:30:00+02:00"),
]


@pytest.mark.parametrize(("trigger", "after", "expected"), DATES, ids=ids(DATES))
def test_date_trigger_fires_once_then_is_exhausted(trigger, after, expected):
    assert next_fire(trigger, t(after)) == (None if expected is None else t(expected))


# -- fire_times ----------------------------------------------------------------------------------------------------

RANGES = [
    (CronTrigger("*/15 * * * *"), "2026-01-01T10:00:00", "2026-01-01T11:00:00", None,
     ["10:15", "10:30", "10:45", "11:00"]),
    (CronTrigger("*/15 * * * *"), "2026-01-01T10:00:00", "2026-01-01T12:00:00", 3, ["10:15", "10:30", "10:45"]),
    (CronTrigger("*/15 * * * *"), "2026-01-01T10:00:00", "2026-01-01T12:00:00", 0, []),
    (CronTrigger("*/15 * * * *"), "2026-01-01T10:00:00", "2026-01-01T09:00:00", None, []),
    (IntervalTrigger(1200), "2026-01-01T10:00:00", "2026-01-01T11:00:00", None, ["10:20", "10:40", "11:00"]),
    (DateTrigger(t("2026-01-01T10:30:00")), "2026-01-01T10:00:00", "2026-01-01T11:00:00", 5, ["10:30"]),
    (IntervalTrigger(60, start=t("2026-01-01T10:00:00"), end=t("2026-01-01T10:02:00")),
     "2026-01-01T09:00:00", "2026-01-01T11:00:00", None, ["10:00", "10:01", "10:02"]),
]


@pytest.mark.parametrize(("trigger", "start", "end", "limit", "expected"), RANGES, ids=ids(RANGES))
def test_fire_times_lists_the_slots_in_the_half_open_range_up_to_the_limit(trigger, start, end, limit, expected):
    assert fire_times(trigger, t(start), t(end), limit) == [t(f"2026-01-01T{clock}:00") for clock in expected]


# -- describe ------------------------------------------------------------------------------------------------------

DESCRIPTIONS = [
    (IntervalTrigger(300), "every 5 minutes"),
    (IntervalTrigger(1), "every second"),
    (IntervalTrigger(90), "every 90 seconds"),
    (IntervalTrigger(1.5), "every 1.5 seconds"),
    (IntervalTrigger(3600), "every hour"),
    (IntervalTrigger(172800), "every 2 days"),
    (IntervalTrigger(600, start=t("2026-01-01T00:00:00"), end=t("2026-02-01T00:00:00")),
     "every 10 minutes from 2026-01-01T00:00:00+00:00 until 2026-02-01T00:00:00+00:00"),
    (CronTrigger("0 3 * * *", "Europe/Paris"), "at 03:00 every day (Europe/Paris)"),
    (CronTrigger("15 30 2 * * *"), "at 02:30:15 every day (UTC)"),
    (CronTrigger("0 */2 * * *"), "cron 0 */2 * * * (UTC)"),
    (CronTrigger("  0   */2 * *  * "), "cron 0 */2 * * * (UTC)"),
    (CronTrigger("@weekly"), "at 00:00 every Sunday (UTC)"),
    (CronTrigger("30 9 * * mon-fri"), "at 09:30 every Monday to Friday (UTC)"),
    (CronTrigger("0 10 * * sat,sun"), "at 10:00 every Saturday and Sunday (UTC)"),
    (CronTrigger("0 10 * * 1,3,5-7"), "at 10:00 every Monday, Wednesday and Friday to Sunday (UTC)"),
    (CronTrigger("0 0 1 * *"), "at 00:00 on day 1 of every month (UTC)"),
    (CronTrigger("@yearly"), "at 00:00 on January 1 every year (UTC)"),
    (CronTrigger("0 0 13 * fri"), "cron 0 0 13 * fri (UTC)"),
    (CronTrigger("@hourly"), "cron @hourly (UTC)"),
    (CronTrigger("30 2 * * *", "America/New_York", gap="skip", fold="twice"),
     "at 02:30 every day (America/New_York, gap=skip, fold=twice)"),
    (DateTrigger(t("2026-01-01T10:00:00")), "once at 2026-01-01T10:00:00+00:00"),
    (DateTrigger(datetime(2026, 1, 1, 10, 0), "Europe/Paris"), "once at 2026-01-01T10:00:00+01:00"),
]


@pytest.mark.parametrize(("trigger", "expected"), DESCRIPTIONS, ids=[row[1] for row in DESCRIPTIONS])
def test_describe_puts_the_schedule_in_words(trigger, expected):
    assert describe(trigger) == expected


# -- parsing -------------------------------------------------------------------------------------------------------

WEEKDAYS = [
    ("0", {0}), ("7", {0}), ("sun", {0}), ("SUN", {0}), ("0,7", {0}), ("mon-fri", {1, 2, 3, 4, 5}),
    ("fri-sun", {5, 6, 0}), ("5-7", {5, 6, 0}), ("*/2", {0, 2, 4, 6}), ("*", set(range(7))),
]


@pytest.mark.parametrize(("field", "expected"), WEEKDAYS, ids=[row[0] for row in WEEKDAYS])
def test_weekday_field_reads_sunday_as_0_and_7(field, expected):
    assert parse_cron(f"0 0 * * {field}").weekdays == expected


DAY_RULE = [("0 0 13 * fri", True), ("0 0 * * fri", False), ("0 0 13 * *", False), ("0 0 */2 * fri", False),
            ("0 0 13 * */2", False), ("0 0 1-31 * mon", True)]


@pytest.mark.parametrize(("expression", "either"), DAY_RULE, ids=[row[0] for row in DAY_RULE])
def test_days_match_on_either_field_only_when_both_are_restricted(expression, either):
    assert parse_cron(expression).day_or is either


def test_a_five_field_expression_fires_on_second_zero():
    spec = parse_cron("*/20 * * * *")
    assert (spec.seconds, spec.minutes) == ({0}, {0, 20, 40})


INVALID = [
    ("", None, "empty cron expression"),
    ("   ", None, "empty cron expression"),
    ("* * * *", None, "expected 5 fields"),
    ("* * * * * * *", None, "got 7"),
    ("@reboot", None, "unknown cron alias '@reboot'"),
    ("61 * * * * *", "second", "'61' out of range 0-59"),
    ("60 * * * *", "minute", "'60' out of range 0-59"),
    ("* 24 * * *", "hour", "'24' out of range 0-23"),
    ("* * 0 * *", "day_of_month", "'0' out of range 1-31"),
    ("* * 32 * *", "day_of_month", "'32' out of range 1-31"),
    ("* * * 0 *", "month", "'0' out of range 1-12"),
    ("* * * 13 *", "month", "'13' out of range 1-12"),
    ("* * * * 8", "day_of_week", "bad cron field 'day_of_week': '8' out of range 0-7"),
    ("* * * foo *", "month", "'foo' is not a number or a month name"),
    ("* * * * funday", "day_of_week", "'funday' is not a number or a weekday name"),
    ("mon * * * *", "minute", "'mon' is not a number"),
    ("L * * * *", "minute", "'L' is not a number"),
    ("*/0 * * * *", "minute", "step 0 in '*/0'"),
    ("* 1-5/0 * * *", "hour", "step 0"),
    ("*/x * * * *", "minute", "step 'x'"),
    ("5-2 * * * *", "minute", "range '5-2' runs backwards"),
    ("* * * dec-jan *", "month", "runs backwards"),
    ("1,,2 * * * *", "minute", "empty list item"),
    ("1, * * * *", "minute", "empty list item"),
    ("1- * * * *", "minute", "incomplete range"),
    ("-1 * * * *", "minute", "incomplete range"),
    ("0 0 30 2 *", "day_of_month", "day 30 never occurs in feb"),
    ("0 0 31 4,6,9,11 *", "day_of_month", "never occurs"),
]


@pytest.mark.parametrize(("expression", "field", "message"), INVALID, ids=[repr(row[0]) for row in INVALID])
def test_invalid_cron_raises_trigger_error_naming_the_field(expression, field, message):
    with pytest.raises(TriggerError, match=message.replace("*", r"\*")) as caught:
        parse_cron(expression)
    assert caught.value.field == field
    if field is not None:
        assert f"bad cron field {field!r}" in str(caught.value)


BAD_TRIGGERS = [
    (lambda: CronTrigger("0 0 * * 8"), "day_of_week"),
    (lambda: CronTrigger("0 0 * * *", "Mars/Olympus_Mons"), "timezone"),
    (lambda: CronTrigger("0 0 * * *", "../etc/passwd"), "timezone"),
    (lambda: CronTrigger("0 0 * * *", gap="later"), "gap"),  # type: ignore[arg-type]
    (lambda: CronTrigger("0 0 * * *", fold="thrice"), "fold"),  # type: ignore[arg-type]
    (lambda: IntervalTrigger(0), "seconds"),
    (lambda: IntervalTrigger(-5), "seconds"),
    (lambda: IntervalTrigger(float("nan")), "seconds"),
    (lambda: IntervalTrigger(float("inf")), "seconds"),
    (lambda: IntervalTrigger(60, start=t("2026-01-02T00:00:00"), end=t("2026-01-01T00:00:00")), "end"),
    (lambda: DateTrigger(t("2026-01-01T00:00:00"), "Nowhere"), "timezone"),
    (lambda: next_fire(CronTrigger("* * * * *"), datetime(2026, 1, 1)), "after"),
    (lambda: fire_times(CronTrigger("* * * * *"), t("2026-01-01T00:00:00"), datetime(2026, 1, 2)), "end"),
    (lambda: fire_times(CronTrigger("* * * * *"), t("2026-01-01T00:00:00"), t("2026-01-02T00:00:00"), -1), "limit"),
]


@pytest.mark.parametrize(("build", "field"), BAD_TRIGGERS, ids=[row[1] + str(i) for i, row in enumerate(BAD_TRIGGERS)])
def test_bad_triggers_and_naive_reference_times_are_rejected_at_once(build, field):
    with pytest.raises(TriggerError) as caught:
        build()
    assert caught.value.field == field


def test_trigger_error_is_a_value_error_and_a_schedule_error():
    # ValueError for pydantic validators, ScheduleError so the CLI prints one line instead of a traceback.
    assert issubclass(TriggerError, ValueError)
    assert issubclass(TriggerError, ScheduleError)


def test_triggers_are_hashable_values():
    assert CronTrigger("0 3 * * *", "Europe/Paris") == CronTrigger("0 3 * * *", "Europe/Paris")
    assert len({IntervalTrigger(60), IntervalTrigger(60), DateTrigger(t("2026-01-01T00:00:00"))}) == 2


def test_wall_matching_gives_up_past_year_9999():
    assert next_wall_match(parse_cron("0 0 29 2 *"), datetime(9997, 1, 1)) is None
    assert next_fire(CronTrigger("0 0 1 1 *"), t("9999-06-01T00:00:00")) is None
