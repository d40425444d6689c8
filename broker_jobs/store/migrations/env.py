"""Alembic environment: the connection comes from :func:`broker_jobs.store.migrations.upgrade`
(or ``DATABASE_URL`` when run by the ``alembic`` command).

The revisions carry their own DDL, so running them needs no model.  Autogenerate
needs the target metadata: its caller puts it in ``config.attributes["target_metadata"]``
(the models of every table, which only the caller knows how to assemble).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from broker_jobs.settings import get_settings

target_metadata = context.config.attributes.get("target_metadata")


def run() -> None:
    """Run the migrations online, on the given connection or one to ``DATABASE_URL``."""
    connection = context.config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        context.run_migrations()
        return

    engine = create_engine(get_settings().database_url)
    with engine.begin() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        context.run_migrations()


run()
