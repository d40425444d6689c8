"""``/api/v1``: queues, schedules, history, dead letters, sync triggers.

Reads need the ``read`` scope, anything that enqueues or changes a schedule
the ``operate`` scope.  Handlers are plain functions: FastAPI runs them in its
thread pool, so a slow broker never stalls the event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, ParamSpec, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from .. import registry
from ..clock import utc_now
from ..dead_letters import list_dead, replay
from ..errors import BrokerJobsError, BrokerUnavailableError, ConfigError, NotFoundError
from ..job import validate_arguments
from ..queues import queue_stats
from ..scheduling import control, firing
from ..settings import Settings
from ..store.db import get_engine
from ..store.queries import (
    archived_letters,
    finished_since,
    latest_run,
    query_runs,
    queue_run_counts,
    run_counts,
    scheduled_runs,
)
from ..store.queries import recent_dead as archived_dead
from .auth import require
from .statuses import READ, WITH_BODY, WRITE, answers

read = Depends(require("read"))
operate = Depends(require("operate"))
router = APIRouter(prefix="/api/v1")

Status = Literal["running", "succeeded", "failed", "retrying", "dead", "skipped"]

#: Backfill bounds: slot arithmetic near ``datetime.min``/``max`` overflows, and no
#: schedule has slots worth publishing outside these years.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL: refused here as a 422 instead of failing in the driver.
    if "\x00" in value:
        raise ValueError("must not contain NUL (\\x00) characters")
    return value


#: A string the database can store.
Text = Annotated[str, AfterValidator(_no_nul)]


def _in_range(value: datetime) -> datetime:
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    if not EARLIEST <= aware < LATEST:
        raise ValueError(f"must be between {EARLIEST.date()} and {LATEST.date()}")
    return value


#: A timestamp whose slots can be computed.
Instant = Annotated[datetime, AfterValidator(_in_range)]


class PauseBody(BaseModel):
    """Why the schedule is paused (kept and shown beside it)."""

    model_config = ConfigDict(extra="forbid")
    note: Text = Field(min_length=1, max_length=500, description="Why; shown in listings.")


class RunBody(BaseModel):
    """Run a schedule's job now."""

    model_config = ConfigDict(extra="forbid")
    force: bool = Field(False, description="Run even if a run of the job is still in flight.")


class BackfillBody(BaseModel):
    """Enqueue every slot of a schedule in ``[start, end]``, both included.

    ``start`` equal to ``end`` is the one instant: its slot is published if the
    schedule has one there.  Naive times are in the schedule's time zone.
    """

    model_config = ConfigDict(extra="forbid")
    start: Instant = Field(description="First instant (included), 1970-01-01 to 9000-01-01.")
    end: Instant = Field(description="Last instant (included), not before start.")

    @model_validator(mode="after")
    def _ordered(self) -> BackfillBody:
        if (self.start.tzinfo is None) != (self.end.tzinfo is None):
            raise ValueError("start and end must both carry a UTC offset, or neither")
        if self.end < self.start:
            raise ValueError("end must not be before start")
        return self


class ReplayBody(BaseModel):
    """Which dead letters to replay: one ``id``, or all of a ``queue``/``actor``, or ``all``."""

    model_config = ConfigDict(extra="forbid")
    id: Text | None = Field(None, min_length=1)
    queue: Text | None = Field(None, min_length=1)
    actor: Text | None = Field(None, min_length=1)
    all: bool = False
    args: list[Any] | None = Field(None, description="With id: replay with these positional arguments.")
    kwargs: dict[str, Any] | None = Field(None, description="With id: replay with these keyword arguments.")

    @model_validator(mode="after")
    def _selects(self) -> ReplayBody:
        if not (self.id or self.queue or self.actor or self.all):
            raise ValueError("say which dead letters: id, queue, actor or all")
        if (self.args is not None or self.kwargs is not None) and not self.id:
            raise ValueError("args/kwargs need id: new arguments apply to one dead letter")
        return self


