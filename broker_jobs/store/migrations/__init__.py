"""Alembic migrations: the only way the schema is created or changed.

:func:`upgrade` runs on the first :func:`~broker_jobs.store.db.get_engine` of a
process (and ``broker-jobs migrate``): it upgrades the database to the head
revision.  Each revision carries its own DDL and imports no model, so the
revisions are the schema's history and the models are its description;
``tests/framework/integration/test_schema.py`` compares the two with Alembic's autogenerate
comparison on SQLite and PostgreSQL.  A schema change gets its own revision:
``alembic -c broker_jobs/store/migrations/alembic.ini revision -m "..."``, its
operations written out (or drafted with :func:`differences`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, MetaData, inspect, text
from sqlalchemy.exc import DBAPIError

if TYPE_CHECKING:  # Alembic is loaded when a migration runs, not on import
    from alembic.config import Config

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent

#: The newest revision in ``versions/`` (a test checks it against Alembic's own head): a database already there
#: is recognised with one ``SELECT``, without importing Alembic (a quarter of a second for every CLI call).
HEAD = "0004_concept_merges"

#: Serialises concurrent first starts on PostgreSQL (any constant shared by all processes).
_ADVISORY_LOCK = 0x62726F6B  # "brok"


def config(connection: object | None = None) -> Config:
    """An Alembic ``Config`` for our scripts, bound to ``connection`` when given."""
    from alembic.config import Config  # deferred: Alembic and Mako, at the first engine only

    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.attributes["connection"] = connection
    return cfg


def _upgrade_once(engine: Engine) -> None:
    from alembic import command  # deferred: Alembic and Mako, at the first engine only

    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK})
        command.upgrade(config(conn), "head")


def at_head(engine: Engine) -> bool:
    """Whether the database is already at :data:`HEAD` (read from ``alembic_version``, Alembic not imported)."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return False
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == HEAD


def upgrade(engine: Engine, attempts: int = 3) -> None:
    """Bring the database to the head revision (a database already there costs one query)."""
    if at_head(engine):
        return
    alembic_log = logging.getLogger("alembic")
    if alembic_log.level == logging.NOTSET:  # its INFO lines would repeat in every process start
        alembic_log.setLevel(logging.WARNING)
    for attempt in range(1, attempts + 1):
        try:
            _upgrade_once(engine)
            return
        except DBAPIError as exc:
            # Two processes creating a fresh SQLite schema at once: the loser retries and finds it done.
            if attempt == attempts:
                raise
            logger.info("[migrations] upgrade raced another process (%s), retrying", str(exc).splitlines()[0])
            time.sleep(0.2 * attempt)


def current(engine: Engine) -> str | None:
    """The revision the database is at (None before the first upgrade)."""
    from alembic.runtime.migration import MigrationContext  # deferred: Alembic and Mako, at the first engine only

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def differences(engine: Engine, metadata: MetaData) -> list[Any]:
    """What Alembic's autogenerate finds between the database and ``metadata`` (empty: they agree).

    The caller assembles ``metadata`` (:data:`broker_jobs.store.models.metadata`, which the application's
    tables join); a non-empty answer is the draft of the revision that would reconcile them.
    """
    from alembic.autogenerate import compare_metadata  # deferred: Alembic and Mako, at the first engine only
    from alembic.runtime.migration import MigrationContext  # deferred: Alembic and Mako, at the first engine only

    with engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn), metadata))
