"""The built-in application's settings: stores, embedder, sources, connectors (Spotify, GitHub, Qdrant, vault...).

:class:`AppSettings` extends the framework's :class:`~broker_jobs.settings.Settings` (the jobs also read the
database, the retries and the history limits), from the same environment and ``.env``, with the same one-line
errors and redaction (:func:`~broker_jobs.settings.read_settings`).  Every variable is in the README's
configuration table of the built-in jobs.
"""

from __future__ import annotations

import threading
from pathlib import Path

from pydantic import Field, SecretStr

from broker_jobs.settings import Settings, get_settings, read_settings


class AppSettings(Settings):
    """The framework's settings plus the built-in jobs' own."""

    etl_batch_size: int = Field(50, ge=1, le=100_000)
    qdrant_path: Path = Path("data/qdrant")
    qdrant_url: str | None = None
    qdrant_api_key: SecretStr | None = None
    embedder: str = "hashing"
    etl_overlap: float = Field(30.0, ge=0, description="seconds")
    embedding_dim: int = Field(384, ge=8, le=8192)
    vault_path: Path = Path("examples/vault")
    vault_max_note_bytes: int = Field(1_048_576, ge=1024, le=67_108_864, description="bytes")
    export_dir: Path = Path("data/exports")
    entities_config: Path = Path("config/entities.yaml")
    companies_file: Path = Path("examples/companies.csv")
    csv_max_concurrent: int = Field(4, ge=1, le=64)
    duplicate_threshold: float = Field(0.92, gt=0, le=1)
    # Seed 003 merges concept drift by itself: at or above this cosine the duplicate's vector is merged away.
    merge_threshold: float = Field(0.97, gt=0, le=1)
    hygiene_dry_run: bool = False
    service_sync_max_delay: float = Field(30.0, ge=0, description="seconds")
    http_timeout: float = Field(10.0, gt=0, description="seconds")
    http_max_retries: int = Field(4, ge=0, le=20)
    http_max_wait: float = Field(60.0, ge=0, description="seconds")
    http_backoff: float = Field(0.5, ge=0, description="seconds")
    github_token: SecretStr | None = None
    github_owners: str = ""
    github_api_url: str = "https://api.github.com"
    spotify_client_id: str | None = None
    spotify_client_secret: SecretStr | None = None
    spotify_refresh_token: SecretStr | None = None
    spotify_api_url: str = "https://api.spotify.com/v1"
    spotify_accounts_url: str = "https://accounts.spotify.com"


_lock = threading.Lock()
_cached: tuple[Settings, AppSettings] | None = None


def get_app_settings() -> AppSettings:
    """The process-wide application settings, read again whenever the framework's are
    (``get_settings.cache_clear()`` refreshes both)."""
    global _cached
    framework = get_settings()
    with _lock:
        if _cached is None or _cached[0] is not framework:
            _cached = (framework, read_settings(AppSettings))
        return _cached[1]
