"""Alembic migrations of every table on :data:`broker_jobs.store.models.Base`.

:func:`upgrade` runs on the first :func:`~broker_jobs.store.db.get_engine` of a
process (and ``broker-jobs migrate``): it upgrades the database to the head
revision, then creates any table a later-imported module declared (a user's
entity table, say) that no revision knows yet.

The first revision creates every table the package declares, whichever
module declares it (:func:`import_models` imports each module of the package
that has a ``__tablename__``).  A later schema change gets its own revision:
``alembic -c broker_jobs/store/migrations/alembic.ini revision -m "..."``.
"""

from __future__ import annotations

import importlib
import logging
import time
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
PACKAGE = HERE.parent.parent

#: Serialises concurrent first starts on PostgreSQL (any constant shared by all processes).
_ADVISORY_LOCK = 0x62726F6B  # "brok"


_imported: list[str] = []


def import_models() -> list[str]:
    """Import every module of the package that declares a table; returns their names (once per process)."""
    if _imported:
        return list(_imported)
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = relative.parts
        if "migrations" in parts or "actors" in parts or path.name == "__main__.py":
            continue
        try:
            if "__tablename__" not in path.read_text(encoding="utf-8"):
                continue
        except OSError:
            continue
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        try:
            importlib.import_module(name)
        except ImportError as exc:  # a half-written module of another component must not block startup
            logger.warning("[migrations] cannot import %s: %s", name, exc)
            continue
        names.append(name)
    _imported[:] = names
    return names


def config(connection: object | None = None) -> object:
    """An Alembic ``Config`` for our scripts, bound to ``connection`` when given."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.attributes["connection"] = connection
    return cfg


def _upgrade_once(engine: Engine) -> None:
    from alembic import command

    from ..models import Base

    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK})
        command.upgrade(config(conn), "head")  # type: ignore[arg-type]
        Base.metadata.create_all(conn)


def upgrade(engine: Engine, attempts: int = 3) -> None:
    """Bring the database to the head revision, then create tables no revision knows yet."""
    alembic_log = logging.getLogger("alembic")
    if alembic_log.level == logging.NOTSET:  # its INFO lines would repeat in every process start
        alembic_log.setLevel(logging.WARNING)
    import_models()
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
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
