"""ETL of one entity: changed rows -> text -> embeddings -> upserts, then the watermark.

Rows are read in ``(updated_at, id)`` order after the stored watermark, one
batch at a time.  Each run starts ``ETL_OVERLAP`` seconds before the watermark:
a row whose transaction committed after a later one (its ``updated_at`` is
older than rows already embedded) or written on a host whose clock lags is
still picked up; rows seen before cost a lookup and count as ``skipped``.

Each batch's vectors are written before the watermark moves past it, in its
own transaction: a crash repeats at most the batch in flight,
and repeating it changes nothing (deterministic point ids, and a point whose
text and embedder are unchanged is skipped without re-embedding).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, and_, or_, select
from sqlalchemy.orm import Session

from broker_jobs.app.entities.registry import Entity, render_text
from broker_jobs.app.entities.report import Report, message_tag
from broker_jobs.app.entities.tables import table_of
from broker_jobs.app.tables import Watermark
from broker_jobs.app.vectors.embedders import Embedder
from broker_jobs.app.vectors.ids import point_id
from broker_jobs.clock import utc_now

if TYPE_CHECKING:
    from qdrant_client import models

    from broker_jobs.app.vectors.store import VectorStore

logger = logging.getLogger(__name__)

#: Called after each committed batch with the batch number (tests crash here on purpose).
BatchHook = Callable[[int], None]


def _json_safe(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    return str(value)


def text_hash(text: str, embedder: Embedder) -> str:
    """What a vector was computed from: the text and the exact embedder."""
    return hashlib.sha256(f"{embedder.name}\0{embedder.version}\0{text}".encode()).hexdigest()


def build_point(entity: Entity, row: dict[str, Any], text: str, vector: list[float],
                embedder: Embedder) -> models.PointStruct:
    """The point of ``row``: its vector and a payload with the row id, fields and embedder."""
    from qdrant_client import models  # deferred: numpy and qdrant-client, only when this runs

    payload = {name: _json_safe(row.get(name)) for name in entity.payload}
    payload.update(kind=entity.kind, row_id=_json_safe(row[entity.id_column]), text=text[:1000],
                   text_hash=text_hash(text, embedder), embedder=embedder.name,
                   embedder_version=embedder.version)
    return models.PointStruct(id=point_id(entity.kind, row[entity.id_column]), vector=vector, payload=payload)


def embed_rows(store: VectorStore, collection: str, entity: Entity, rows: Sequence[dict[str, Any]],
               embedder: Embedder, report: Report, force: bool = False) -> None:
    """Upsert the live ``rows`` and delete the vectors of the deleted ones."""
    deleted_col = entity.deleted_column
    live = [r for r in rows if not (deleted_col and r.get(deleted_col))]
    gone = [r for r in rows if deleted_col and r.get(deleted_col)]
    ids = [point_id(entity.kind, r[entity.id_column]) for r in rows]
    with report.timed("lookup"):
        existing = store.retrieve(collection, ids)
    todo: list[tuple[dict[str, Any], str]] = []
    for row in live:
        text = render_text(entity, row)
        old = existing.get(point_id(entity.kind, row[entity.id_column]))
        if not force and old is not None and old.get("text_hash") == text_hash(text, embedder):
            report.skipped += 1
        else:
            todo.append((row, text))
    if todo:
        with report.timed("embed"):
            vectors = embedder.embed([text for _, text in todo])
        points = [build_point(entity, row, text, vec, embedder)
                  for (row, text), vec in zip(todo, vectors, strict=True)]
        with report.timed("upsert"):
            store.upsert(collection, points)
        for point in points:
            if str(point.id) in existing:
                report.updated += 1
            else:
                report.inserted += 1
    doomed = [pid for pid in (point_id(entity.kind, r[entity.id_column]) for r in gone) if pid in existing]
    report.skipped += len(gone) - len(doomed)
    if doomed:
        with report.timed("delete"):
            store.delete(collection, doomed)
        report.deleted += len(doomed)


def _typed(column: Any, value: str | None) -> Any:
    if value is None:
        return None
    try:
        return column.type.python_type(value)
    except (NotImplementedError, ValueError, TypeError):
        return value


def sync_entity(engine: Engine, store: VectorStore, entity: Entity, embedder: Embedder, *,
                batch_size: int, on_batch: BatchHook | None = None, overlap: float = 0.0) -> Report:
    """Bring ``entity``'s collection up to date with its table, batch by batch.

    Parameters:
      overlap: Seconds before the watermark to read again (late commits, clock skew).
    """
    report = Report()
    table = table_of(engine, entity)
    id_col, updated_col = table.c[entity.id_column], table.c[entity.updated_column]
    collection = store.ensure(entity.kind, embedder.dim)
    store.check_embedder(entity.kind, embedder.name, embedder.version)
    with Session(engine) as session:
        mark = session.get(Watermark, entity.kind)
        after_ts = mark.updated_at if mark else None
        after_id = _typed(id_col, mark.last_id) if mark else None
    if overlap and after_ts is not None:
        after_ts, after_id = after_ts - timedelta(seconds=overlap), None
    batch_no = 0
    while True:
        query = select(table).order_by(updated_col, id_col).limit(batch_size)
        if after_ts is not None and after_id is None:  # moved back by a rebuild: the instant itself too
            query = query.where(updated_col >= after_ts)
        elif after_ts is not None:
            query = query.where(or_(updated_col > after_ts, and_(updated_col == after_ts, id_col > after_id)))
        with report.timed("read"), engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
        if not rows:
            break
        report.fetched += len(rows)
        embed_rows(store, collection, entity, rows, embedder, report)
        last = rows[-1]
        after_ts, after_id = last[entity.updated_column], last[entity.id_column]
        with report.timed("watermark"), Session(engine) as session, session.begin():
            mark = session.get(Watermark, entity.kind) or Watermark(entity=entity.kind)
            mark.updated_at, mark.last_id, mark.changed_at = after_ts, str(after_id), utc_now()
            session.add(mark)
        batch_no += 1
        if on_batch is not None:
            on_batch(batch_no)
        if len(rows) < batch_size:
            break
    logger.info("[etl] %s: %s%s", entity.kind, report.counts(), message_tag())
    return report
