"""The calendar's DST marks and windows: a table of (trigger, window, expected marks)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from broker_jobs.scheduling.calendar import MAX_SLOTS, dst_marks, span, window
from broker_jobs.scheduling.config import JobDef
from broker_jobs.scheduling.triggers import CronTrigger, IntervalTrigger, offset_changes

SPRING = (datetime(2026, 3, 28, tzinfo=UTC), datetime(2026, 3, 31, tzinfo=UTC))  # Paris: 29 March 02:00 -> 03:00
AUTUMN = (datetime(2026, 10, 24, tzinfo=UTC), datetime(2026, 10, 27, tzinfo=UTC))  # 25 October 03:00 -> 02:00


@pytest.mark.parametrize(("expression", "gap", "fold", "window_", "expected"), [
    ("30 2 * * *", "shift", "once", SPRING, [("shifted", "02:30")]),
    ("30 2 * * *", "skip", "once", SPRING, [("skipped", "02:30")]),
    ("30 2 * * *", "shift", "twice", AUTUMN, [("repeated", "02:30")]),
    ("30 2 * * *", "shift", "once", AUTUMN, [("once", "02:30")]),
    ("0 4 * * *", "shift", "once", SPRING, []),  # 04:00 exists every day: no mark
    ("30 2 * * *", "shift", "once", (datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 6, 8, tzinfo=UTC)), []),
])
def test_a_dst_change_is_marked_only_where_it_touches_the_jobs_wall_times(expression, gap, fold, window_, expected):
    marks = dst_marks(CronTrigger(expression, "Europe/Paris", gap=gap, fold=fold), *window_)
    assert [(m.kind, m.wall) for m in marks] == expected
    assert all(window_[0] < m.at <= window_[1] for m in marks)


def test_offset_changes_name_the_instant_and_both_offsets():
    [(instant, old, new)] = offset_changes("Europe/Paris", *SPRING)
    assert instant == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert (old.total_seconds(), new.total_seconds()) == (3600, 7200)
    assert offset_changes("UTC", *SPRING) == []


def test_a_window_lists_slots_marks_pauses_and_caps_a_busy_job():
    start, end, bucket = span(7, datetime(2026, 3, 26, tzinfo=UTC))
    assert bucket.days == 1 and span(1, start)[2].total_seconds() == 3600
    nightly = JobDef(id="nightly", actor="a", trigger=CronTrigger("30 2 * * *", "Europe/Paris"))
    busy = JobDef(id="busy", actor="a", trigger=IntervalTrigger(10))
    off = JobDef(id="off", actor="a", trigger=IntervalTrigger(3600), enabled=False)
    by_id = {w.job.id: w for w in window([nightly, busy, off], {"nightly": "vendor outage"}, start, end)}
    assert len(by_id["nightly"].slots) == 7 and by_id["nightly"].paused and by_id["nightly"].note == "vendor outage"
    assert [m.kind for m in by_id["nightly"].marks] == ["shifted"]
    assert datetime(2026, 3, 29, 1, 0, tzinfo=UTC) in by_id["nightly"].slots  # the shifted slot itself
    assert len(by_id["busy"].slots) == MAX_SLOTS and by_id["busy"].truncated
    assert by_id["off"].slots == [] and not by_id["off"].paused
