"""Misfire and overlap policies, as pure functions of slots and ``now``."""

from __future__ import annotations

from datetime import timedelta

import pytest

from broker_jobs.protocol import Flight
from broker_jobs.scheduling.policies import DueSlots, overlap_action, plan_misfire
from tests.support.scheduling import T0


def at(seconds: float):
    return T0 + timedelta(seconds=seconds)


def outcomes(rows):
    return [(int((slot - T0).total_seconds()), outcome) for slot, outcome, _ in rows]


# A 10 s job whose scheduler was away: slots at 10..60 s, now is 60.5 s.
RECENT = DueSlots(recent=[at(s) for s in (10, 20, 30, 40, 50, 60)])


@pytest.mark.parametrize(("policy", "grace", "expected"), [
    ("skip", 300, [(10, "missed"), (20, "missed"), (30, "missed"), (40, "missed"), (50, "missed"), (60, "fired")]),
    ("run_once", 300, [(10, "missed"), (20, "missed"), (30, "missed"), (40, "missed"), (50, "caught_up"),
                       (60, "fired")]),
    ("run_all", 300, [(10, "caught_up"), (20, "caught_up"), (30, "caught_up"), (40, "caught_up"),
                      (50, "caught_up"), (60, "fired")]),
    ("run_all", 25, [(10, "skipped_stale"), (20, "skipped_stale"), (30, "skipped_stale"), (40, "caught_up"),
                     (50, "caught_up"), (60, "fired")]),
])
def test_each_misfire_policy_decides_every_late_slot(policy, grace, expected):
    assert outcomes(plan_misfire(RECENT, at(60.5), policy, grace)) == expected


def test_run_once_without_an_on_time_slot_runs_the_latest_missed_one():
    due = DueSlots(recent=[at(s) for s in (10, 20, 30)])
    assert outcomes(plan_misfire(due, at(35), "run_once", 300)) == [(10, "missed"), (20, "missed"),
                                                                    (30, "caught_up")]


def test_run_once_after_a_long_outage_runs_the_last_slot_and_summarizes_the_rest():
    due = DueSlots(older_count=500, older_first=at(10), older_last=at(5000))
    rows = plan_misfire(due, at(6000), "run_once", 300)
    assert outcomes(rows) == [(10, "missed"), (5000, "caught_up")]
    assert rows[0][2].startswith("499 slot(s) from")


def test_slots_older_than_the_window_are_one_summary_row():
    due = DueSlots(recent=[at(5990)], older_count=599, older_first=at(10), older_last=at(5980))
    rows = plan_misfire(due, at(6000), "run_all", 300)
    assert outcomes(rows) == [(10, "skipped_stale"), (5990, "caught_up")]
    assert "599 slot(s)" in rows[0][2]


def test_a_slot_handled_within_the_tolerance_is_on_time():
    due = DueSlots(recent=[at(10)])
    assert outcomes(plan_misfire(due, at(11.5), "skip", 300)) == [(10, "fired")]


RUNNING, QUEUED = Flight("j@1", queued=False), Flight("j@2", queued=True)


@pytest.mark.parametrize(("policy", "flights", "action"), [
    ("allow", [RUNNING, QUEUED], "fire"),
    ("skip", [], "fire"),
    ("skip", [RUNNING], "skip"),
    ("skip", [QUEUED], "skip"),
    ("buffer_one", [RUNNING], "fire"),
    ("buffer_one", [RUNNING, QUEUED], "skip"),
    ("replace", [RUNNING], "fire"),
    ("replace", [RUNNING, QUEUED], "replace"),
])
def test_overlap_policy_table(policy, flights, action):
    assert overlap_action(policy, flights) == action
