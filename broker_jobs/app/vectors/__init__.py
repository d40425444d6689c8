"""Embedders and the Qdrant vector store.

``open_store`` and ``VectorStore`` import qdrant-client on first use only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from broker_jobs.app.vectors.embedders import Embedder, HashingEmbedder, get_embedder
from broker_jobs.app.vectors.ids import point_id

if TYPE_CHECKING:
    from broker_jobs.app.vectors.store import VectorStore, open_store

__all__ = ["Embedder", "HashingEmbedder", "VectorStore", "get_embedder", "open_store", "point_id"]


def __getattr__(name: str) -> Any:
    if name in ("VectorStore", "open_store"):
        from broker_jobs.app.vectors import store  # deferred: numpy and qdrant-client, only when this runs

        return getattr(store, name)
    raise AttributeError(name)
