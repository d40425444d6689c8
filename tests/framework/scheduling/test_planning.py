"""``collect_due`` leaves the following slot for after the publish only when no other slot can be due:
a table of triggers and ticks, each checked against the slots ``next_fire`` walks one by one."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from broker_jobs.scheduling.planning import LATER, collect_due
from broker_jobs.scheduling.triggers import CronTrigger, DateTrigger, IntervalTrigger, min_gap, next_fire


def t(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


MIN_GAP = [
    (CronTrigger("* * * * * *"), 0.999),
    (CronTrigger("0 3 * * *", "America/New_York", fold="twice"), 0.999),
    (IntervalTrigger(0.5), 0.499),
    (IntervalTrigger(3600), 3599.999),
    (IntervalTrigger(0.0005), 0.0),
    (DateTrigger(t("2026-11-23T10:00:00")), float("inf")),
]


@pytest.mark.parametrize(("trigger", "gap"), MIN_GAP, ids=[repr(r[0])[:60] for r in MIN_GAP])
def test_min_gap_is_a_lower_bound_on_the_distance_between_slots(trigger, gap):
    assert min_gap(trigger) == pytest.approx(gap)
    slot = next_fire(trigger, t("2026-03-08T00:00:00-05:00"))  # a DST change in New York that day
    for _ in range(200):
        following = next_fire(trigger, slot) if slot is not None else None
        if following is None:
            break
        assert (following - slot).total_seconds() >= min_gap(trigger)
        slot = following


# (trigger, last slot fired, now, expected due slots, following: LATER or the slot)
TICKS = [
    # one slot due, the next one cannot be due yet: left for later
    (CronTrigger("* * * * * *"), "2026-11-23T10:00:00", "2026-11-23T10:00:01.004", ["10:00:01"], LATER),
    (IntervalTrigger(60), "2026-11-23T10:00:00", "2026-11-23T10:01:00.5", ["10:01:00"], LATER),
    (DateTrigger(t("2026-11-23T10:00:30")), "2026-11-23T10:00:00", "2026-11-23T10:00:31", ["10:00:30"], LATER),
    # a tick late by more than the gap: every due slot, then the real following one
    (CronTrigger("* * * * * *"), "2026-11-23T10:00:00", "2026-11-23T10:00:02.5", ["10:00:01", "10:00:02"],
     "10:00:03"),
    (IntervalTrigger(0.5), "2026-11-23T10:00:00", "2026-11-23T10:00:00.6", ["10:00:00.5"], LATER),
    (IntervalTrigger(0.5), "2026-11-23T10:00:00", "2026-11-23T10:00:01.2", ["10:00:00.5", "10:00:01"],
     "10:00:01.5"),
    # nothing due
    (CronTrigger("0 * * * *"), "2026-11-23T10:00:00", "2026-11-23T10:30:00", [], "11:00:00"),
]


@pytest.mark.parametrize(("trigger", "last", "now", "due", "following"), TICKS,
                         ids=[f"{r[0].__class__.__name__} now {r[2]}" for r in TICKS])
def test_collect_due_lists_the_due_slots_and_says_when_the_next_is_left_for_later(trigger, last, now, due,
                                                                                   following):
    day = "2026-11-23T"
    got, nxt = collect_due(trigger, t(last), t(now), window=3600)
    assert [s.strftime("%H:%M:%S") + (f".{s.microsecond:06d}".rstrip("0") if s.microsecond else "")
            for s in got.recent] == due
    if following is LATER:
        assert nxt is LATER
        # What the scheduler computes after the publish is the slot the eager walk would find.
        later = next_fire(trigger, got.recent[-1])
        assert later is None or later > t(now)
    else:
        assert nxt == t(day + following)
