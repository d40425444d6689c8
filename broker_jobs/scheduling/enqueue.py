"""Publishing a job from APScheduler: :func:`enqueue` for an application's own scheduler, and the
publish both APScheduler paths share.

An application that already runs APScheduler hands :func:`enqueue` to ``add_job``::

    from broker_jobs.scheduling.enqueue import enqueue
    sched.add_job(enqueue, "cron", args=["etl_sync"], hour=2)

At each run APScheduler calls ``enqueue("etl_sync")``, which publishes the job with its priority
and the fire id ``etl_sync@<scheduled run time>``: the run time APScheduler scheduled (read from
its ``run_job`` frame, the only place APScheduler 3 keeps it), not the time the thread got to it.
Two schedulers (this one, ``broker-jobs scheduler`` of either engine, periodiq) publishing the same
name and slot make one fire id, and the workers' dedup runs it once.  Called outside APScheduler
it publishes a run-now (fire id ``name@manual:<now>``).

Messages go through the scheduler's publisher (:mod:`.publisher`: one confirmed AMQP transaction,
the properties and size limit of :mod:`broker_jobs.publishing`), one connection per thread
(pika's rule: a connection never crosses threads).
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import registry
from ..broker import get_broker
from ..clock import utc_now
from ..errors import BrokerUnavailableError, NotFoundError
from ..job import validate_arguments
from ..protocol import FireId
from ..settings import Settings, get_settings
from .aps_triggers import slot_of
from .config import JobDef, load_config
from .firing import declare_queues
from .publisher import Outgoing, Publisher

logger = logging.getLogger(__name__)

#: APScheduler 3's functions that call a job, with the scheduled time in their ``run_time`` local.
_RUNNERS = ("run_job", "run_coroutine_job")

_local = threading.local()
_declared: set[str] = set()
_declare_lock = threading.Lock()


def scheduled_run_time(depth: int = 8) -> datetime | None:
    """The run time APScheduler scheduled the current call for (aware UTC), or None outside APScheduler.

    APScheduler 3 passes it to nobody: its executors' ``run_job(job, ..., run_times, ...)`` loops
    ``for run_time in run_times`` and calls ``job.func(*job.args, **job.kwargs)``; the frame of that
    loop, a few frames up, holds it.
    """
    frame = sys._getframe(1)
    for _ in range(depth):
        frame = frame.f_back  # type: ignore[assignment]
        if frame is None:
            return None
        if frame.f_code.co_name in _RUNNERS and str(frame.f_globals.get("__name__", "")).startswith("apscheduler."):
            run_time = frame.f_locals.get("run_time")
            return run_time.astimezone(UTC) if isinstance(run_time, datetime) else None
    return None


def _publisher(settings: Settings) -> Publisher:
    publisher: Publisher | None = getattr(_local, "publisher", None)
    if publisher is None:
        publisher = _local.publisher = Publisher.for_settings(settings)
    return publisher


def publish(settings: Settings, batch: list[Outgoing],
            declare: Callable[[set[str]], None] | None = None) -> None:
    """Publish ``batch`` confirmed on this thread's connection; once more on a fresh one if that fails.

    Raises:
      BrokerUnavailableError: RabbitMQ did not take it twice in a row.
    """
    if not batch:
        return
    queues = {o.queue for o in batch} - _declared
    if queues:
        with _declare_lock:
            (declare or (lambda q: declare_queues(get_broker(), q)))(queues)
            _declared.update(queues)
    publisher = _publisher(settings)
    try:
        publisher.publish(batch, int(utc_now().timestamp() * 1000))
    except BrokerUnavailableError:
        for item in batch:  # an idle connection dropped by RabbitMQ: once more, new message ids
            item.renew()
        publisher.publish(batch, int(utc_now().timestamp() * 1000))


_file_cache: dict[tuple[str, float], dict[str, JobDef]] = {}


def _file_jobs(settings: Settings) -> dict[str, JobDef]:
    """The jobs file's jobs, read again when the file changes."""
    path = Path(settings.jobs_config)
    try:
        key = (str(path), path.stat().st_mtime)
    except OSError:
        return {}
    if key not in _file_cache:
        _file_cache.clear()
        _file_cache[key] = {job.id: job for job in load_config(path, settings).jobs}
    return _file_cache[key]


def outgoing(name: str, args: tuple[Any, ...], kwargs: dict[str, Any], run_time: datetime | None,
             settings: Settings) -> Outgoing:
    """The message :func:`enqueue` publishes for ``name`` (an actor, else a job of the jobs file).

    Raises:
      NotFoundError: ``name`` is neither.
      ArgumentsInvalid: the arguments do not fit the actor.
    """
    registry.load_jobs()
    job_id, slot = name, run_time
    if registry.has(name):
        spec = registry.get(name)
        actor, queue, priority = name, spec.queue, spec.priority
        model = spec.args_model if spec.fn is not None else None
        if spec.fn is not None and model is not None:
            validate_arguments(spec.fn, model, args, kwargs)
    else:
        job = _file_jobs(settings).get(name)
        if job is None:
            raise NotFoundError(f"enqueue: {name!r} is neither a job nor a job id of {settings.jobs_config}")
        actor, queue, priority = job.actor, job.queue, job.priority
        args, kwargs = (args or job.args), (kwargs or job.kwargs)
        slot = slot_of(job.trigger, run_time) if run_time is not None else None
    fire = FireId.make(job_id, slot) if slot is not None else FireId.manual(job_id, utc_now())
    return Outgoing(job_id=job_id, actor=actor, queue=queue, args=tuple(args), kwargs=dict(kwargs),
                    priority=priority, fire_id=str(fire), slot=slot)


def enqueue(name: str, *args: Any, **kwargs: Any) -> str:
    """Publish ``name`` for the run APScheduler is making now; returns the message id.

    Parameters:
      name: An actor (``etl_sync``: its queue and priority) or a job id of the jobs file (its actor,
        arguments, queue and priority, and the fire ids of ``broker-jobs scheduler``).
      args: Positional arguments of the job (checked against its signature).
      kwargs: Keyword arguments of the job.

    Raises:
      NotFoundError: ``name`` is neither an actor nor a job id.
      ArgumentsInvalid: the arguments do not fit the job.
      BrokerUnavailableError: RabbitMQ did not confirm the message.
    """
    settings = get_settings()
    out = outgoing(name, tuple(args), dict(kwargs), scheduled_run_time(), settings)
    publish(settings, [out])
    logger.info("[apscheduler] job %s published %s (priority %s, message %s)", name, out.fire_id,
                out.priority.label, out.message_id)
    return out.message_id
