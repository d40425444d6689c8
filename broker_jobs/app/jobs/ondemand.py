"""On-demand jobs: emergency sync and data export."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from broker_jobs.app.entities.report import Report
from broker_jobs.app.settings import get_app_settings
from broker_jobs.errors import PermanentJobError, SkipJob
from broker_jobs.job import job
from broker_jobs.safe_files import UnsafeFileError, open_root, write_file


@job(queue="sync", priority="high", time_limit=300)
def emergency_sync() -> dict[str, Any]:
    """Sync the vault and every service now (services without the random delay)."""
    from broker_jobs.app.connectors import (
        services,  # deferred: another job module: declared by broker_jobs.app.jobs, used only when this job runs
    )
    from broker_jobs.app.jobs.sync import (
        sync_service,  # deferred: another job module: declared by broker_jobs.app.jobs, used only when this job runs
    )
    from broker_jobs.app.jobs.vault import (
        run_vault_sync,  # deferred: another job module: declared by broker_jobs.app.jobs, used only when this job runs
    )
    from broker_jobs.store.db import (
        get_engine,  # deferred: SQLAlchemy, when the job runs
    )

    report = Report()
    try:
        with report.timed("vault"):
            vault: dict[str, Any] = run_vault_sync()
        for name in ("fetched", "inserted", "updated", "skipped", "deleted", "failed"):
            setattr(report, name, vault[name])
    except SkipJob as skip:
        vault = {"skipped": str(skip)}
    with report.timed("services"):
        ids = services.active_services(get_engine())
        for service_id in ids:
            sync_service.send_with_options(args=(service_id,), priority="high")
    report.extra.update(vault=vault, services_enqueued=len(ids))
    return report.asdict()


def _cell(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, default=str)
    return value


def _write_atomically(dir_fd: int, name: str, text: str) -> str:
    # Readers see the old file or the new one, never half of one; a link planted at the
    # name (or at a temporary name) is replaced, never written through.
    data = text.encode("utf-8")
    try:
        write_file(dir_fd, name, data)
    except UnsafeFileError as exc:
        raise PermanentJobError(f"export: EXPORT_DIR/{exc}") from None
    return hashlib.sha256(data).hexdigest()


def _open_export_dir(out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    try:
        return open_root(out, follow=False)
    except UnsafeFileError:
        raise PermanentJobError(f"export: EXPORT_DIR={out} is a symbolic link; set EXPORT_DIR to the real "
                                "folder (an export never writes through a link)") from None


def run_export(tables: list[str], format: str = "csv") -> dict[str, Any]:
    """Write ``tables`` to ``EXPORT_DIR/<table>.<format>`` and ``manifest.json``."""
    from broker_jobs.app.tables import Base  # deferred: SQLAlchemy's ORM, when the job runs

    if format not in ("csv", "json"):
        raise PermanentJobError(f"export format {format!r} is not csv or json")
    unknown = sorted(set(tables) - set(Base.metadata.tables))
    if unknown:
        known = ", ".join(sorted(Base.metadata.tables))
        raise PermanentJobError(f"unknown tables {', '.join(unknown)} (known: {known})")
    settings, report = get_app_settings(), Report()
    out = settings.export_dir
    dir_fd = _open_export_dir(out)
    try:
        files = _export_tables(dir_fd, tables, format, report)
        manifest = {"format": format, "exported_at": datetime.now(UTC).isoformat(), "files": files}
        _write_atomically(dir_fd, "manifest.json", json.dumps(manifest, indent=2))
    finally:
        os.close(dir_fd)
    report.inserted = len(files)
    report.extra.update(directory=str(out), files=[f["file"] for f in files], manifest="manifest.json")
    return report.asdict()


def _export_tables(dir_fd: int, tables: list[str], format: str, report: Report) -> list[dict[str, Any]]:
    from sqlalchemy import (
        select,  # deferred: SQLAlchemy, when the job runs
    )

    from broker_jobs.app.tables import Base  # deferred: SQLAlchemy's ORM, when the job runs
    from broker_jobs.store.db import (
        get_engine,  # deferred: SQLAlchemy, when the job runs
    )

    engine = get_engine()
    files = []
    for name in tables:
        table = Base.metadata.tables[name]
        with report.timed("read"), engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(select(table).order_by(*table.primary_key.columns))]
        columns = [c.name for c in table.columns]
        with report.timed("write"):
            if format == "csv":

                buffer = io.StringIO()
                writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
                writer.writeheader()
                writer.writerows({k: _cell(v) for k, v in row.items()} for row in rows)
                text = buffer.getvalue()
            else:
                text = json.dumps([{k: _cell(v) for k, v in row.items()} for row in rows], indent=1, default=str)
            file_name = f"{name}.{format}"
            digest = _write_atomically(dir_fd, file_name, text)
        report.fetched += len(rows)
        files.append({"table": name, "file": file_name, "rows": len(rows), "columns": columns, "sha256": digest})
    return files


@job(queue="default", priority="medium", time_limit=300)
def export_data(tables: list[str], format: str = "csv") -> dict[str, Any]:
    """Export chosen tables to CSV or JSON files under ``EXPORT_DIR`` with a manifest.

    Files are created inside ``EXPORT_DIR`` without following any link (see
    :mod:`broker_jobs.safe_files`); ``EXPORT_DIR`` itself must not be a link.
    """
    return run_export(tables, format)