class Enqueued(BaseModel):
    """A message was published (and confirmed)."""

    message_id: str
    actor: str
    queue: str


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _call(fn: Callable[_P, _R], *args: _P.args, **kwargs: _P.kwargs) -> _R:
    """Call into the library, turning our errors into HTTP statuses."""
    try:
        return fn(*args, **kwargs)
    except NotFoundError as exc:
        raise HTTPException(404, detail=str(exc)) from None
    except BrokerUnavailableError as exc:
        raise HTTPException(503, detail=str(exc)) from None
    except ConfigError as exc:  # a request the schedule cannot take (range too long, ...)
        raise HTTPException(422, detail=str(exc)) from None
    except BrokerJobsError as exc:
        raise HTTPException(409, detail=str(exc)) from None


def check_arguments(actor: str | None, args: list[Any] | None, kwargs: dict[str, Any] | None) -> None:
    """Check arguments against the job's arguments model before anything is sent.

    Raises:
      HTTPException: 422 naming the first bad argument (or an unknown actor).
    """
    try:
        spec = registry.get(str(actor))
        if spec.fn is not None and spec.args_model is not None:
            validate_arguments(spec.fn, spec.args_model, tuple(args or ()), dict(kwargs or {}))
    except NotFoundError as exc:
        raise HTTPException(422, detail=f"actor: {exc}") from None
    except BrokerJobsError as exc:
        raise HTTPException(422, detail=f"{'kwargs' if kwargs else 'args'}: {exc}") from None


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings  # set by api.app.create_app
    return settings


def completed_counts(settings: Settings) -> dict[str, int]:
    """Succeeded runs kept in the history, by queue."""
    return run_counts(get_engine(settings.database_url), by="queue", status="succeeded")


def queue_rows(settings: Settings) -> list[dict[str, Any]]:
    """Waiting, active, delayed, failed and completed per queue."""
    stats = _call(queue_stats, settings)
    completed = completed_counts(settings)
    return [{"queue": s.queue, "waiting": s.ready, "active": s.unacked, "delayed": s.delayed,
             "failed": s.dead, "completed": completed.get(s.queue, 0), "consumers": s.consumers}
            for s in stats]


@router.get("/queues", dependencies=[read], tags=["queues"], responses=answers(*READ))
def list_queues(request: Request) -> list[dict[str, Any]]:
    """Waiting (ready), active (unacked), delayed, failed (dead-lettered) and completed per queue."""
    return queue_rows(_settings(request))


@router.get("/jobs", dependencies=[read], tags=["schedules"], responses=answers(*READ, 422))
def list_jobs(request: Request) -> list[dict[str, Any]]:
    """Every schedule with its next and last run and the last outcome."""
    return _call(control.list_jobs, _settings(request))


@router.get("/jobs/{job_id}", dependencies=[read], tags=["schedules"], responses=answers(*READ, 404, 422))
def show_job(request: Request, job_id: Text,
             preview: int = Query(5, ge=0, le=100, description="Next fire times to list.")) -> dict[str, Any]:
    """One schedule, with its next fire times."""
    job = dict(_call(control.show_job, _settings(request), job_id))
    if preview:
        job["upcoming"] = _call(control.preview, _settings(request), job_id, count=preview)
    return job


@router.post("/jobs/{job_id}/run", dependencies=[operate], tags=["schedules"], responses=answers(*WITH_BODY))
def run_job(request: Request, job_id: Text, body: RunBody | None = None) -> dict[str, Any]:
    """Enqueue the schedule's job now, outside its slots."""
    return _call(firing.run_now, _settings(request), job_id, force=(body or RunBody()).force)


@router.post("/jobs/{job_id}/pause", dependencies=[operate], tags=["schedules"], responses=answers(*WITH_BODY))
def pause_job(request: Request, job_id: Text, body: PauseBody) -> Any:
    """Stop firing the schedule until resumed; the note says why."""
    result = _call(control.pause, _settings(request), job_id, body.note)
    return result if result is not None else {"id": job_id, "paused": True, "note": body.note}


@router.post("/jobs/{job_id}/resume", dependencies=[operate], tags=["schedules"], responses=answers(*WRITE))
def resume_job(request: Request, job_id: Text) -> Any:
    """Fire the schedule again from its next slot."""
    result = _call(control.resume, _settings(request), job_id)
    return result if result is not None else {"id": job_id, "paused": False}


