"""Every built-in job, for ``dramatiq broker_jobs.actors`` and ``periodiq broker_jobs.actors``.

User jobs go in their own modules, declared with :func:`broker_jobs.job`:
``dramatiq broker_jobs.actors myapp.jobs``.
"""

from __future__ import annotations

import sys

from ..errors import ConfigError

try:
    from ..broker import get_broker

    broker = get_broker()
    from ..settings import get_settings as _settings

    if _settings().log_format == "json":  # the dramatiq CLI set up plain lines; JSON was asked for
        from ..logging import configure_logging

        configure_logging(_settings().log_level, "json")
    else:  # the dramatiq CLI's plain lines: URL passwords masked all the same
        from ..logging import redact_handlers

        redact_handlers()
except ConfigError as exc:  # a user mistake: one line, exit 2, no traceback
    print(f"broker-jobs: {exc}", file=sys.stderr)
    raise SystemExit(2) from None

from ..app.jobs import (
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

from ..scheduling.periodiq_compat import periodiq_active

if periodiq_active():  # `periodiq broker_jobs.actors`: one trigger actor per job of the jobs file
    from ..scheduling.periodiq_compat import register
    from ..settings import get_settings

    try:
        register(broker, get_settings())
    except ConfigError as exc:
        print(f"broker-jobs: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
