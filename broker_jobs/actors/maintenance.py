"""Maintenance jobs of the job system itself."""

from __future__ import annotations

from typing import Any

from ..job import job
from ..settings import get_settings
from ..store.db import get_engine
from ..store.history import prune


@job(queue="maintenance", priority="low", time_limit=600)
def prune_history() -> dict[str, Any]:
    """Delete history past its retention (completed: count and age, failed: age)."""
    settings = get_settings()
    deleted = prune(
        get_engine(),
        keep_completed=settings.history_keep_completed,
        completed_ttl=settings.history_completed_ttl,
        failed_ttl=settings.history_failed_ttl,
    )
    return {"deleted": deleted}


@job(queue="maintenance", priority="low", time_limit=600)
def system_maintenance() -> dict[str, Any]:
    """Prune history, slot audit and dead-letter archive; VACUUM/ANALYZE; check health."""
    raise NotImplementedError


@job(queue="maintenance", priority="low", time_limit=600)
def concept_hygiene() -> dict[str, Any]:
    """Record near-duplicate merge proposals; drop vectors whose rows are gone."""
    raise NotImplementedError


@job(queue="maintenance", priority="low", time_limit=600)
def batch_reprocess() -> dict[str, Any]:
    """Re-embed everything into fresh collections and switch aliases atomically."""
    raise NotImplementedError