@router.post("/jobs/{job_id}/backfill", dependencies=[operate], tags=["schedules"],
             responses=answers(*WITH_BODY))
def backfill_job(request: Request, job_id: Text, body: BackfillBody) -> dict[str, Any]:
    """Enqueue every slot between start and end (deduplicated by slot)."""
    return _call(firing.backfill, _settings(request), job_id, body.start, body.end)


def _run_dict(run: Any) -> dict[str, Any]:
    return {name: value for name, value in run._mapping.items() if name != "seq"}


@router.get("/history", dependencies=[read], tags=["history"], responses=answers(*READ, 422))
def history(request: Request, actor: Text | None = None, status: Status | None = None,
            limit: int = Query(50, ge=1, le=1000)) -> list[dict[str, Any]]:
    """Recent runs, newest first."""
    engine = get_engine(_settings(request).database_url)
    return [_run_dict(r) for r in query_runs(engine, actor=actor, status=status, limit=limit)]


@router.get("/dlq", dependencies=[read], tags=["dead letters"], responses=answers(*READ, 422))
def dead_letters(request: Request, queue: Text | None = None, actor: Text | None = None,
                 id: Text | None = None) -> list[dict[str, Any]]:
    """Dead letters with their reason, oldest first."""
    return [d.asdict() for d in _call(list_dead, _settings(request), queue=queue, id=id, actor=actor)]


@router.post("/dlq/replay", dependencies=[operate], tags=["dead letters"], responses=answers(*WITH_BODY))
def replay_dead(request: Request, body: ReplayBody) -> dict[str, list[dict[str, Any]]]:
    """Re-enqueue dead letters with their retries reset (each under a new message id).

    ``replayed`` lists the letters sent again (``replayed_as``: the new id), ``skipped`` those
    that cannot be (``not_replayable``: why), which stay dead.  New arguments are checked against
    the job's arguments first: arguments it refuses are a 422 and nothing is sent.
    """
    if body.id and (body.args is not None or body.kwargs is not None):
        letters = archived_letters(get_engine(_settings(request).database_url), [body.id])
        if body.id in letters:
            check_arguments(letters[body.id].actor, body.args, body.kwargs)
    done = _call(replay, _settings(request), queue=body.queue, id=body.id, actor=body.actor,
                 everything=body.all, args=body.args, kwargs=body.kwargs)
    result: dict[str, list[dict[str, Any]]] = done.asdict()
    return result


def _send(actor_name: str, *args: Any) -> Enqueued:
    spec = _call(registry.get, actor_name)
    message = _call(spec.actor.send, *args)
    return Enqueued(message_id=message.message_id, actor=actor_name, queue=spec.queue)


@router.post("/sync/all", dependencies=[operate], tags=["sync"], responses=answers(*READ, 404, 409))
def sync_all() -> Enqueued:
    """Enqueue ``sync_all_services`` (one ``sync_service`` per active service follows)."""
    return _send("sync_all_services")


@router.post("/sync/service/{service_id}", dependencies=[operate], tags=["sync"], responses=answers(*WRITE))
def sync_one(service_id: int = Path(ge=1)) -> Enqueued:
    """Enqueue ``sync_service`` for one service."""
    return _send("sync_service", service_id)


class SyncRun(BaseModel):
    """The newest run of ``sync_all_services``."""

    message_id: str
    status: str
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None


class SyncSchedule(BaseModel):
    """A schedule of the service sync (``service-sync`` in the jobs file: 06:30, every 5 minutes in development)."""

    id: str
    trigger: str
    next_run: datetime | None
    paused: bool


class SyncStatus(BaseModel):
    """Seed 002's queue status (BullMQ's job counts) for the sync queue.

    ``waiting``, ``active`` and ``delayed`` are RabbitMQ's now (``active``: delivered to a worker and not yet
    acknowledged; None without the management API); ``completed`` and ``failed`` are the runs the history keeps,
    after the retention by count and age (``HISTORY_KEEP_COMPLETED``, ``HISTORY_KEEP_FAILED``), as BullMQ's
    counts are after ``removeOnComplete``/``removeOnFail``; ``dead_lettered`` is what waits in ``sync.XQ``.
    """

    queue: str
    waiting: int
    active: int | None
    delayed: int | None
    completed: int
    failed: int
    dead_lettered: int
    last_sync: SyncRun | None
    schedules: list[SyncSchedule]


