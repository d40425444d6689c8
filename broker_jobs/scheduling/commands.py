"""``broker-jobs scheduler`` and ``broker-jobs jobs ...`` (imports nothing heavy at module level)."""

from __future__ import annotations

import json
import logging
import signal
import threading
from datetime import datetime
from typing import Any

import click

from ..cli.common import dump, guarded, load_jobs, parse_json, settings, table
from ..logging import configure_logging


def _when(option: str, text: str | None) -> datetime | None:
    from ..errors import ConfigError  # deferred: errors.py pulls dramatiq; --help stays light

    if text is None:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{option}: not an ISO date and time: {text!r}") from None


def _every(text: str) -> float:
    from ..errors import ConfigError  # deferred: errors.py pulls dramatiq; --help stays light

    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        if text and text[-1] in units:
            return float(text[:-1]) * units[text[-1]]
        return float(text)
    except ValueError:
        raise ConfigError(f"--every: not a duration: {text!r} (use 30, 30s, 5m, 2h, 1d)") from None


@click.command("scheduler")
@guarded
def scheduler() -> None:
    """Run a scheduler instance (run any number: one leader fires each slot)."""
    # deferred (each below): the scheduler's machinery pulls dramatiq, SQLAlchemy and Redis; --help stays light
    from ..broker import get_broker  # deferred: dramatiq and pika
    from ..store.scheduler_state import open_scheduler_store  # deferred: SQLAlchemy
    from .control import declare_queues  # deferred: SQLAlchemy
    from .lease import build_lease  # deferred: redis
    from .publisher import Publisher  # deferred: dramatiq and pika
    from .scheduler import Scheduler  # deferred: dramatiq, SQLAlchemy, redis

    s = settings()
    configure_logging(s.log_level, s.log_format)
    load_jobs()
    from .. import probes  # deferred: prometheus_client and the probes' server
    from ..metrics.env import configure  # deferred: prometheus_client
    from ..metrics.exporter import start_exporter  # deferred: prometheus_client

    # Serves now, or takes the port over when this host's worker exporter stops.
    start_exporter(s.metrics_host, s.metrics_port, role="scheduler")
    store = open_scheduler_store(s.database_url)

    def declare(queues: set[str]) -> None:
        declare_queues(get_broker(), queues)

    instance = Scheduler(s, store=store, lease=build_lease(s, store.engine),
                         publisher=Publisher(s.amqp_urls, s.publish_timeout, s.max_message_bytes, s.queue_type),
                         declare_queues=declare)
    instance.load()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    logging.getLogger(__name__).info(
        "[scheduler] instance %s started: %d jobs from %s, lease in %s", instance.instance_id,
        len(instance.jobs), instance.config_path, "Redis" if s.redis_url else "the database")
    beat = probes.Beat(configure(), "scheduler", instance.health).start()
    try:
        instance.run(stop)
    finally:
        beat.stop()  # the exporter's threads end with the process, which frees the port at once


@click.group("jobs")
def jobs() -> None:
    """Scheduled jobs: list, show, preview, pause, resume, run-now, backfill, add, remove, status."""


def _control() -> Any:
    from . import (
        control,  # deferred: the scheduler's machinery (dramatiq, SQLAlchemy, Redis), only when the command runs
    )

    load_jobs()
    return control


@jobs.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@guarded
def jobs_list(as_json: bool) -> None:
    """Every job with its trigger, priority, state, next and last run."""
    rows = _control().list_jobs(settings())
    if as_json:
        dump(rows)
        return
    for row in rows:
        row["state"] = "paused" if row["paused"] else ("enabled" if row["enabled"] else "disabled")
    click.echo(table(rows, ["id", "actor", "trigger", "priority", "state", "next_run", "last_run", "last_outcome"]))


@jobs.command("show")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@guarded
def jobs_show(job_id: str, as_json: bool) -> None:
    """One job in full and its recent slot outcomes."""
    row = _control().show_job(settings(), job_id)
    if as_json:
        dump(row)
        return
    audit = row.pop("audit")
    flights = row.pop("in_flight")
    for key, value in row.items():
        click.echo(f"{key + ':':15} {json.dumps(value, default=str) if isinstance(value, (dict, list)) else value}")
    click.echo(f"{'in flight:':15} " + (", ".join(f"{f['fire_id']} ({f['state']})" for f in flights) or "none"))
    click.echo("\nrecent slots:")
    click.echo(table(audit, ["slot", "outcome", "fire_id", "lag_ms", "detail"]))


