"""The events the jobs of :mod:`tests.framework.scaleout.jobs` append to files (a job started or finished), read back
and counted by the shutdown and partition tests."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Event:
    """One line of an events file: a job started or finished."""

    kind: str  # "start" or "done"
    message_id: str
    key: str
    pid: int
    at: float


def events(directory: Path) -> list[Event]:
    """Every event the jobs recorded in ``directory``, oldest first."""
    found = []
    for path in directory.glob("*.events"):
        for line in path.read_text().splitlines():
            kind, message_id, key, pid, at = line.split()
            found.append(Event(kind, message_id, key, int(pid), float(at)))
    return sorted(found, key=lambda e: e.at)


def count_events(found: Iterable[Event], kind: str, pid: int | None = None) -> Counter[str]:
    """How many ``kind`` events each message id has (only those of ``pid`` when given)."""
    return Counter(e.message_id for e in found if e.kind == kind and (pid is None or e.pid == pid))
