"""The ETL pipeline as an APScheduler application's config names it: what a job written APScheduler's way
(``{"job_id", "type", ..., "config": {...}}``) runs with its ``config`` as arguments."""

from __future__ import annotations

from typing import Any

from broker_jobs.app.jobs.etl import run_etl
from broker_jobs.app.jobs.maintenance import run_batch_reprocess
from broker_jobs.errors import PermanentJobError
from broker_jobs.job import job

MODES = ("auto", "incremental", "full")
#: The seeds' pipeline options that have no meaning here, and why (named in the run's report).
NOT_APPLICABLE = {
    "data_dir": "rows come from DATABASE_URL (ENTITIES_CONFIG names the tables)",
    "storage_path": "the vector store is QDRANT_PATH / QDRANT_URL",
    "use_chunking": "each row is embedded whole (its entity's text template)",
    "chunk_size": "each row is embedded whole (its entity's text template)",
    "chunk_overlap": "each row is embedded whole (its entity's text template)",
    "collection_name": "each entity has its own collection",
    "embedding_model": "the embedder is EMBEDDER",
}


@job(queue="etl", priority="medium", time_limit=540)
def etl_pipeline(incremental_mode: str = "auto", force_recreate: bool = False,
                 dry_run: bool = False, ci_mode: bool = False, entities: list[str] | None = None,
                 data_dir: str | None = None, storage_path: str | None = None, use_chunking: bool | None = None,
                 chunk_size: int | None = None, chunk_overlap: int | None = None,
                 collection_name: str | None = None, embedding_model: str | None = None) -> dict[str, Any]:
    """Run the ETL: incremental (``auto``) or a full rebuild (``full``, ``force_recreate``); ``dry_run`` says which."""
    if incremental_mode not in MODES:
        raise PermanentJobError(f"incremental_mode: {incremental_mode!r} is not one of {', '.join(MODES)}")
    full = incremental_mode == "full" or force_recreate
    given = {"data_dir": data_dir, "storage_path": storage_path, "use_chunking": use_chunking,
             "chunk_size": chunk_size, "chunk_overlap": chunk_overlap, "collection_name": collection_name,
             "embedding_model": embedding_model}
    ignored = {name: NOT_APPLICABLE[name] for name, value in given.items() if value is not None}
    mode = "full rebuild (batch_reprocess)" if full else "incremental (etl_sync)"
    if dry_run:
        report: dict[str, Any] = {"dry_run": True, "would_run": mode, "entities": entities or "all"}
    else:
        report = run_batch_reprocess(entities) if full else run_etl(entities)
        report["mode"] = mode
    if ignored:
        report["not_applicable"] = ignored
    return report
