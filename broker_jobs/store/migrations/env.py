"""Alembic environment: the connection comes from :func:`broker_jobs.store.migrations.upgrade`
(or ``DATABASE_URL`` when run by the ``alembic`` command)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from broker_jobs.store.migrations import import_models
from broker_jobs.store.models import Base

import_models()
target_metadata = Base.metadata


def run() -> None:
    """Run the migrations online, on the given connection or one to ``DATABASE_URL``."""
    connection = context.config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        context.run_migrations()
        return
    from broker_jobs.settings import get_settings

    engine = create_engine(get_settings().database_url)
    with engine.begin() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        context.run_migrations()


run()
