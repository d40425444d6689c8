"""The jobs file (``config/jobs.yaml``): parsed with line numbers, validated with pydantic.

Every mistake becomes one :class:`~broker_jobs.errors.ConfigError` line,
``file:line: jobs[i].field: message``, so ``check-config`` and every process
that loads the file exit 2 before publishing anything.

A job has exactly one trigger key (``cron``, ``interval`` or ``date``).  Any
field except ``args``/``kwargs`` may be a per-environment mapping
(``{development: ..., production: ..., default: ...}``) resolved by ``APP_ENV``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .. import registry
from ..errors import BrokerJobsError, ConfigError
from ..fleet_limits import FleetLimit, limits_of
from ..priorities import Priority, parse_priority
from ..registry import JobSpec
from ..settings import Settings
from . import groups
from .apscheduler_format import convert, is_apscheduler_entry
from .jobs_file import Located, Path_, dotted, import_listed_modules
from .triggers import CronTrigger, DateTrigger, IntervalTrigger, TriggerError, parse_cron

Trigger = CronTrigger | IntervalTrigger | DateTrigger
ENVIRONMENTS = ("development", "production", "default")
TRIGGER_KINDS = ("cron", "interval", "date")
TOP_LEVEL_KEYS = ("jobs", "modules", "rate_limits")


class IntervalSpec(BaseModel):
    """``interval: {minutes: 5, start: ..., end: ...}``."""

    model_config = ConfigDict(extra="forbid", strict=True)
    seconds: float = Field(0, ge=0)
    minutes: float = Field(0, ge=0)
    hours: float = Field(0, ge=0)
    days: float = Field(0, ge=0)
    start: datetime | str | None = None
    end: datetime | str | None = None

    @property
    def total(self) -> float:
        """The period in seconds."""
        return self.seconds + 60 * self.minutes + 3600 * self.hours + 86400 * self.days


class DstSpec(BaseModel):
    """What a cron job does at daylight-saving changes."""

    model_config = ConfigDict(extra="forbid", strict=True)
    gap: Literal["shift", "skip"] = "shift"
    fold: Literal["once", "twice"] = "once"


class JobEntry(BaseModel):
    """One entry of ``jobs:`` as written (before the actor and trigger are checked)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$", max_length=200)
    actor: str = Field(min_length=1)
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    cron: str | None = None
    interval: float | IntervalSpec | None = None
    date: datetime | str | None = None
    priority: str | int | None = None
    enabled: bool = True
    queue: str | None = Field(None, min_length=1)
    timezone: str | None = None
    jitter: float = Field(0, ge=0, le=3600)
    misfire: Literal["skip", "run_once", "run_all"] = "run_once"
    misfire_grace: float = Field(300, gt=0)
    overlap: Literal["allow", "skip", "buffer_one", "replace"] = "skip"
    dst: DstSpec = Field(default_factory=DstSpec)
    description: str | None = None
    group: str | None = None

    @field_validator("group")
    @classmethod
    def _group(cls, value: str | None) -> str | None:
        if value is not None:
            if not groups.PATTERN.match(value):
                raise ValueError("must be a name of up to 50 letters, digits, . _ - (starting with a letter or digit)")
            if value == groups.EVERYTHING:
                raise ValueError(f"{value!r} is reserved (it means every group in the admin API)")
        return value

    @field_validator("priority")
    @classmethod
    def _priority(cls, value: str | int | None) -> str | int | None:
        if value is not None:
            parse_priority(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        if value is not None:
            zone(value)
        return value

    @model_validator(mode="after")
    def _one_trigger(self) -> JobEntry:
        given = [kind for kind in TRIGGER_KINDS if getattr(self, kind) is not None]
        if len(given) != 1:
            found = ", ".join(given) if given else "none"
            raise ValueError(f"exactly one trigger (cron, interval or date) is required, found {found}")
        return self


@dataclass(frozen=True)
class JobDef:
    """A validated job, its trigger resolved for the current ``APP_ENV``.

    Parameters:
      id: The schedule id (the ``job_id`` part of every fire id).
      origin: ``config`` (the jobs file) or ``runtime`` (``jobs add``).
      spec: A runtime job's entry as written (how it is stored).
    """

    id: str
    actor: str
    trigger: Trigger
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    priority: Priority = Priority.MEDIUM
    queue: str = "default"
    timezone: str = "UTC"
    jitter: float = 0.0
    misfire: str = "run_once"
    misfire_grace: float = 300.0
    overlap: str = "skip"
    enabled: bool = True
    description: str = ""
    origin: str = "config"
    spec: dict[str, Any] = field(default_factory=dict, compare=False)
    group: str = groups.DEFAULT

    @property
    def kind(self) -> str:
        """``cron``, ``interval`` or ``date``."""
        return {CronTrigger: "cron", IntervalTrigger: "interval", DateTrigger: "date"}[type(self.trigger)]


@dataclass(frozen=True)
class JobsConfig:
    """The jobs file: where it came from, its jobs and the modules it imports."""

    source: str
    jobs: list[JobDef]
    modules: list[str] = field(default_factory=list)
    rate_limits: list[FleetLimit] = field(default_factory=list)


def zone(name: str) -> ZoneInfo:
    """The time zone called ``name``, or ValueError naming it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


def _resolve_env(value: Any, app_env: str, path: Path_, doc: Located | None) -> Any:
    if isinstance(value, dict) and value and set(value) <= set(ENVIRONMENTS):
        if app_env in value:
            return value[app_env]
        if "default" in value:
            return value["default"]
        message = f"no value for APP_ENV={app_env!r} (give it or a 'default')"
        raise doc.error(path, message) if doc else ConfigError(f"{dotted(path)}: {message}")
    return value


def _union_tag(part: str | int) -> bool:
    # pydantic names the member of a union it tried: ('interval', 'IntervalSpec', 'minutes').
    return isinstance(part, str) and (part[:1].isupper() or "[" in part or part in _TYPE_TAGS)


_TYPE_TAGS = {"float", "int", "str", "bool", "datetime", "none"}


def _when(value: datetime | str) -> datetime:
    # A naive time is a wall time in the job's zone: the trigger resolves it (DST-aware).
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"not an ISO date and time: {value!r}") from None
    return value


def parse_job(raw: Any, settings: Settings, *, path: Path_ = ("job",), doc: Located | None = None,
              origin: str = "config") -> JobDef:
    """Validate one job entry and resolve its actor, trigger and defaults.

    Parameters:
      raw: The entry as written (a mapping).
      settings: The settings (``APP_ENV``, ``SCHEDULER_TIMEZONE``).
      path: Where the entry sits, for error messages (``('jobs', 3)``).
      doc: The located document, for line numbers.
      origin: ``config`` or ``runtime``.

    Raises:
      ConfigError: ``file:line: jobs[i].field: message``.
    """
    from ..job import validate_arguments  # deferred: dramatiq and the publish path, only when a job is validated

    def fail(sub: Path_, message: str) -> ConfigError:
        full = (*path, *sub)
        return doc.error(full, message) if doc else ConfigError(f"{dotted(full)}: {message}")

    if not isinstance(raw, dict):
        raise fail((), f"must be a mapping, got {type(raw).__name__}")
    entry = {key: value if key in ("args", "kwargs") else _resolve_env(value, settings.app_env, (*path, key), doc)
             for key, value in raw.items()}
    try:
        job = JobEntry.model_validate(entry)
    except ValidationError as exc:
        err = max(exc.errors(), key=lambda e: len(e["loc"]))
        loc = tuple(p for p in err["loc"] if not _union_tag(p))
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown field"
        raise fail(loc, message) from None
    if not registry.has(job.actor):
        known = ", ".join(registry.names()) or "none"
        raise fail(("actor",), f"unknown actor {job.actor!r} (known: {known})")
    spec = registry.get(job.actor)
    fn, model = spec.fn, spec.args_model
    if fn is not None and model is not None:
        try:
            validate_arguments(fn, model, tuple(job.args), job.kwargs)
        except BrokerJobsError as exc:
            raise fail(("kwargs" if job.kwargs else "args",), str(exc)) from None
    _check_message_size(job, spec, settings, fail)
    tz = job.timezone or settings.scheduler_timezone
    trigger: Trigger
    try:
        if job.cron is not None:
            parse_cron(job.cron)
            trigger = CronTrigger(job.cron, timezone=tz, gap=job.dst.gap, fold=job.dst.fold)
        elif job.date is not None:
            trigger = DateTrigger(_when(job.date), timezone=tz)
        else:
            interval = (job.interval if isinstance(job.interval, IntervalSpec)
                        else IntervalSpec(seconds=float(job.interval or 0)))
            if interval.total <= 0:
                raise TriggerError("the interval must be longer than 0 seconds")
            trigger = IntervalTrigger(
                interval.total, timezone=tz,
                start=_when(interval.start) if interval.start is not None else None,
                end=_when(interval.end) if interval.end is not None else None,
            )
    except (TriggerError, ValueError) as exc:
        raise fail((next(k for k in TRIGGER_KINDS if getattr(job, k) is not None),), str(exc)) from None
    return JobDef(
        id=job.id, actor=job.actor, trigger=trigger, args=tuple(job.args), kwargs=dict(job.kwargs),
        priority=parse_priority(job.priority) if job.priority is not None else spec.priority,
        queue=job.queue or spec.queue, timezone=tz, jitter=job.jitter, misfire=job.misfire,
        misfire_grace=job.misfire_grace, overlap=job.overlap, enabled=job.enabled,
        description=job.description or spec.description, origin=origin, spec=dict(raw) if origin == "runtime" else {},
        group=job.group or groups.DEFAULT,
    )


def _check_message_size(job: JobEntry, spec: JobSpec, settings: Settings,
                        fail: Callable[[Path_, str], ConfigError]) -> None:
    """Refuse a job whose messages would be over ``MAX_MESSAGE_BYTES``: the scheduler could
    never publish them (measured on the largest body it can make: latest slot, with jitter)."""

    from ..errors import MessageTooLarge  # deferred: errors.py pulls dramatiq; the CLI's --help stays light
    from ..middleware.size_limit import (
        check_body,  # deferred: dramatiq and the publish path, only when a job is validated
    )
    from .publisher import Outgoing  # deferred: dramatiq and the publish path, only when a job is validated

    max_bytes = getattr(settings, "max_message_bytes", None)
    if max_bytes is None:  # settings of a unit test
        return
    latest = datetime(9999, 12, 31, 23, 59, 59, 999999)
    out = Outgoing(job_id=job.id, actor=job.actor, queue=job.queue or spec.queue, args=tuple(job.args),
                   kwargs=dict(job.kwargs), priority=spec.priority, fire_id=f"{job.id}@{latest.isoformat()}Z",
                   slot=latest, delay_ms=1)
    _, body, _ = out.encoded(10**13)
    try:
        check_body(body, job.actor, max_bytes)
    except MessageTooLarge as exc:
        raise fail(("kwargs" if job.kwargs else "args",), str(exc)) from None


def load_config(path: Path, settings: Settings, *, import_modules: bool = True) -> JobsConfig:
    """Read and validate the jobs file.

    Parameters:
      path: The file (``JOBS_CONFIG``).
      settings: The settings.
      import_modules: Load the registered jobs (:func:`broker_jobs.registry.load_jobs`) and
        import the file's ``modules:`` first, so their jobs can be named.

    Raises:
      ConfigError: ``file:line: jobs[i].field: message``.
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read the jobs file: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: the jobs file is not UTF-8 (byte {exc.start}: {exc.reason})") from None
    doc = Located(text, source)
    data = doc.data if doc.data is not None else {}
    if not isinstance(data, dict):
        raise doc.error((), "the jobs file must be a mapping with 'jobs:' (and optionally 'modules:')")
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            raise doc.error((key,), "unknown top-level key (expected 'jobs', 'modules' and 'rate_limits')")
    modules = data.get("modules") if data.get("modules") is not None else []
    if not isinstance(modules, list) or not all(isinstance(m, str) for m in modules):
        raise doc.error(("modules",), "must be a list of module names")
    if import_modules:
        registry.load_jobs()
        import_listed_modules(doc, modules)
    raw_jobs = data.get("jobs") if data.get("jobs") is not None else []
    if not isinstance(raw_jobs, list):
        raise doc.error(("jobs",), "must be a list of jobs")
    jobs: list[JobDef] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(raw_jobs):
        if is_apscheduler_entry(raw):
            try:
                raw = convert(raw, registry.pipeline())
            except ValueError as exc:
                field, _, message = str(exc).partition(": ")
                raise doc.error(("jobs", i, field), message) from None
        job = parse_job(raw, settings, path=("jobs", i), doc=doc)
        if job.id in seen:
            raise doc.error(("jobs", i, "id"), f"duplicate id {job.id!r} (first used by jobs[{seen[job.id]}])")
        seen[job.id] = i
        jobs.append(job)
    limits = limits_of(doc, settings.app_env)
    if import_modules:
        _check_limit_targets(doc, limits)
    return JobsConfig(source=source, jobs=jobs, modules=list(modules), rate_limits=limits)


def _check_limit_targets(doc: Located, limits: list[FleetLimit]) -> None:
    """A group naming an unknown job, or a queue no job uses, is a typo that would limit nothing."""
    queues = {spec.queue for spec in registry.list()}
    for i, limit in enumerate(limits):
        if limit.queue is not None and limit.queue not in queues:
            raise doc.error(("rate_limits", i, "queue"),
                            f"no job uses queue {limit.queue!r} (known: {', '.join(sorted(queues))})")
        for name in sorted(limit.actors):
            if not registry.has(name):
                raise doc.error(("rate_limits", i, "actors"), f"unknown actor {name!r}")
