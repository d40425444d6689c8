"""Concept hygiene: near-duplicate vectors become merge proposals; orphan vectors go.

Duplicates are found by brute force (cosine of every pair, in blocks of a few
hundred rows with numpy): exact, and fast enough for the tens of thousands of
notes a vault holds.  Proposals are keyed by ``(kind, source, duplicate)`` so
running twice records each pair once.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from broker_jobs.app.entities.registry import Entity
from broker_jobs.app.entities.report import Report
from broker_jobs.app.entities.tables import table_of
from broker_jobs.app.tables import MergeProposal
from broker_jobs.app.vectors.store import VectorStore

logger = logging.getLogger(__name__)


def similar_pairs(ids: list[str], vectors: np.ndarray, threshold: float,
                  block: int = 512) -> list[tuple[str, str, float]]:
    """Pairs ``(a, b, cosine)`` with ``a < b`` and cosine at least ``threshold``."""
    if len(ids) < 2:
        return []
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.where(norms == 0, 1, norms)
    pairs = []
    for start in range(0, len(ids), block):
        sims = unit[start:start + block] @ unit.T
        rows, cols = np.nonzero(sims >= threshold)
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
            i = start + r
            if c > i:
                a, b = sorted((ids[i], ids[c]))
                pairs.append((a, b, round(float(sims[r, c]), 4)))
    return pairs


def _existing_ids(engine: Engine, entity: Entity, row_ids: list[Any]) -> set[str]:
    table = table_of(engine, entity)
    id_col = table.c[entity.id_column]
    found: set[str] = set()
    typed = [_cast(id_col, v) for v in row_ids]
    with engine.connect() as conn:
        for start in range(0, len(typed), 500):
            query = select(id_col).where(id_col.in_(typed[start:start + 500]))
            if entity.deleted_column:
                query = query.where(table.c[entity.deleted_column].is_(False))
            found.update(str(v) for v in conn.scalars(query))
    return found


def _cast(column: Any, value: Any) -> Any:
    try:
        return column.type.python_type(value)
    except (NotImplementedError, ValueError, TypeError):
        return value


def clean_kind(engine: Engine, store: VectorStore, entity: Entity, threshold: float) -> Report:
    """Drop ``entity``'s orphan vectors, then record its near-duplicate pairs."""
    report = Report()
    if store.physical(entity.kind) is None:
        return report
    with report.timed("scan"):
        records = list(store.scan(entity.kind, with_vectors=True))
    report.fetched = len(records)
    with report.timed("orphans"):
        alive = _existing_ids(engine, entity, [r.payload.get("row_id") for r in records if r.payload])
        orphans = [str(r.id) for r in records if str((r.payload or {}).get("row_id")) not in alive]
        store.delete(entity.kind, orphans)
    report.deleted = len(orphans)
    kept = [r for r in records if str(r.id) not in set(orphans)]
    if not kept:
        return report
    with report.timed("similarity"):
        ids = [str(r.payload["row_id"]) for r in kept if r.payload]
        matrix = np.asarray([r.vector for r in kept], dtype=np.float32)
        pairs = similar_pairs(ids, matrix, threshold)
    with report.timed("proposals"), Session(engine) as session, session.begin():
        known = {(p.source_id, p.duplicate_id) for p in session.scalars(
            select(MergeProposal).where(MergeProposal.kind == entity.kind))}
        for a, b, score in pairs:
            if (a, b) in known:
                report.skipped += 1
                continue
            session.add(MergeProposal(kind=entity.kind, source_id=a, duplicate_id=b, score=score))
            report.inserted += 1
    report.extra["pairs"] = len(pairs)
    logger.info("[hygiene] %s: %d vectors, %d orphans removed, %d near-duplicate pairs",
                entity.kind, len(records), len(orphans), len(pairs))
    return report
