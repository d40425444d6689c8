"""Concept hygiene: near-duplicate vectors become merge proposals, the confident ones merges; orphan vectors go.

Duplicates are found by brute force (cosine of every pair, in blocks of a few
hundred rows with numpy): exact, and fast enough for the tens of thousands of
notes a vault holds.  Proposals are keyed by ``(kind, source, duplicate)`` so
running twice records each pair once.

A pair at or above ``MERGE_THRESHOLD`` is merged: the duplicate's vector leaves the
store (search finds the source only) and a ``concept_merges`` row keeps it, so
:func:`undo_merge` puts it back and marks the proposal ``undone`` (never merged by
itself again).  In dry-run mode (``HYGIENE_DRY_RUN``, or ``dry_run=True``) nothing is
merged: the report lists what would be.  A duplicate whose vector comes back (an edit
re-embedded it, a rebuild) is merged again at the next run.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from qdrant_client import models
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from broker_jobs.app.entities.registry import Entity
from broker_jobs.app.entities.report import Report
from broker_jobs.app.entities.tables import table_of
from broker_jobs.app.tables import ConceptMerge, MergeProposal
from broker_jobs.app.vectors.store import VectorStore
from broker_jobs.clock import utc_now
from broker_jobs.errors import BrokerJobsError, NotFoundError

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


def clean_kind(engine: Engine, store: VectorStore, entity: Entity, threshold: float,
               merge_threshold: float | None = None, dry_run: bool = False) -> Report:
    """Drop ``entity``'s orphan vectors, record its near-duplicate pairs, merge those at ``merge_threshold``.

    Parameters:
      threshold: Cosine at or above which a pair is proposed (``DUPLICATE_THRESHOLD``).
      merge_threshold: Cosine at or above which a proposed pair is merged (``MERGE_THRESHOLD``); None merges none.
      dry_run: Only propose: list the merges that would be applied (``would_merge``), apply none.
    """
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
    if merge_threshold is not None:
        with report.timed("merges"):
            merged = _merge(engine, store, entity.kind, kept, merge_threshold, dry_run)
        report.extra["would_merge" if dry_run else "merged"] = merged
    logger.info("[hygiene] %s: %d vectors, %d orphans removed, %d near-duplicate pairs, %d %s",
                entity.kind, len(records), len(orphans), len(pairs), len(report.extra.get("merged", [])),
                "merges proposed (dry run)" if dry_run else "merged")
    return report


def _merge(engine: Engine, store: VectorStore, kind: str, kept: list[models.Record], merge_threshold: float,
           dry_run: bool) -> list[dict[str, Any]]:
    """Merge every confident pair whose duplicate still has a vector; the merges done (or, dry, to do)."""
    points: dict[str, list[models.Record]] = {}
    for record in kept:
        if record.payload:
            points.setdefault(str(record.payload.get("row_id")), []).append(record)
    done: list[dict[str, Any]] = []
    leaving: list[str] = []
    with Session(engine) as session, session.begin():
        confident = session.scalars(
            select(MergeProposal).where(MergeProposal.kind == kind, MergeProposal.score >= merge_threshold,
                                        MergeProposal.status.in_(("open", "merged")))
            .order_by(MergeProposal.score.desc(), MergeProposal.id))
        gone: set[str] = set()
        for proposal in confident:
            duplicate = points.get(proposal.duplicate_id, [])
            if not duplicate or proposal.duplicate_id in gone or proposal.source_id in gone:
                continue  # merged already, or its source was merged away this run
            gone.add(proposal.duplicate_id)
            entry = {"source_id": proposal.source_id, "duplicate_id": proposal.duplicate_id,
                     "score": proposal.score}
            if dry_run:
                done.append(entry)
                continue
            for record in duplicate:
                session.add(ConceptMerge(
                    proposal_id=proposal.id, kind=kind, source_id=proposal.source_id,
                    duplicate_id=proposal.duplicate_id, score=proposal.score, point_id=str(record.id),
                    vector=[float(x) for x in _plain_vector(record.vector)], payload=dict(record.payload or {})))
            proposal.status = "merged"
            leaving += [str(r.id) for r in duplicate]
            done.append(entry)
    # The vectors leave the store only once their copies are committed (a failure here leaves them
    # in place; the next run merges them again).
    store.delete(kind, leaving)
    return done


def _plain_vector(vector: Any) -> list[float]:
    # Qdrant answers a list for an unnamed vector (a dict for named ones: the first, ours have one).
    if isinstance(vector, dict):
        vector = next(iter(vector.values()))
    return list(vector or [])


def undo_merge(engine: Engine, store: VectorStore, merge_id: int) -> dict[str, Any]:
    """Put a merged duplicate's vector back and mark its proposal ``undone`` (never merged by itself again).

    Raises:
      NotFoundError: no merge ``merge_id``.
      BrokerJobsError: it was undone already.
    """
    with Session(engine) as session, session.begin():
        merge = session.get(ConceptMerge, merge_id)
        if merge is None:
            raise NotFoundError(f"no concept merge {merge_id} (broker-jobs concepts merges lists them)")
        if merge.undone_at is not None:
            raise BrokerJobsError(f"concept merge {merge_id} was undone already ({merge.undone_at.isoformat()})")
        store.upsert(merge.kind, [models.PointStruct(id=merge.point_id, vector=list(merge.vector),
                                                     payload=dict(merge.payload))])
        merge.undone_at = utc_now()
        proposal = session.get(MergeProposal, merge.proposal_id)
        if proposal is not None:
            proposal.status = "undone"
        return {"id": merge.id, "kind": merge.kind, "source_id": merge.source_id,
                "duplicate_id": merge.duplicate_id, "restored_point": merge.point_id, "undone": True}


def list_merges(engine: Engine, kind: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """The newest merges, newest first (without their vectors)."""
    query = select(ConceptMerge).order_by(ConceptMerge.id.desc()).limit(limit)
    if kind:
        query = query.where(ConceptMerge.kind == kind)
    with Session(engine) as session:
        return [{"id": m.id, "kind": m.kind, "source_id": m.source_id, "duplicate_id": m.duplicate_id,
                 "score": m.score, "merged_at": m.merged_at, "undone_at": m.undone_at}
                for m in session.scalars(query)]
