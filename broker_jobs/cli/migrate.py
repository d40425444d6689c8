"""``broker-jobs migrate``: upgrade the database to the latest schema revision."""

from __future__ import annotations

import click

from broker_jobs.cli.common import dump, guarded, settings


@click.command("migrate")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@guarded
def migrate(as_json: bool) -> None:
    """Upgrade the database to the latest schema revision (Alembic head)."""
    from broker_jobs.store.db import get_engine  # deferred: SQLAlchemy, only when the command runs
    from broker_jobs.store.migrations import current, upgrade  # deferred: Alembic and SQLAlchemy, same

    engine = get_engine(settings().database_url)
    upgrade(engine)
    revision = current(engine)
    if as_json:
        dump({"revision": revision, "database": engine.dialect.name})
    else:
        click.echo(f"database ({engine.dialect.name}) at revision {revision}")
