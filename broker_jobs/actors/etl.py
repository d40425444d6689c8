"""ETL jobs: relational rows -> text -> embeddings -> the vector store."""

from __future__ import annotations

from typing import Any

from ..job import job


@job(queue="etl", priority="medium")
def etl_sync(entities: list[str] | None = None) -> dict[str, Any]:
    """Embed rows changed since each entity's watermark into its collection."""
    raise NotImplementedError


@job(queue="etl", priority="high")
def reprocess_documents(document_ids: list[int]) -> dict[str, Any]:
    """Re-embed the given vault documents now."""
    raise NotImplementedError
