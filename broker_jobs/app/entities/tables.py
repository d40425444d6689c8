"""Resolve an entity's table: ours from the shared metadata, a user's by reflection."""

from __future__ import annotations

import threading

from sqlalchemy import Engine, MetaData, Table
from sqlalchemy.exc import NoSuchTableError

from broker_jobs.app.entities.registry import Entity
from broker_jobs.app.tables import Base
from broker_jobs.errors import ConfigError

_reflected: dict[tuple[str, str], Table] = {}
_lock = threading.Lock()


def table_of(engine: Engine, entity: Entity) -> Table:
    """The :class:`Table` behind ``entity``, checked for the columns it names.

    Raises:
      ConfigError: when the table or one of the named columns does not exist.
    """
    table = Base.metadata.tables.get(entity.table)
    if table is None:
        key = (str(engine.url), entity.table)
        with _lock:
            table = _reflected.get(key)
            if table is None:
                try:
                    table = Table(entity.table, MetaData(), autoload_with=engine)
                except NoSuchTableError:
                    raise ConfigError(f"entity {entity.kind!r}: table {entity.table!r} does not exist") from None
                _reflected[key] = table
    needed = {entity.id_column, entity.updated_column, *entity.payload, *entity.template_fields()}
    if entity.deleted_column:
        needed.add(entity.deleted_column)
    missing = sorted(needed - set(table.c.keys()))
    if missing:
        raise ConfigError(f"entity {entity.kind!r}: table {entity.table!r} has no column {', '.join(missing)}")
    return table
