"""Spotify: the user's saved tracks and albums, followed artists and playlists (Web API).

An access token comes from the refresh-token flow (``SPOTIFY_CLIENT_ID``,
``SPOTIFY_CLIENT_SECRET``, ``SPOTIFY_REFRESH_TOKEN``) and is kept until it
expires; a ``401`` (a token revoked or expired early) refreshes it once and
repeats the request.  Lists follow each page's ``next`` URL on
``SPOTIFY_API_URL``'s origin only (elsewhere the access token would follow;
that list is then reported as failed and deletes nothing).  Items missing
from a complete listing are flagged deleted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from broker_jobs.app.connectors.http import ApiClient, ForeignOriginError
from broker_jobs.app.connectors.upsert import soft_delete_missing, upsert_rows
from broker_jobs.app.entities.report import Report, message_tag
from broker_jobs.app.settings import AppSettings
from broker_jobs.app.tables import SpotifyAlbum, SpotifyArtist, SpotifyPlaylist, SpotifyTrack
from broker_jobs.errors import PermanentJobError, SkipJob, TransientJobError

logger = logging.getLogger(__name__)

_tokens: dict[str, tuple[str, float]] = {}
_lock = threading.Lock()


def _names(artists: list[dict[str, Any]] | None) -> str:
    return ", ".join(a.get("name", "") for a in artists or [])


def track(item: dict[str, Any]) -> dict[str, Any]:
    """Our columns from one item of ``/me/tracks``."""
    t = item["track"]
    return {"id": t["id"], "name": t["name"], "artists": _names(t.get("artists")),
            "album": (t.get("album") or {}).get("name"), "duration_ms": t.get("duration_ms"),
            "popularity": t.get("popularity")}


def artist(item: dict[str, Any]) -> dict[str, Any]:
    """Our columns from one item of ``/me/following?type=artist``."""
    return {"id": item["id"], "name": item["name"], "genres": sorted(item.get("genres") or []),
            "popularity": item.get("popularity")}


def playlist(item: dict[str, Any]) -> dict[str, Any]:
    """Our columns from one item of ``/me/playlists``."""
    return {"id": item["id"], "name": item["name"], "description": item.get("description") or None,
            "owner": (item.get("owner") or {}).get("display_name"),
            "tracks_total": (item.get("tracks") or {}).get("total")}


def album(item: dict[str, Any]) -> dict[str, Any]:
    """Our columns from one item of ``/me/albums``."""
    a = item["album"]
    return {"id": a["id"], "name": a["name"], "artists": _names(a.get("artists")),
            "release_date": a.get("release_date"), "total_tracks": a.get("total_tracks")}


#: (name, path, key holding the page when nested, row mapper, model)
KINDS: tuple[tuple[str, str, str | None, Callable[[dict[str, Any]], dict[str, Any]], Any], ...] = (
    ("tracks", "/me/tracks?limit=50", None, track, SpotifyTrack),
    ("artists", "/me/following?type=artist&limit=50", "artists", artist, SpotifyArtist),
    ("playlists", "/me/playlists?limit=50", None, playlist, SpotifyPlaylist),
    ("albums", "/me/albums?limit=50", None, album, SpotifyAlbum),
)


class SpotifyClient:
    """The Web API with a refreshed access token.

    Parameters:
      settings: Credentials and URLs.
    """

    def __init__(self, settings: AppSettings) -> None:
        missing = [name for name, value in (
            ("SPOTIFY_CLIENT_ID", settings.spotify_client_id),
            ("SPOTIFY_CLIENT_SECRET", settings.spotify_client_secret),
            ("SPOTIFY_REFRESH_TOKEN", settings.spotify_refresh_token)) if not value]
        if missing:
            raise SkipJob(f"spotify: {', '.join(missing)} not set")
        self.settings = settings
        self.api = ApiClient("spotify", settings, base_url=settings.spotify_api_url.rstrip("/"))
        self.accounts = ApiClient("spotify-accounts", settings, base_url=settings.spotify_accounts_url.rstrip("/"))
        self.refreshes = 0

    def close(self) -> None:
        """Close both clients."""
        self.api.close()
        self.accounts.close()

    def token(self, force: bool = False) -> str:
        """A valid access token, refreshed when expired (or ``force``)."""
        key = str(self.settings.spotify_client_id)
        with _lock:
            cached = _tokens.get(key)
            if cached and not force and cached[1] > time.time() + 30:
                return cached[0]
            assert self.settings.spotify_client_secret and self.settings.spotify_refresh_token
            response = self.accounts.request("POST", "/api/token", data={
                "grant_type": "refresh_token",
                "refresh_token": self.settings.spotify_refresh_token.get_secret_value(),
            }, auth=(key, self.settings.spotify_client_secret.get_secret_value()))
            if response.status_code in (400, 401):
                raise PermanentJobError(f"spotify: token refresh refused (HTTP {response.status_code}: "
                                        f"{response.json().get('error', '?')}); check the SPOTIFY_* credentials")
            if response.status_code >= 400:
                raise TransientJobError(f"spotify: token refresh failed with HTTP {response.status_code}")
            body = response.json()
            self.refreshes += 1
            _tokens[key] = (body["access_token"], time.time() + float(body.get("expires_in", 3600)))
            return body["access_token"]

    def get(self, url: str) -> Any:
        """GET a Web API URL; a 401 refreshes the token and tries once more."""
        response = self.api.request("GET", url, headers={"Authorization": f"Bearer {self.token()}"})
        if response.status_code == 401:
            logger.info("[spotify] access token rejected, refreshing")
            response = self.api.request("GET", url, headers={"Authorization": f"Bearer {self.token(force=True)}"})
        if response.status_code >= 400:
            raise TransientJobError(f"spotify: HTTP {response.status_code} from GET {response.request.url.path}")
        return response.json()

    def pages(self, path: str, nested: str | None) -> Iterator[list[dict[str, Any]]]:
        """Each page's items, following ``next``."""
        url: str | None = path
        while url:
            body = self.get(url)
            page = body[nested] if nested else body
            yield page.get("items") or []
            url = page.get("next")


def ingest(settings: AppSettings, engine: Engine) -> Report:
    """Upsert the four lists page by page; flag deleted what a complete list no longer has."""
    report = Report()
    spotify = SpotifyClient(settings)
    try:
        for name, path, nested, mapper, model in KINDS:
            seen: set[str] = set()
            part = Report()
            try:
                for items in spotify.pages(path, nested):
                    rows = [mapper(item) for item in items if item]
                    part.fetched += len(rows)
                    with report.timed("store"), Session(engine) as session, session.begin():
                        upsert_rows(session, model, rows, part)
                    seen.update(r["id"] for r in rows)
            except ForeignOriginError as exc:  # an incomplete list: nothing may be flagged deleted
                part.failed += 1
                report.extra.setdefault("errors", {})[name] = str(exc)
                logger.warning("[spotify] %s: %s%s", name, exc, message_tag())
            else:
                with Session(engine) as session, session.begin():
                    part.deleted += soft_delete_missing(session, model, seen)
            report.add(part)
            report.extra[name] = part.counts()
        report.extra.update(requests=spotify.api.requests + spotify.accounts.requests,
                            retries=spotify.api.retries, token_refreshes=spotify.refreshes)
    finally:
        spotify.close()
    logger.info("[spotify] %s%s", report.counts(), message_tag())
    return report
