"""The vector store: one Qdrant collection per entity kind, reached through an alias.

The alias ``KIND`` points at a physical collection ``KIND__gN``; a rebuild fills
``KIND__gN+1`` and moves the alias in one call, so search never sees a
half-built index.  Point ids are ``uuid5(kind:row id)``: re-running a job
overwrites instead of duplicating.

Qdrant's embedded mode (``QDRANT_PATH``) lets one process at a time open the
folder, so :func:`open_store` opens it for the duration of a job only and waits
for another process to let go; ``QDRANT_URL`` (a server) has no such limit.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from qdrant_client import QdrantClient, models

from broker_jobs.app.settings import AppSettings, get_app_settings
from broker_jobs.app.vectors.ids import point_id
from broker_jobs.errors import PermanentJobError, TransientJobError

__all__ = ["VectorStore", "open_store", "point_id"]

logger = logging.getLogger(__name__)

_local_lock = threading.RLock()
_remote: dict[str, QdrantClient] = {}
_held = threading.local()


class VectorStore:
    """Collections behind aliases, on one Qdrant client.

    Parameters:
      client: An open ``QdrantClient`` (local or remote).
    """

    def __init__(self, client: QdrantClient) -> None:
        self.client = client

    def physical(self, kind: str) -> str | None:
        """The collection the alias ``kind`` points at, if any."""
        for alias in self.client.get_aliases().aliases:
            if alias.alias_name == kind:
                return alias.collection_name
        return None

    def generation(self, kind: str) -> int:
        """The generation number of the live collection of ``kind`` (0 when none)."""
        name = self.physical(kind)
        return int(name.rsplit("__g", 1)[1]) if name and "__g" in name else 0

    def ensure(self, kind: str, dim: int) -> str:
        """Create ``kind``'s first collection and alias when missing; check the vector size.

        Raises:
          PermanentJobError: when the live collection has another size (run ``batch_reprocess``).
        """
        name = self.physical(kind)
        if name is None:
            name = self.create(kind, 1, dim)
            self.switch(kind, name)
            return name
        size = self.size(name)
        if size != dim:
            raise PermanentJobError(
                f"collection {kind!r} holds {size}-dimension vectors, the embedder makes {dim}: "
                "run batch_reprocess to re-embed"
            )
        return name

    def check_embedder(self, kind: str, name: str, version: str) -> None:
        """Refuse to mix embedders in one collection.

        Raises:
          PermanentJobError: when ``kind``'s vectors come from another embedder (run ``batch_reprocess``).
        """
        records, _ = self.client.scroll(kind, limit=1, with_payload=["embedder", "embedder_version"])
        if not records:
            return
        payload = records[0].payload or {}
        found = f"{payload.get('embedder')}/{payload.get('embedder_version')}"
        if found != f"{name}/{version}":
            raise PermanentJobError(f"collection {kind!r} holds vectors of embedder {found}, EMBEDDER gives "
                                    f"{name}/{version}: run batch_reprocess to re-embed")

    def size(self, collection: str) -> int:
        """The vector size of ``collection``."""
        params = self.client.get_collection(collection).config.params.vectors
        assert isinstance(params, models.VectorParams)
        return params.size

    def create(self, kind: str, generation: int, dim: int) -> str:
        """Create (or keep, when it exists with the right size) ``kind__g<generation>``."""
        name = f"{kind}__g{generation}"
        if self.client.collection_exists(name):
            if self.size(name) == dim:
                return name
            self.client.delete_collection(name)
        self.client.create_collection(
            name, vectors_config=models.VectorParams(size=dim, distance=models.Distance.COSINE)
        )
        return name

    def switch(self, kind: str, collection: str) -> str | None:
        """Point the alias ``kind`` at ``collection`` in one atomic call; returns the old target."""
        old = self.physical(kind)
        ops: list[Any] = []
        if old is not None:
            ops.append(models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=kind)))
        ops.append(models.CreateAliasOperation(
            create_alias=models.CreateAlias(collection_name=collection, alias_name=kind)))
        self.client.update_collection_aliases(change_aliases_operations=ops)
        return old

    def kinds(self) -> list[str]:
        """Every alias (entity kind) in the store."""
        return sorted(a.alias_name for a in self.client.get_aliases().aliases)

    def upsert(self, collection: str, points: list[models.PointStruct]) -> None:
        """Insert or overwrite ``points``."""
        if points:
            self.client.upsert(collection, points=points, wait=True)

    def retrieve(self, collection: str, ids: list[str]) -> dict[str, dict[str, Any]]:
        """Payloads of the points among ``ids`` that exist."""
        if not ids:
            return {}
        found = self.client.retrieve(collection, ids=ids, with_payload=True, with_vectors=False)
        return {str(p.id): dict(p.payload or {}) for p in found}

    def delete(self, collection: str, ids: list[str]) -> None:
        """Delete the points ``ids`` (missing ones are ignored)."""
        if ids:
            self.client.delete(collection, points_selector=models.PointIdsList(points=list(ids)), wait=True)

    def scan(self, collection: str, with_vectors: bool = False, page: int = 256) -> Iterator[models.Record]:
        """Every point of ``collection``."""
        offset = None
        while True:
            records, offset = self.client.scroll(collection, limit=page, offset=offset, with_payload=True,
                                                 with_vectors=with_vectors)
            yield from records
            if offset is None:
                return

    def count(self, kind: str) -> int:
        """How many points ``kind``'s live collection holds (0 when none)."""
        name = self.physical(kind)
        return self.client.count(name, exact=True).count if name else 0

    def search(self, kind: str, vector: list[float], limit: int = 5) -> list[models.ScoredPoint]:
        """The ``limit`` points of ``kind`` nearest to ``vector``."""
        return self.client.query_points(kind, query=vector, limit=limit, with_payload=True).points


def _open_local(path: str, wait: float) -> QdrantClient:
    deadline = time.monotonic() + wait
    while True:
        try:
            return QdrantClient(path=path)
        except RuntimeError as exc:  # "already accessed by another instance": another process has it
            if "already accessed" not in str(exc) or time.monotonic() > deadline:
                raise TransientJobError(f"vector store at QDRANT_PATH={path} is busy: {exc}") from None
            time.sleep(0.2)


@contextmanager
def open_store(settings: AppSettings | None = None, wait: float = 120.0) -> Iterator[VectorStore]:
    """The vector store for one job: a shared server client, or the embedded folder held meanwhile.

    Parameters:
      settings: Where the store is (default: the process settings).
      wait: Seconds to wait for another process to release the embedded folder.
    """
    settings = settings or get_app_settings()
    if settings.qdrant_url:
        client = _remote.get(settings.qdrant_url)
        if client is None:
            key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
            client = _remote[settings.qdrant_url] = QdrantClient(url=settings.qdrant_url, api_key=key)
        yield VectorStore(client)
        return
    path = str(settings.qdrant_path)
    settings.qdrant_path.mkdir(parents=True, exist_ok=True)
    # Threads of one worker share the folder one job at a time; the embedded
    # client is not meant for concurrent writers.
    held: VectorStore | None = getattr(_held, "store", None)
    if held is not None:  # nested use in one job: the folder is already ours
        yield held
        return
    with _local_lock:
        client = _open_local(path, wait)
        _held.store = VectorStore(client)
        try:
            yield _held.store
        finally:
            _held.store = None
            client.close()