@jobs.command("preview")
@click.argument("job_id")
@click.option("--count", type=click.IntRange(1, 1000), default=10, show_default=True)
@click.option("--from", "start", help="Start after this ISO time (default now; naive = the job's zone).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@guarded
def jobs_preview(job_id: str, count: int, start: str | None, as_json: bool) -> None:
    """The next fire times, DST-aware, in the job's time zone."""
    times = _control().preview(settings(), job_id, count, _when("--from", start))
    if as_json:
        dump([t.isoformat() for t in times])
    else:
        click.echo("\n".join(t.isoformat() for t in times) or "no more slots")


@jobs.command("pause")
@click.argument("job_id")
@click.option("--note", help="Why (shown in jobs list and show).")
@guarded
def jobs_pause(job_id: str, note: str | None) -> None:
    """Pause a job on every scheduler instance."""
    _control().pause(settings(), job_id, note)
    click.echo(f"paused {job_id}" + (f": {note}" if note else ""))


@jobs.command("resume")
@click.argument("job_id")
@guarded
def jobs_resume(job_id: str) -> None:
    """Resume a paused job from its next slot."""
    _control().resume(settings(), job_id)
    click.echo(f"resumed {job_id}")


@jobs.command("run-now")
@click.argument("job_id")
@click.option("--force", is_flag=True, help="Ignore the overlap policy.")
@guarded
def jobs_run_now(job_id: str, force: bool) -> None:
    """Publish one run now (respects the overlap policy unless --force)."""
    result = _control().run_now(settings(), job_id, force)
    if "skipped" in result:
        click.echo(f"not run: {result['skipped']} (use --force to run anyway)")
    else:
        click.echo(result["message_id"])


@jobs.command("backfill")
@click.argument("job_id")
@click.option("--from", "start", required=True, help="First instant (ISO; naive = the job's zone).")
@click.option("--to", "end", required=True, help="Last instant, inclusive.")
@click.option("--force", is_flag=True, help="Ignore the overlap policy.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@guarded
def jobs_backfill(job_id: str, start: str, end: str, force: bool, as_json: bool) -> None:
    """Publish every slot in a range, through the overlap policy."""
    result = _control().backfill(settings(), job_id, _when("--from", start), _when("--to", end), force)
    if as_json:
        dump(result)
    else:
        click.echo(f"{result['slots']} slot(s): {result['published']} published, "
                   f"{result['skipped_overlap']} skipped by the overlap policy")


@jobs.command("add")
@click.argument("job_id")
@click.argument("actor")
@click.option("--cron", help="Cron expression.")
@click.option("--every", help="Interval: 30, 30s, 5m, 2h, 1d.")
@click.option("--at", "at", help="One run at this ISO time.")
@click.option("--args", "args_json", help="Positional arguments as a JSON array.")
@click.option("--kwargs", "kwargs_json", help="Keyword arguments as a JSON object.")
@click.option("--set", "extra", multiple=True, help="Any other field, KEY=JSON (priority, queue, overlap, ...).")
@guarded
def jobs_add(job_id: str, actor: str, cron: str | None, every: str | None, at: str | None,
             args_json: str | None, kwargs_json: str | None, extra: tuple[str, ...]) -> None:
    """Add a runtime job (stored in the database, shared by every scheduler)."""
    from ..errors import ConfigError  # deferred: errors.py pulls dramatiq; --help stays light

    spec: dict[str, Any] = {"id": job_id, "actor": actor}
    if cron is not None:
        spec["cron"] = cron
    if every is not None:
        spec["interval"] = {"seconds": _every(every)}
    if at is not None:
        spec["date"] = at
    if args_json is not None:
        spec["args"] = parse_json("--args", args_json, list)
    if kwargs_json is not None:
        spec["kwargs"] = parse_json("--kwargs", kwargs_json, dict)
    for item in extra:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r}: use KEY=VALUE")
        try:
            spec[key] = json.loads(value)
        except json.JSONDecodeError:
            spec[key] = value
    row = _control().add_runtime_job(settings(), spec)
    click.echo(f"added {row['id']}: {row['trigger']}, next run {row['next_run']}")


@jobs.command("remove")
@click.argument("job_id")
@guarded
def jobs_remove(job_id: str) -> None:
    """Remove a runtime job."""
    _control().remove_runtime_job(settings(), job_id)
    click.echo(f"removed {job_id}")


@jobs.command("status")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@guarded
def jobs_status(as_json: bool) -> None:
    """The scheduler leader, its fencing token and the instances' heartbeats."""
    from . import (
        control,  # deferred: the scheduler's machinery (dramatiq, SQLAlchemy, Redis), only when the command runs
    )

    status = control.scheduler_status(settings())
    if as_json:
        dump(status)
        return
    click.echo(f"leader: {status['leader'] or 'none'} (fencing token {status['fencing_token']}, "
               f"lease expires in {status['lease_expires_in']} s)")
    click.echo(table(status["instances"], ["instance_id", "leader", "heartbeat_at", "alive", "errors",
                                           "last_error"]))


COMMANDS = [scheduler, jobs]
