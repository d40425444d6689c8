"""The due heap: every job's next fire time, earliest first.

A job whose definition changes gets a new version; its entries of the old
version stay in the heap (removing them would cost a scan) and are dropped when
they reach the top.  Entries are named tuples: compared in C, which a 10,000-job
heap needs, and read by name (``entry.job_id``), not by index.
"""

from __future__ import annotations

import heapq
from datetime import datetime
from typing import NamedTuple

from .triggers import Trigger, next_fire


class DueEntry(NamedTuple):
    """One job's next slot.

    Parameters:
      at: The slot.
      seq: Push order, so two entries of the same slot never compare their job ids.
      job_id: The job.
      version: The job's version when pushed (stale entries are dropped).
    """

    at: datetime
    seq: int
    job_id: str
    version: int


class DueHeap:
    """The next slot of each job, and the slots the planning already computed."""

    def __init__(self) -> None:
        self._heap: list[DueEntry] = []
        self._versions: dict[str, int] = {}
        self._seq = 0
        # The following slot, computed while planning a tick: pushed without computing it again.
        self._following: dict[str, datetime | None] = {}

    def changed(self, job_id: str) -> None:
        """The job was redefined or removed: its entries in the heap no longer count."""
        self._versions[job_id] = self._versions.get(job_id, 0) + 1
        self._following.pop(job_id, None)

    def clear(self) -> None:
        """Forget every entry (leadership lost or taken again)."""
        self._heap, self._following = [], {}

    def follows(self, job_id: str, slot: datetime | None) -> None:
        """Planning found the job's next slot after this tick (None: the trigger has ended)."""
        self._following[job_id] = slot

    def unknown(self, job_id: str) -> None:
        """Planning left the job's next slot to be computed when it is pushed."""
        self._following.pop(job_id, None)

    def push(self, job_id: str, trigger: Trigger, after: datetime) -> datetime | None:
        """Schedule the job's next slot after ``after`` (or the one planning found); returns it."""
        nxt = self._following.pop(job_id) if job_id in self._following else next_fire(trigger, after)
        if nxt is not None:
            self._seq += 1
            heapq.heappush(self._heap, DueEntry(nxt, self._seq, job_id, self._versions.get(job_id, 0)))
        return nxt

    def _current(self, entry: DueEntry) -> bool:
        return entry.version == self._versions.get(entry.job_id, 0)

    def earliest(self) -> datetime | None:
        """The earliest slot of a current entry."""
        heap = self._heap
        while heap and not self._current(heap[0]):
            heapq.heappop(heap)
        return heap[0].at if heap else None

    def pop_due(self, now: datetime) -> list[DueEntry]:
        """Remove and return the current entries due at ``now``, earliest first."""
        heap, due = self._heap, []
        while heap and heap[0].at <= now:
            entry = heapq.heappop(heap)
            if self._current(entry):
                due.append(entry)
        return due
