"""On-demand jobs: emergency sync and data export."""

from __future__ import annotations

from typing import Any

from ..job import job


@job(queue="sync", priority="high")
def emergency_sync() -> dict[str, Any]:
    """Sync the vault and every service now."""
    raise NotImplementedError


@job(queue="default", priority="medium")
def export_data(tables: list[str], format: str = "csv") -> dict[str, Any]:
    """Export chosen tables to CSV or JSON files under ``EXPORT_DIR`` with a manifest."""
    raise NotImplementedError
