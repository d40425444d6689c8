"""Ingest jobs: external APIs and files -> the relational store."""

from __future__ import annotations

from typing import Any

from ..job import job


@job(queue="sync", priority="medium")
def sync_all_services() -> dict[str, Any]:
    """Fan out one ``sync_service`` message per active service."""
    raise NotImplementedError


@job(queue="sync", priority="medium")
def sync_service(service_id: int) -> dict[str, Any]:
    """Fetch one service's status API and insert its new log records."""
    raise NotImplementedError


@job(queue="sync", priority="medium")
def github_ingest() -> dict[str, Any]:
    """Ingest the repositories of ``GITHUB_OWNERS``."""
    raise NotImplementedError


@job(queue="sync", priority="medium")
def spotify_ingest() -> dict[str, Any]:
    """Ingest the user's Spotify tracks, artists, playlists and albums."""
    raise NotImplementedError


@job(queue="sync", priority="medium")
def csv_import() -> dict[str, Any]:
    """Import every company's CSV source."""
    raise NotImplementedError
