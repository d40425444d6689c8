"""Batch reprocessing: re-embed an entity into a fresh collection, then switch its alias.

The new collection is ``KIND__g<N+1>``; until the alias moves, search keeps
using ``KIND__gN`` whole.  A crashed rebuild resumes into the same new
collection (point ids are deterministic and finished points are skipped).
Rows changed while the rebuild ran are caught by the next ``etl_sync``: the
watermark is moved back to the rebuild's start.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from broker_jobs.app.entities.pipeline import embed_rows
from broker_jobs.app.entities.registry import Entity
from broker_jobs.app.entities.report import Report
from broker_jobs.app.entities.tables import table_of
from broker_jobs.app.tables import Watermark
from broker_jobs.app.vectors.embedders import Embedder
from broker_jobs.app.vectors.store import VectorStore
from broker_jobs.clock import utc_now

logger = logging.getLogger(__name__)


def rebuild(engine: Engine, store: VectorStore, entity: Entity, embedder: Embedder, batch_size: int) -> Report:
    """Fill ``KIND__g<N+1>`` from every live row, move the alias, drop the old collection."""
    report = Report()
    started = utc_now()
    table = table_of(engine, entity)
    id_col = table.c[entity.id_column]
    generation = store.generation(entity.kind) + 1
    target = store.create(entity.kind, generation, embedder.dim)
    last: Any = None
    while True:
        query = select(table).order_by(id_col).limit(batch_size)
        if entity.deleted_column:
            query = query.where(table.c[entity.deleted_column].is_(False))
        if last is not None:
            query = query.where(id_col > last)
        with report.timed("read"), engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
        if not rows:
            break
        report.fetched += len(rows)
        embed_rows(store, target, entity, rows, embedder, report)
        last = rows[-1][entity.id_column]
    old = store.switch(entity.kind, target)
    if old and old != target:
        store.client.delete_collection(old)
    with Session(engine) as session, session.begin():
        mark = session.get(Watermark, entity.kind)
        if mark is not None:
            # Rows changed during the rebuild may have reached only the old collection.
            floor = started - timedelta(seconds=1)
            current = mark.updated_at
            if current is not None and current.tzinfo is None:
                floor = floor.replace(tzinfo=None)
            if current is None or current > floor:
                mark.updated_at, mark.last_id = floor, None
            mark.generation, mark.changed_at = generation, utc_now()
    report.extra.update(collection=target, replaced=old)
    logger.info("[rebuild] %s: %s now serves %d points (was %s)", entity.kind, target, report.fetched, old)
    return report
