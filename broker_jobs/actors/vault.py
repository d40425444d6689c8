"""The vault sync job: Markdown notes -> the documents table."""

from __future__ import annotations

from typing import Any

from ..job import job


@job(queue="sync", priority="medium")
def vault_sync() -> dict[str, Any]:
    """Reconcile the documents table with the notes under ``VAULT_PATH``."""
    raise NotImplementedError
