"""The jobs a scheduler instance knows: the jobs file, the runtime jobs and the pauses, re-read when changed.

Every instance keeps its catalog fresh, leader or not, so that a new leader
starts with the current jobs.  A changed job gets a new version in the due heap
(the scheduler applies the :class:`Changes`); the queues the jobs use are
declared before their first message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import BrokerJobsError, ConfigError
from ..settings import Settings
from . import groups
from .config import JobDef, load_config, parse_job

if TYPE_CHECKING:
    from sqlalchemy import Row

logger = logging.getLogger("broker_jobs.scheduling.scheduler")


class CatalogStore(Protocol):
    """The part of :class:`~broker_jobs.store.scheduler_state.SchedulerStore` the catalog reads."""

    def controls(self) -> dict[str, Row[Any]]:
        """Each job's pause."""
        ...

    def runtime_specs(self) -> dict[str, dict[str, Any]]:
        """The runtime jobs' specs."""
        ...


@dataclass(frozen=True)
class Changes:
    """What a reload changed.

    Parameters:
      changed: Jobs new or redefined.
      removed: Jobs gone (or disabled).
      retimed: Changed jobs whose trigger changed (they start again from now).
    """

    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    retimed: set[str] = field(default_factory=set)


class Catalog:
    """The enabled jobs (file and runtime), the pauses, and the queues declared for them.

    Parameters:
      settings: The settings (the jobs file is parsed with them).
      store: The shared state (pauses, runtime jobs).
      config_path: The jobs file.
      declare_queues: Declares the queues the jobs use (through the broker).
      report: Called with a line for a job ignored or a queue not declared yet.
      group: Only the jobs of this group (``scheduler --group``); None: every job.
    """

    def __init__(self, settings: Settings, store: CatalogStore, config_path: Path, *,
                 declare_queues: Callable[[set[str]], None] | None, report: Callable[[str], None],
                 group: str | None = None) -> None:
        self.settings, self.store, self.config_path = settings, store, config_path
        self.group = group
        self._declare_queues, self._report = declare_queues, report
        self.config_jobs: dict[str, JobDef] = {}
        self.jobs: dict[str, JobDef] = {}
        self.paused: dict[str, str | None] = {}
        self._mtime: float | None = None
        self._specs_seen: dict[str, dict[str, Any]] | None = None
        self._declared: set[str] = set()

    def load(self) -> Changes:
        """Load the jobs file (ConfigError if invalid), runtime jobs and pauses."""
        self._mtime = self._file_mtime()
        config = load_config(self.config_path, self.settings)
        self.config_jobs = {job.id: job for job in config.jobs}
        return self.reload()

    def _file_mtime(self) -> float | None:
        try:
            return self.config_path.stat().st_mtime
        except OSError:
            return None

    def refresh(self) -> Changes:
        """Re-read pauses, runtime jobs and the jobs file when it changed (a broken edit keeps the old one)."""
        mtime = self._file_mtime()
        changed = mtime != self._mtime
        if changed:
            self._mtime = mtime
            try:
                config = load_config(self.config_path, self.settings)
                self.config_jobs = {job.id: job for job in config.jobs}
                logger.info("[scheduler] reloaded %s: %d jobs", self.config_path, len(config.jobs))
            except ConfigError as exc:
                self._report(f"jobs file not reloaded, keeping the previous one: {exc}")
                changed = False
        return self.reload(changed)

    def reload(self, config_changed: bool = True) -> Changes:
        """Re-read pauses and runtime jobs; merge them with the file's jobs when anything changed."""
        controls = self.store.controls()
        self._pauses(controls)
        specs = self.store.runtime_specs()
        if not config_changed and specs == self._specs_seen:
            return Changes()  # comparing 10,000 jobs every 5 s would be most of the idle CPU
        self._specs_seen = specs
        jobs = dict(self.config_jobs)
        for job_id, spec in specs.items():
            if job_id in jobs:
                continue
            try:
                jobs[job_id] = parse_job(spec, self.settings, path=(f"runtime job {job_id}",), origin="runtime")
            except BrokerJobsError as exc:
                self._report(f"runtime job {job_id} ignored: {exc}")
        changes = self._set({j.id: j for j in jobs.values()
                             if j.enabled and (self.group is None or j.group == self.group)})
        self._pauses(controls)
        return changes

    def _pauses(self, controls: dict[str, Row[Any]]) -> None:
        """Each job's own pause, else its whole scheduler's (every job, or its group), with the note."""
        paused = {key: c.note for key, c in controls.items() if c.paused and not groups.is_control_key(key)}
        whole = {key: c.note or "scheduler paused" for key, c in controls.items()
                 if c.paused and groups.is_control_key(key)}
        if whole:
            everything = whole.get(groups.control_key(None))
            for job in self.jobs.values():
                if job.id not in paused:
                    note = everything or whole.get(groups.control_key(job.group))
                    if note is not None:
                        paused[job.id] = note
        self.paused = paused

    def _set(self, jobs: dict[str, JobDef]) -> Changes:
        old = self.jobs
        changed = [i for i in jobs if old.get(i) != jobs[i]]
        removed = [i for i in old if i not in jobs]
        retimed = {i for i in changed if i in old and old[i].trigger != jobs[i].trigger}
        self.jobs = jobs
        return Changes(changed, removed, retimed)

    def declare(self) -> None:
        """Declare the queues of the jobs not declared yet (RabbitMQ down: declared again later)."""
        queues = {job.queue for job in self.jobs.values()} - self._declared
        if queues and self._declare_queues is not None:
            try:
                self._declare_queues(queues)
                self._declared |= queues
            except BrokerJobsError:
                raise
            except Exception as exc:  # noqa: BLE001 - RabbitMQ down: declared again before the next publish
                self._report(f"cannot declare queues {sorted(queues)} yet: {exc!r}")
