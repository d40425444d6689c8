"""``broker-jobs queues``: queue statistics, repair, and the release step (``setup``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from broker_jobs.cli.common import complete_queues, dump, guarded, load_jobs, progress_bar, settings, table


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
@guarded
def queues(ctx: click.Context, as_json: bool) -> None:
    """Ready, unacked, delayed and dead messages and consumers per queue; `repair` fixes a queue's arguments."""
    if ctx.invoked_subcommand is not None:
        return
    from broker_jobs.queues import queue_stats  # deferred: SQLAlchemy/dramatiq/pika, only when the command runs

    load_jobs()
    rows = [s.asdict() for s in queue_stats(settings(), ages=True)]
    if as_json:
        dump(rows)
    else:
        click.echo(table(rows, ["queue", "ready", "unacked", "delayed", "dead", "consumers", "oldest_dead_age_s"]))


@queues.command("repair")
@click.argument("names", nargs=-1, metavar="[QUEUE]...", shell_complete=complete_queues)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@guarded
def queues_repair(names: tuple[str, ...], as_json: bool) -> None:
    """Re-create QUEUE (default: every degraded queue) with the right arguments, moving every message across."""
    from broker_jobs.repair import repair_queues  # deferred: SQLAlchemy/dramatiq/pika, only when the command runs

    load_jobs()
    with progress_bar("moving messages", quiet=as_json) as progress:
        done = repair_queues(settings(), list(names), progress)
    if as_json:
        dump([r.asdict() for r in done])
    elif not done:
        click.echo("no queue differs from the arguments broker_jobs declares")
    else:
        for result in done:
            click.echo(result.line())


@click.command("setup")
@guarded
def setup() -> None:
    """Declare the queues and create the database schema (the release step)."""
    from broker_jobs.broker import get_broker  # deferred: SQLAlchemy/dramatiq/pika, only when the command runs
    from broker_jobs.store.db import get_engine  # deferred: SQLAlchemy/dramatiq/pika, only when the command runs

    load_jobs()
    broker = get_broker()
    for queue in sorted(broker.get_declared_queues()):
        broker.declare_queue(queue, ensure=True)  # type: ignore[call-arg]
    get_engine(settings().database_url)
    click.echo(f"declared {len(broker.get_declared_queues())} queues; database schema ready")


@click.command("check-config")
@click.argument("path", required=False, type=click.Path(dir_okay=False))
@guarded
def check_config(path: str | None) -> None:
    """Validate the jobs file (default ``JOBS_CONFIG``) for every APP_ENV, not only the current one."""

    from broker_jobs.errors import ConfigError  # deferred: errors.py pulls dramatiq
    from broker_jobs.scheduling.config import ENVIRONMENTS, load_config  # deferred: pydantic, the triggers
    from broker_jobs.scheduling.triggers import describe  # deferred: the triggers, with the config

    load_jobs()
    s = settings()
    counts: list[str] = []
    limits: list[Any] = []
    current = None
    # A production-only mistake must show up on a development machine, before the deploy.
    for env in (e for e in ENVIRONMENTS if e != "default"):
        try:
            config = load_config(Path(path) if path else s.jobs_config, s.model_copy(update={"app_env": env}))
        except ConfigError as exc:
            raise ConfigError(f"APP_ENV={env}: {exc}") from None
        counts.append(f"{env} {len(config.jobs)}")
        limits = config.rate_limits if env == s.app_env else limits
        current = config if env == s.app_env else current
    click.echo(f"{config.source}: jobs OK ({', '.join(counts)})")
    for limit in limits:  # this APP_ENV's
        click.echo(f"rate limit: {limit.describe()} (shared through {'Redis' if s.redis_url else 'this host'})")
    # What each job became (for APP_ENV): a job written APScheduler's way shows its actor, cron and arguments.
    for job in (current or config).jobs:
        arguments = json.dumps({"args": list(job.args), "kwargs": job.kwargs} if job.args else job.kwargs,
                               default=str)
        state = "" if job.enabled else ", disabled"
        click.echo(f"  {job.id}: {job.actor}({arguments}) {job.kind} {describe(job.trigger)}"
                   + (f" [{job.trigger.expression}]" if job.kind == "cron" else "")  # type: ignore[union-attr]
                   + f", priority {job.priority.label}, queue {job.queue}{state}")
