"""``broker-jobs send``: enqueue one job by name."""

from __future__ import annotations

from typing import Any

import click

from broker_jobs import registry
from broker_jobs.cli.common import guarded, load_jobs, parse_json
from broker_jobs.priorities import parse_priority


@click.command()
@click.argument("actor")
@click.option("--args", "args_json", help="Positional arguments as a JSON array.")
@click.option("--kwargs", "kwargs_json", help="Keyword arguments as a JSON object.")
@click.option("--priority", help="high, medium, low (or 1, 2, 3); default: the job's.")
@click.option("--delay", type=click.FloatRange(min=0), help="Seconds before the job may start.")
@click.option("--module", "modules", multiple=True, help="Also import this module's jobs.")
@guarded
def send(actor: str, args_json: str | None, kwargs_json: str | None, priority: str | None,
         delay: float | None, modules: tuple[str, ...]) -> None:
    """Enqueue ACTOR and print the message id (the publish is confirmed)."""
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
