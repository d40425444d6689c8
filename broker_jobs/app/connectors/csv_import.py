"""CSV import: each company's CSV source (a path or an http(s) URL) into ``company_records``.

At most ``CSV_MAX_CONCURRENT`` companies import at once.  A row is stored
once per company whatever how often it appears (content hash); rows that
vanished from the file are flagged deleted.  A company whose file is missing
or malformed fails alone: it is recorded on the company and in the report,
the others go on.  Rows commit in batches of ``ETL_BATCH_SIZE``.
"""

from __future__ import annotations

import csv
import io
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from broker_jobs.app.connectors.http import ApiClient
from broker_jobs.app.connectors.upsert import content_hash
from broker_jobs.app.entities.report import Report, message_tag
from broker_jobs.app.settings import AppSettings
from broker_jobs.app.tables import Company, CompanyRecord
from broker_jobs.clock import utc_now
from broker_jobs.redaction import redact

logger = logging.getLogger(__name__)


class BadCsvError(ValueError):
    """A CSV source that cannot be read or parsed."""


def load_companies(settings: AppSettings, engine: Engine) -> int:
    """Upsert the companies listed in ``COMPANIES_FILE`` (``name,source[,active]``); returns how many.

    Relative sources are taken relative to the companies file.
    """
    path = settings.companies_file
    if not path.is_file():
        return 0
    with path.open(newline="", encoding="utf-8") as handle:
        entries = [row for row in csv.DictReader(handle) if (row.get("name") or "").strip()]
    with Session(engine) as session, session.begin():
        for row in entries:
            source = row["source"].strip()
            if "://" not in source and not Path(source).is_absolute():
                source = str((path.parent / source).resolve())
            active = (row.get("active") or "true").strip().lower() not in ("0", "false", "no")
            company = session.scalar(select(Company).where(Company.name == row["name"].strip()))
            if company is None:
                session.add(Company(name=row["name"].strip(), source=source, active=active))
            else:
                company.source, company.active = source, active
    return len(entries)


def read_source(source: str, settings: AppSettings) -> str:
    """The text of a CSV source.

    Raises:
      BadCsvError: when it cannot be read.
    """
    if source.startswith(("http://", "https://")):
        # One breaker per host: a dead server must not fail fast the other companies' hosts.
        # Named by host and port only: user info (a password) never reaches a log line.
        parts = urlsplit(source)
        auth = None
        if parts.username is not None or parts.password is not None:  # sent as Basic auth, not in the URL
            auth = (unquote(parts.username or ""), unquote(parts.password or ""))
            source = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
        with ApiClient(f"csv:{parts.hostname}:{parts.port or parts.scheme}", settings) as api:
            response = api.request("GET", source, **({"auth": auth} if auth else {}))
        if response.status_code >= 400:
            raise BadCsvError(f"HTTP {response.status_code} from {redact(source)}")
        return response.text
    try:
        return Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadCsvError(redact(f"cannot read {source}: {exc}")) from None


def parse_rows(text: str) -> list[dict[str, str]]:
    """Rows as header -> value, stripped.

    Raises:
      BadCsvError: without a header, or when a row has more fields than the header.
    """
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or any(not (f or "").strip() for f in reader.fieldnames):
        raise BadCsvError("no header row (or an empty column name)")
    rows = []
    for number, row in enumerate(reader, start=2):
        if None in row:
            raise BadCsvError(f"line {number}: more fields than the header has")
        rows.append({k.strip(): (v or "").strip() for k, v in row.items()})
    return rows


def import_company(settings: AppSettings, engine: Engine, company_id: int) -> Report:
    """Import one company's source; raises :class:`BadCsvError` for a bad file."""
    report = Report()
    with Session(engine) as session:
        company = session.get(Company, company_id)
        assert company is not None
        name, source = company.name, company.source
    with report.timed("read"):
        rows = parse_rows(read_source(source, settings))
    report.fetched = len(rows)
    unique: dict[str, dict[str, str]] = {}
    for row in rows:
        unique.setdefault(content_hash(row), row)
    report.skipped += len(rows) - len(unique)
    items = list(unique.items())
    size = settings.etl_batch_size
    for start in range(0, len(items), size):
        batch = dict(items[start:start + size])
        with report.timed("store"), Session(engine) as session, session.begin():
            known = {r.content_hash: r for r in session.scalars(select(CompanyRecord).where(
                CompanyRecord.company_id == company_id, CompanyRecord.content_hash.in_(list(batch))))}
            for digest, row in batch.items():
                old = known.get(digest)
                if old is None:
                    text = f"{name}: " + "; ".join(f"{k}: {v}" for k, v in row.items() if v)
                    session.add(CompanyRecord(company_id=company_id, content_hash=digest, data=row, text=text,
                                              updated_at=utc_now(), deleted=False))
                    report.inserted += 1
                elif old.deleted:
                    old.deleted, old.updated_at = False, utc_now()
                    report.updated += 1
                else:
                    report.skipped += 1
        logger.info("[csv] %s: %d/%d distinct rows stored%s", name, min(start + size, len(items)), len(items),
                    message_tag())
    with Session(engine) as session, session.begin():
        for record in session.scalars(select(CompanyRecord).where(
                CompanyRecord.company_id == company_id, CompanyRecord.deleted.is_(False))):
            if record.content_hash not in unique:
                record.deleted, record.updated_at = True, utc_now()
                report.deleted += 1
        company = session.get(Company, company_id)
        assert company is not None
        company.last_imported_at, company.last_error = utc_now(), None
    return report


def import_all(settings: AppSettings, engine: Engine) -> Report:
    """Import every active company, ``CSV_MAX_CONCURRENT`` at a time, each failure isolated."""
    report = Report()
    report.extra["companies_listed"] = load_companies(settings, engine)
    with Session(engine) as session:
        companies = [(c.id, c.name) for c in session.scalars(select(Company).where(Company.active.is_(True))
                                                               .order_by(Company.id))]
    errors: dict[str, str] = {}
    per_company: dict[str, Any] = {}
    with ThreadPoolExecutor(max_workers=settings.csv_max_concurrent, thread_name_prefix="csv") as pool:
        futures = {name: pool.submit(import_company, settings, engine, cid) for cid, name in companies}
    for (cid, name), future in zip(companies, futures.values(), strict=True):
        try:
            part = future.result()
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop the others
            errors[name] = redact(str(exc))
            report.failed += 1
            logger.warning("[csv] %s failed: %s%s", name, errors[name], message_tag())
            with Session(engine) as session, session.begin():
                company = session.get(Company, cid)
                if company is not None:
                    company.last_error = errors[name][:2000]
            continue
        report.add(part)
        per_company[name] = part.counts()
    report.extra.update(companies=per_company, max_concurrent=settings.csv_max_concurrent)
    if errors:
        report.extra["errors"] = errors
    return report