#: The jobs whose schedules the sync status shows.
SYNC_ACTORS = ("sync_all_services", "sync_service")


@router.get("/sync/status", dependencies=[read], tags=["sync"], responses=answers(*READ, 503))
def sync_status(request: Request) -> SyncStatus:
    """Waiting, active, delayed, completed and failed service syncs, the last one, and when the next fires."""
    settings = _settings(request)
    queue = _call(registry.get, "sync_all_services").queue
    [stats] = _call(queue_stats, settings, [queue])
    engine = get_engine(settings.database_url)
    counts = queue_run_counts(engine, queue)
    try:
        jobs = [j for j in control.list_jobs(settings) if j.get("actor") in SYNC_ACTORS]
    except BrokerJobsError:  # a broken jobs file: the counts still answer
        jobs = []
    last = latest_run(engine, "sync_all_services")
    return SyncStatus(
        queue=queue, waiting=stats.ready, active=stats.unacked, delayed=stats.delayed,
        completed=counts.get("succeeded", 0) + counts.get("skipped", 0),
        failed=counts.get("failed", 0) + counts.get("dead", 0), dead_lettered=stats.dead,
        last_sync=SyncRun(**last) if last else None,
        schedules=[SyncSchedule(id=str(j["id"]), trigger=str(j.get("trigger", "")), next_run=j.get("next_run"),
                                paused=bool(j.get("paused"))) for j in jobs],
    )


def throughput(settings: Settings, minutes: int = 30) -> dict[str, list[int]]:
    """Runs finished per minute and queue over the last ``minutes`` (oldest first)."""
    now = utc_now()
    series: dict[str, list[int]] = {}
    for queue, when in finished_since(get_engine(settings.database_url), now - timedelta(minutes=minutes)):
        slot = minutes - 1 - int((now - when).total_seconds() // 60)
        if 0 <= slot < minutes:
            series.setdefault(queue, [0] * minutes)[slot] += 1
    return series


def with_latest_runs(settings: Settings, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``jobs`` with each one's latest run from the history (manual runs and backfills included)."""
    latest: dict[str, dict[str, Any]] = {}
    for run in scheduled_runs(get_engine(settings.database_url), limit=2000):
        latest.setdefault(run.schedule_id, {"status": run.status, "started_at": run.started_at,
                                            "duration_ms": run.duration_ms, "message_id": run.message_id})
    return [{**job, "latest_run": latest.get(str(job["id"]))} for job in jobs]


def recent_dead(settings: Settings, limit: int = 25) -> list[dict[str, Any]]:
    """The newest dead letters from the archive, oldest first (the dashboard polls: no queue scan)."""
    return archived_dead(get_engine(settings.database_url), limit)


@router.get("/overview", dependencies=[read], tags=["dashboard"], responses=answers(*READ))
def overview(request: Request) -> dict[str, Any]:
    """Everything the dashboard shows, in one request."""
    settings = _settings(request)
    data: dict[str, Any] = {"generated_at": utc_now().isoformat(), "errors": {}}

    def part(name: str, fn: Callable[[], object]) -> None:
        try:
            data[name] = fn()
        except HTTPException as exc:
            data[name], data["errors"][name] = [], str(exc.detail)
        except Exception as exc:  # noqa: BLE001 - one broken panel must not blank the dashboard
            data[name], data["errors"][name] = [], f"{type(exc).__name__}: {exc}"

    part("queues", lambda: queue_rows(settings))
    part("throughput", lambda: throughput(settings))
    part("jobs", lambda: with_latest_runs(settings, _call(control.list_jobs, settings)))
    part("runs", lambda: history(request, limit=25))
    part("dead", lambda: recent_dead(settings))
    try:
        data["scheduler"] = control.scheduler_status(settings)
    except Exception:  # noqa: BLE001 - the scheduler panel shows "n/a"
        data["scheduler"] = None
    return data
