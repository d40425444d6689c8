"""The report every job returns: counts and durations, stored on its history entry."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

COUNTS = ("fetched", "inserted", "updated", "skipped", "deleted", "failed")


@dataclass
class Report:
    """Counts of what a job did, the time each phase took, and job-specific extras."""

    fetched: int = 0
    inserted: int = 0
    updated: int = 0
    skipped: int = 0
    deleted: int = 0
    failed: int = 0
    durations_ms: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter, repr=False)

    @contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        """Add the time spent inside the block to ``durations_ms[phase]``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            spent = (time.perf_counter() - start) * 1000
            self.durations_ms[phase] = round(self.durations_ms.get(phase, 0.0) + spent, 2)

    def add(self, other: Report) -> None:
        """Add ``other``'s counts and durations to this report."""
        for name in COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for phase, spent in other.durations_ms.items():
            self.durations_ms[phase] = round(self.durations_ms.get(phase, 0.0) + spent, 2)

    def counts(self) -> dict[str, int]:
        """Only the counts."""
        return {name: getattr(self, name) for name in COUNTS}

    def asdict(self) -> dict[str, Any]:
        """The JSON-ready report: counts, ``duration_ms``, ``durations_ms`` and the extras."""
        total = round((time.perf_counter() - self.started) * 1000, 2)
        return {**self.counts(), "duration_ms": total, "durations_ms": dict(self.durations_ms), **self.extra}


def message_tag() -> str:
    """``" [job X message Y]"`` inside a job, ``""`` outside: for log lines about a job."""
    from dramatiq.middleware import CurrentMessage  # deferred: dramatiq, only when a report is recorded

    message = CurrentMessage.get_current_message()
    return f" [job {message.actor_name} message {message.message_id}]" if message is not None else ""
