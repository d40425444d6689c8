"""``broker-jobs history``: recent executions."""

from __future__ import annotations

import click

from broker_jobs.cli.common import complete_actors, dump, guarded, settings, table


@click.command()
@click.option("--actor", help="Only this actor's runs.", shell_complete=complete_actors)
@click.option("--status", type=click.Choice(["running", "succeeded", "failed", "retrying", "dead", "skipped"]))
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@guarded
def history(actor: str | None, status: str | None, limit: int, as_json: bool) -> None:
    """Recent executions, newest first."""
    from broker_jobs.store.db import get_engine  # deferred: SQLAlchemy/dramatiq/pika, only when the command runs
    from broker_jobs.store.queries import query_runs  # deferred: SQLAlchemy, only when the command runs

    runs = query_runs(get_engine(settings().database_url), actor=actor, status=status, limit=limit)
    rows = [{name: value for name, value in run._mapping.items() if name != "seq"} for run in runs]
    if as_json:
        dump(rows)
    else:
        click.echo(table(rows, ["message_id", "actor", "fire_id", "priority", "status", "attempt",
                                "started_at", "duration_ms", "error"]))
