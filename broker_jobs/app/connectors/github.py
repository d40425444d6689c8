"""GitHub: the repositories of ``GITHUB_OWNERS`` through the REST API.

Pages follow the ``Link: <...>; rel="next"`` header, on ``GITHUB_API_URL``'s
origin only: a link elsewhere would carry the token there, so that owner's
listing stops, is reported as failed and deletes nothing.  Every page is fetched
with ``If-None-Match`` and the ETag of its last answer; a ``304`` costs no rate
limit and means its repositories are unchanged (the cache remembers which
they were, so deletion detection still sees the full list).  A page and its
cache entry commit together: a crash resumes cleanly.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Engine, func
from sqlalchemy.orm import Session

from broker_jobs.app.connectors.http import ApiClient, ForeignOriginError
from broker_jobs.app.connectors.upsert import soft_delete_missing, upsert_rows
from broker_jobs.app.entities.report import Report, message_tag
from broker_jobs.app.settings import AppSettings
from broker_jobs.app.tables import GithubRepository, HttpCache
from broker_jobs.clock import utc_now
from broker_jobs.errors import PermanentJobError, SkipJob, TransientJobError

logger = logging.getLogger(__name__)


class OwnerNotFound(Exception):
    """``GET /users/{owner}/repos`` answered 404."""


def repository_fields(item: dict[str, Any]) -> dict[str, Any]:
    """Our columns from one item of ``GET /users/{owner}/repos``."""
    return {
        "id": int(item["id"]),
        "full_name": item["full_name"],
        "owner": (item.get("owner") or {}).get("login") or item["full_name"].split("/")[0],
        "description": item.get("description"),
        "language": item.get("language"),
        "topics": sorted(item.get("topics") or []),
        "stars": int(item.get("stargazers_count") or 0),
        "html_url": item.get("html_url"),
        "pushed_at": item.get("pushed_at"),
    }


def owners(settings: AppSettings) -> list[str]:
    """``GITHUB_OWNERS`` as a list."""
    return [o.strip() for o in settings.github_owners.replace(";", ",").split(",") if o.strip()]


def client(settings: AppSettings) -> ApiClient:
    """The GitHub API client (skips the job when ``GITHUB_TOKEN`` or ``GITHUB_OWNERS`` is missing)."""
    if settings.github_token is None or not settings.github_token.get_secret_value():
        raise SkipJob("github: GITHUB_TOKEN not set")
    if not owners(settings):
        raise SkipJob("github: GITHUB_OWNERS not set")
    return ApiClient("github", settings, base_url=settings.github_api_url.rstrip("/"), headers={
        "Accept": "application/vnd.github+json",
        "Authorization": f"Bearer {settings.github_token.get_secret_value()}",
        "X-GitHub-Api-Version": "2022-11-28",
        "User-Agent": "broker-jobs",
    })


def _page(api: ApiClient, engine: Engine, url: str, report: Report) -> tuple[list[int], str | None]:
    with Session(engine) as session:
        cached = session.get(HttpCache, url)
        etag = cached.etag if cached else None
    headers = {"If-None-Match": etag} if etag else {}
    with report.timed("fetch"):
        response = api.request("GET", url, headers=headers)
    if response.status_code == 304 and cached is not None:
        ids = list(cached.item_ids or [])
        report.skipped += len(ids)
        report.extra["not_modified_pages"] = report.extra.get("not_modified_pages", 0) + 1
        return ids, cached.next_url
    if response.status_code == 401:
        raise PermanentJobError("github: GITHUB_TOKEN rejected (HTTP 401 Bad credentials)")
    if response.status_code == 404:
        raise OwnerNotFound(url)
    if response.status_code >= 400 or response.status_code == 304:  # a 304 we did not ask for
        raise TransientJobError(f"github: HTTP {response.status_code} from GET {response.request.url.path}")
    items = response.json()
    report.fetched += len(items)
    next_url = response.links.get("next", {}).get("url")
    rows = [repository_fields(item) for item in items]
    with report.timed("store"), Session(engine) as session, session.begin():
        upsert_rows(session, GithubRepository, rows, report)
        entry = session.get(HttpCache, url) or HttpCache(url=url)
        entry.etag, entry.next_url = response.headers.get("etag"), next_url
        entry.item_ids, entry.fetched_at = [r["id"] for r in rows], utc_now()
        session.add(entry)
    return [r["id"] for r in rows], next_url


def ingest(settings: AppSettings, engine: Engine) -> Report:
    """Upsert every repository of every owner; flag deleted the ones that disappeared."""
    report = Report()
    with client(settings) as api:
        for owner in owners(settings):
            url: str | None = f"/users/{owner}/repos?per_page=100&sort=full_name"
            seen: set[int] = set()
            try:
                while url:
                    ids, url = _page(api, engine, url, report)
                    seen.update(ids)
            except OwnerNotFound:  # a misspelt owner fails alone; its rows are left as they are
                report.failed += 1
                report.extra.setdefault("errors", {})[owner] = "no such user or organization (HTTP 404)"
                logger.warning("[github] owner %r not found%s", owner, message_tag())
                continue
            except ForeignOriginError as exc:  # an incomplete listing: nothing may be flagged deleted
                report.failed += 1
                report.extra.setdefault("errors", {})[owner] = str(exc)
                logger.warning("[github] owner %r: %s%s", owner, exc, message_tag())
                continue
            with Session(engine) as session, session.begin():
                report.deleted += soft_delete_missing(session, GithubRepository, seen,
                                                      func.lower(GithubRepository.owner) == owner.lower())
        report.extra.update(requests=api.requests, retries=api.retries, owners=owners(settings))
    logger.info("[github] %s%s", report.counts(), message_tag())
    return report
