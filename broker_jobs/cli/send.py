"""``broker-jobs send``: enqueue one job by name, and with ``--wait`` follow it to its end."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from broker_jobs import registry
from broker_jobs.cli.common import complete_actors, guarded, load_jobs, parse_json, settings
from broker_jobs.priorities import parse_priority

#: Seconds between two reads of the history while ``--wait`` follows a job.
WAIT_POLL = 0.2
#: Run statuses that end a run (``retrying`` and ``running`` go on).
_SUCCEEDED, _FAILED = ("succeeded", "skipped"), ("failed", "dead")


@click.command()
@click.argument("actor", shell_complete=complete_actors)
@click.option("--args", "args_json", help="Positional arguments as a JSON array.")
@click.option("--kwargs", "kwargs_json", help="Keyword arguments as a JSON object.")
@click.option("--priority", help="high, medium, low (or 1, 2, 3); default: the job's.")
@click.option("--delay", type=click.FloatRange(min=0), help="Seconds before the job may start.")
@click.option("--module", "modules", multiple=True, help="Also import this module's jobs.")
@click.option("--wait", is_flag=True, help="Follow the job to its end: exit 0 if it succeeded, 6 if it failed.")
@click.option("--timeout", type=click.FloatRange(min=0), default=600.0, show_default=True,
              help="With --wait: seconds to wait before giving up (exit 7; the job may still run).")
@guarded
def send(actor: str, args_json: str | None, kwargs_json: str | None, priority: str | None,
         delay: float | None, modules: tuple[str, ...], wait: bool, timeout: float) -> None:
    """Enqueue ACTOR and print the message id (the publish is confirmed).

    With --wait, then print how the run ended (its status, duration and report) once a worker has
    recorded it in the history, retries included.
    """
    from broker_jobs.errors import ConfigError  # deferred: errors.py pulls dramatiq

    args = parse_json("--args", args_json, list)
    kwargs = parse_json("--kwargs", kwargs_json, dict)
    options: dict[str, Any] = {}
    if priority is not None:
        try:
            options["priority"] = parse_priority(priority).label
        except ValueError as exc:
            raise ConfigError(f"--priority: {exc}") from None
    load_jobs(modules)
    spec = registry.get(actor)
    if delay:
        options["delay"] = int(delay * 1000)
    message = spec.actor.send_with_options(args=tuple(args), kwargs=kwargs, **options)
    click.echo(message.message_id)
    if wait:
        _follow(message.message_id, actor, timeout + (delay or 0))


def _follow(message_id: str, actor: str, timeout: float) -> None:
    """Wait for the run of ``message_id`` to end in the history; print it; raise if it did not succeed."""
    from broker_jobs.errors import JobFailedError, WaitTimeout  # deferred: errors.py pulls dramatiq
    from broker_jobs.store.db import get_engine  # deferred: SQLAlchemy, only with --wait
    from broker_jobs.store.queries import run_of  # deferred: SQLAlchemy, only with --wait

    engine = get_engine(settings().database_url)
    deadline = time.monotonic() + timeout
    while True:
        run = run_of(engine, message_id)
        if run is not None and run.status in _SUCCEEDED + _FAILED:
            break
        if time.monotonic() >= deadline:
            seen = f"last seen {run.status} (attempt {run.attempt})" if run is not None else "not started yet"
            raise WaitTimeout(f"send --wait: job {actor} message {message_id} did not finish within "
                              f"--timeout {timeout:g} s ({seen})")
        time.sleep(WAIT_POLL)
    took = f" in {run.duration_ms:.0f} ms" if run.duration_ms is not None else ""
    if run.status in _FAILED:
        raise JobFailedError(f"job {actor} message {message_id} {run.status} after {run.attempt} attempt(s): "
                             f"{run.error or 'no error recorded'}")
    report = f" {json.dumps(run.report, default=str, sort_keys=True)}" if run.report else ""
    click.echo(f"{run.status}{took}{report}" if run.status == "succeeded" else f"skipped: {run.error or ''}")
