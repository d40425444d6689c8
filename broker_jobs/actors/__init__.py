"""Every built-in job, for ``dramatiq broker_jobs.actors`` and ``periodiq broker_jobs.actors`` (an application entry).

User jobs go in their own modules, declared with :func:`broker_jobs.job`:
``dramatiq broker_jobs.actors myapp.jobs``.
"""

from __future__ import annotations

import sys

from broker_jobs.broker import get_broker
from broker_jobs.errors import ConfigError
from broker_jobs.logging import configure_logging, redact_handlers
from broker_jobs.scheduling.periodiq_compat import add_periodiq_middleware, periodiq_active, register
from broker_jobs.settings import get_settings

try:
    broker = get_broker()
    if get_settings().log_format == "json":  # the dramatiq CLI set up plain lines; JSON was asked for
        configure_logging(get_settings().log_level, "json")
    else:  # the dramatiq CLI's plain lines: URL passwords masked all the same
        redact_handlers()
except ConfigError as exc:  # a user mistake: one line, exit 2, no traceback
    print(f"broker-jobs: {exc}", file=sys.stderr)
    raise SystemExit(2) from None

from broker_jobs.app.jobs import (
    batch_reprocess,
    concept_hygiene,
    csv_import,
    diagnostics,
    emergency_sync,
    etl_sync,
    export_data,
    github_ingest,
    prune_history,
    reprocess_documents,
    spotify_ingest,
    sync_all_services,
    sync_service,
    system_maintenance,
    vault_sync,
)

__all__ = [
    "batch_reprocess", "broker", "concept_hygiene", "csv_import", "diagnostics", "emergency_sync",
    "etl_sync", "export_data", "github_ingest", "prune_history", "reprocess_documents",
    "spotify_ingest", "sync_all_services", "sync_service", "system_maintenance", "vault_sync",
]

if periodiq_active():  # `periodiq broker_jobs.actors`: one trigger actor per job of the jobs file
    add_periodiq_middleware(broker)
    try:
        register(broker, get_settings())
    except ConfigError as exc:
        print(f"broker-jobs: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
