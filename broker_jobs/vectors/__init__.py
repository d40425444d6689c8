"""Embedders and the Qdrant vector store."""

from .embedders import Embedder, HashingEmbedder, get_embedder
from .store import VectorStore, open_store, point_id

__all__ = ["Embedder", "HashingEmbedder", "VectorStore", "get_embedder", "open_store", "point_id"]
