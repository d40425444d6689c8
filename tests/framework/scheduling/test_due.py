"""The due heap: earliest slot first, a redefined job's old entries no longer count."""

from __future__ import annotations

from datetime import timedelta

from broker_jobs.scheduling.due import DueHeap
from broker_jobs.scheduling.triggers import IntervalTrigger
from tests.support.scheduling import T0


def test_jobs_come_out_earliest_first_and_only_once_due():
    heap = DueHeap()
    heap.push("slow", IntervalTrigger(60), T0)
    heap.push("fast", IntervalTrigger(10), T0)
    assert heap.earliest() == T0 + timedelta(seconds=10)
    assert heap.pop_due(T0 + timedelta(seconds=9)) == []
    due = heap.pop_due(T0 + timedelta(seconds=60))
    assert [(e.job_id, e.at) for e in due] == [("fast", T0 + timedelta(seconds=10)),
                                               ("slow", T0 + timedelta(seconds=60))]
    assert heap.earliest() is None


def test_a_redefined_job_is_due_only_at_its_new_slot():
    heap = DueHeap()
    heap.push("job", IntervalTrigger(10), T0)
    heap.changed("job")
    heap.push("job", IntervalTrigger(30), T0)
    assert heap.earliest() == T0 + timedelta(seconds=30)
    assert [e.at for e in heap.pop_due(T0 + timedelta(hours=1))] == [T0 + timedelta(seconds=30)]


def test_a_removed_job_is_never_due_and_a_slot_found_by_planning_is_pushed_as_is():
    heap = DueHeap()
    heap.push("gone", IntervalTrigger(10), T0)
    heap.changed("gone")
    assert heap.pop_due(T0 + timedelta(hours=1)) == []
    heap.follows("next", T0 + timedelta(seconds=42))
    assert heap.push("next", IntervalTrigger(10), T0) == T0 + timedelta(seconds=42)
    assert heap.push("next", IntervalTrigger(10), T0) == T0 + timedelta(seconds=10)  # used once
    heap.follows("ended", None)
    assert heap.push("ended", IntervalTrigger(10), T0) is None
    assert [e.job_id for e in heap.pop_due(T0 + timedelta(hours=1))] == ["next", "next"]
