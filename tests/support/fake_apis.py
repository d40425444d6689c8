"""A local HTTP server reproducing the shapes of the APIs the connectors call.

GitHub: ``Link`` pagination, ``ETag``/``If-None-Match`` -> 304, ``X-RateLimit-*``
headers, bearer token.  Spotify: ``next`` pagination (``/me/following`` nested
under ``artists`` with cursors), access tokens from the refresh-token flow
that can be expired at will (401 until refreshed).  Service status API and CSV
files.  ``script(prefix, *answers)`` queues answers (503 bursts, 429 with
``Retry-After``) returned before the normal one for paths starting with prefix.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

FIXTURES = Path(__file__).resolve().parent.parent / "app" / "fixtures"


def fixture(name: str) -> Any:
    """A JSON sample from ``fixtures/``."""
    return json.loads((FIXTURES / name).read_text())


@dataclass
class Answer:
    """A scripted answer."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None


@dataclass
class ApiState:
    """What the fake APIs serve and what they saw."""

    github_token: str = "gh-test-token"
    github_repos: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    github_page_size: int = 2
    rate_remaining: int = 5000
    client_id: str = "spotify-client"
    client_secret: str = "spotify-secret"
    refresh_token: str = "spotify-refresh"
    valid_tokens: set[str] = field(default_factory=set)
    issued: int = 0
    spotify: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    spotify_page_size: int = 2
    statuses: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    scripted: dict[str, deque[Answer]] = field(default_factory=lambda: defaultdict(deque))
    hits: list[tuple[str, str, int]] = field(default_factory=list)
    #: ``(path, Authorization header or None)`` of every request, in order.
    authorizations: list[tuple[str, str | None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def script(self, prefix: str, *answers: Answer) -> None:
        """Serve ``answers`` first, in order, for paths starting with ``prefix``."""
        with self.lock:
            self.scripted[prefix].extend(answers)

    def expire_tokens(self) -> None:
        """Every access token issued so far becomes invalid (401)."""
        with self.lock:
            self.valid_tokens.clear()

    def count(self, prefix: str, status: int | None = None) -> int:
        """How many requests hit paths starting with ``prefix`` (with ``status``)."""
        return sum(1 for _, path, code in self.hits if path.startswith(prefix) and status in (None, code))


class FakeApis:
    """The running server; ``url`` is its base, ``state`` what it serves."""

    def __init__(self) -> None:
        self.state = ApiState()
        self.state.github_repos["octo-org"] = fixture("github_repos.json")
        self.state.spotify = {
            "tracks": fixture("spotify_saved_tracks.json"),
            "artists": fixture("spotify_followed_artists.json"),
            "playlists": fixture("spotify_playlists.json"),
            "albums": fixture("spotify_saved_albums.json"),
        }
        self.state.statuses["web"] = fixture("status_records.json")
        handler = type("Handler", (_Handler,), {"state": self.state, "apis": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


class _Handler(BaseHTTPRequestHandler):
    state: ApiState
    apis: FakeApis
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms delayed-ACK stall

    def log_message(self, *_args: Any) -> None:
        pass

    def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None,
              raw: str | None = None) -> None:
        data = raw.encode() if raw is not None else (b"" if body is None else json.dumps(body).encode())
        # Recorded before answering: a test may count hits as soon as its client has the answer.
        with self.state.lock:
            self.state.hits.append((self.command, urlsplit(self.path).path, status))
            self.state.authorizations.append((urlsplit(self.path).path, self.headers.get("Authorization")))
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "text/csv" if raw is not None else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if status != 304:
            self.wfile.write(data)

    def _scripted(self, path: str) -> bool:
        with self.state.lock:
            for prefix, answers in self.state.scripted.items():
                if path.startswith(prefix) and answers:
                    answer = answers.popleft()
                    break
            else:
                return False
        self._send(answer.status, answer.body if answer.body is not None else {"message": "scripted"},
                   answer.headers)
        return True

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        if self._scripted(parts.path):
            return
        if parts.path.startswith("/users/"):
            return self._github(parts.path.split("/")[2], query)
        if parts.path.startswith("/v1/"):
            return self._spotify(parts.path[len("/v1"):], query)
        if parts.path.startswith("/status/"):
            return self._status(parts.path.split("/")[2], query)
        if parts.path.startswith("/csv/"):
            name = parts.path.split("/", 2)[2]
            if name in self.state.files:
                return self._send(200, raw=self.state.files[name])
        return self._send(404, {"message": "Not Found"})

    def do_POST(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        form = {k: v[-1] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        if self._scripted(parts.path):
            return
        if parts.path != "/api/token":
            return self._send(404, {"error": "not_found"})
        expected = base64.b64encode(f"{self.state.client_id}:{self.state.client_secret}".encode()).decode()
        if self.headers.get("Authorization") != f"Basic {expected}":
            return self._send(401, {"error": "invalid_client"})
        if form.get("grant_type") != "refresh_token" or form.get("refresh_token") != self.state.refresh_token:
            return self._send(400, {"error": "invalid_grant", "error_description": "Invalid refresh token"})
        with self.state.lock:
            self.state.issued += 1
            token = f"access-{self.state.issued}"
            self.state.valid_tokens.add(token)
        body = {**fixture("spotify_token.json"), "access_token": token}
        return self._send(200, body)

    def _github(self, owner: str, query: dict[str, str]) -> None:
        if self.headers.get("Authorization") != f"Bearer {self.state.github_token}":
            return self._send(401, {"message": "Bad credentials",
                                    "documentation_url": "https://docs.github.com/rest"})
        repos = self.state.github_repos.get(owner)
        if repos is None:
            return self._send(404, {"message": "Not Found"})
        size, page = self.state.github_page_size, int(query.get("page", "1"))
        pages = max(1, -(-len(repos) // size))
        items = repos[(page - 1) * size: page * size]
        body = json.dumps(items)
        etag = 'W/"' + hashlib.sha1(body.encode()).hexdigest() + '"'
        with self.state.lock:
            self.state.rate_remaining = max(0, self.state.rate_remaining - 1)
            remaining = self.state.rate_remaining
        headers = {"ETag": etag, "X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": str(remaining),
                   "X-RateLimit-Reset": "1700000000", "X-RateLimit-Used": str(5000 - remaining),
                   "X-RateLimit-Resource": "core"}
        base = f"{self.apis.url}/users/{owner}/repos?per_page={query.get('per_page', '30')}"
        links = []
        if page < pages:
            links.append(f'<{base}&page={page + 1}>; rel="next"')
            links.append(f'<{base}&page={pages}>; rel="last"')
        if page > 1:
            links.append(f'<{base}&page=1>; rel="first"')
            links.append(f'<{base}&page={page - 1}>; rel="prev"')
        if links:
            headers["Link"] = ", ".join(links)
        if self.headers.get("If-None-Match") == etag:
            return self._send(304, None, headers)
        return self._send(200, items, headers)

    def _spotify(self, path: str, query: dict[str, str]) -> None:
        token = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
        if token not in self.state.valid_tokens:
            return self._send(401, {"error": {"status": 401, "message": "The access token expired"}})
        kind = {"/me/tracks": "tracks", "/me/following": "artists", "/me/playlists": "playlists",
                "/me/albums": "albums"}.get(path)
        if kind is None:
            return self._send(404, {"error": {"status": 404, "message": "Service not found"}})
        items = self.state.spotify[kind]
        size = self.state.spotify_page_size
        if kind == "artists":  # cursor-paginated, nested under "artists"
            after = query.get("after")
            start = next((i + 1 for i, a in enumerate(items) if a["id"] == after), 0)
            chunk = items[start:start + size]
            more = start + size < len(items)
            last = chunk[-1]["id"] if chunk else None
            page = {"href": f"{self.apis.url}/v1/me/following?type=artist&limit={size}", "limit": size,
                    "next": f"{self.apis.url}/v1/me/following?type=artist&limit={size}&after={last}" if more else None,
                    "cursors": {"after": last if more else None}, "total": len(items), "items": chunk}
            return self._send(200, {"artists": page})
        offset = int(query.get("offset", "0"))
        chunk = items[offset:offset + size]
        more = offset + size < len(items)
        base = f"{self.apis.url}/v1{path}"
        return self._send(200, {
            "href": f"{base}?offset={offset}&limit={size}", "limit": size, "offset": offset, "total": len(items),
            "next": f"{base}?offset={offset + size}&limit={size}" if more else None,
            "previous": f"{base}?offset={max(0, offset - size)}&limit={size}" if offset else None,
            "items": chunk,
        })

    def _status(self, name: str, query: dict[str, str]) -> None:
        service = self.state.statuses.get(name)
        if service is None:
            return self._send(404, {"error": "unknown service"})
        records = service["records"]
        after = query.get("after")
        start = next((i + 1 for i, r in enumerate(records) if r["id"] == after), 0)
        chunk = records[start:start + 3]
        more = start + 3 < len(records)
        nxt = f"{self.apis.url}/status/{name}?after={chunk[-1]['id']}" if more and chunk else None
        return self._send(200, {"status": service["status"], "records": chunk, "next": nxt})
