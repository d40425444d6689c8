"""The registry of jobs declared with :func:`broker_jobs.job`."""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from typing import Any

from .priorities import Priority


@dataclass(frozen=True)
class JobSpec:
    """What the registry knows of one job.

    Parameters:
      name: The actor name (what ``send`` and the jobs file use).
      queue: The queue its messages go to.
      priority: Its default priority.
      description: One line for listings.
      actor: The Dramatiq actor.
    """

    name: str
    queue: str
    priority: Priority
    description: str
    actor: Any = field(repr=False, compare=False)
    rate_limit: str | None = None


_jobs: dict[str, JobSpec] = {}


def register(spec: JobSpec) -> None:
    """Add or replace a job (re-declaring a job replaces it, as Dramatiq does)."""
    _jobs[spec.name] = spec


def list() -> builtins.list[JobSpec]:
    """Every registered job, sorted by name."""
    return sorted(_jobs.values(), key=lambda spec: spec.name)


def has(name: str) -> bool:
    """Whether a job called ``name`` is registered."""
    return name in _jobs


def get(name: str) -> JobSpec:
    """The job called ``name``.

    Raises:
      NotFoundError: naming the job and the known ones.
    """
    from .errors import NotFoundError

    try:
        return _jobs[name]
    except KeyError:
        known = ", ".join(sorted(_jobs)) or "none"
        raise NotFoundError(f"unknown actor {name!r} (known: {known})") from None


def names() -> builtins.list[str]:
    """The registered job names, sorted."""
    return sorted(_jobs)
