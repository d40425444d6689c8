"""The registry of jobs declared with :func:`broker_jobs.job`."""

from __future__ import annotations

import builtins
from collections.abc import Callable
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
    #: The undecorated function, and what builds its arguments' pydantic model (what the jobs file's args, ``send``
    #: and the API are checked against) on first use: declaring the jobs builds no model.
    fn: Callable[..., Any] | None = field(default=None, repr=False, compare=False)
    model_of: Callable[[], Any] | None = field(default=None, repr=False, compare=False)

    @property
    def args_model(self) -> Any:
        """The arguments' pydantic model (built once, at first use), or None."""
        return None if self.model_of is None else self.model_of()


_jobs: dict[str, JobSpec] = {}
_loaders: builtins.list[Callable[[], object]] = []


def add_loader(loader: Callable[[], object]) -> None:
    """Register a function that declares jobs (imports an application's job modules).

    The framework never names the application: an application (``broker_jobs.app.main``) registers its loader,
    and :func:`load_jobs` calls it wherever the jobs must be known (the CLI, the jobs file, periodiq).
    """
    if loader not in _loaders:
        _loaders.append(loader)


_pipeline: builtins.list[str] = []


def set_pipeline(name: str) -> None:
    """Name the application's pipeline job: what a job written APScheduler's way runs when it names no actor
    (:mod:`broker_jobs.scheduling.apscheduler_format`; the built-in application registers its ETL pipeline)."""
    _pipeline[:] = [name]


def pipeline() -> str | None:
    """The pipeline job's name, if an application registered one."""
    return _pipeline[0] if _pipeline else None


def load_jobs() -> None:
    """Call every registered loader (each is expected to be idempotent, as an import is)."""
    for loader in builtins.list(_loaders):
        loader()


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
    from .errors import NotFoundError  # deferred: errors.py pulls dramatiq; the CLI imports this module at --help

    try:
        return _jobs[name]
    except KeyError:
        known = ", ".join(sorted(_jobs)) or "none"
        raise NotFoundError(f"unknown actor {name!r} (known: {known})") from None


def names() -> builtins.list[str]:
    """The registered job names, sorted."""
    return sorted(_jobs)
