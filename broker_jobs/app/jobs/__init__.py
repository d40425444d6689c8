"""Every built-in job: importing this module declares them on the process's broker."""

from __future__ import annotations

from broker_jobs.app.jobs.diagnostics import diagnostics
from broker_jobs.app.jobs.etl import etl_sync, reprocess_documents
from broker_jobs.app.jobs.maintenance import (
    batch_reprocess,
    concept_hygiene,
    prune_history,
    system_maintenance,
)
from broker_jobs.app.jobs.ondemand import emergency_sync, export_data
from broker_jobs.app.jobs.pipeline import etl_pipeline
from broker_jobs.app.jobs.sync import csv_import, github_ingest, spotify_ingest, sync_all_services, sync_service
from broker_jobs.app.jobs.vault import vault_sync

__all__ = [
    "batch_reprocess", "concept_hygiene", "csv_import", "diagnostics", "emergency_sync",
    "etl_pipeline", "etl_sync", "export_data", "github_ingest", "prune_history", "reprocess_documents",
    "spotify_ingest", "sync_all_services", "sync_service", "system_maintenance", "vault_sync",
]
