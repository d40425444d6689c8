"""The shared HTTP client of every connector: timeouts, retries, rate limits, a circuit breaker.

- Network errors and 5xx answers are retried ``HTTP_MAX_RETRIES`` times with
  exponential backoff from ``HTTP_BACKOFF`` (or the server's ``Retry-After``).
- ``429`` (and GitHub's ``403`` with ``X-RateLimit-Remaining: 0``) waits for
  ``Retry-After`` / ``X-RateLimit-Reset`` when that is at most
  ``HTTP_MAX_WAIT`` seconds away, else fails the job as transient so Dramatiq
  retries it later instead of holding a worker thread.
- ``X-RateLimit-Remaining: 0`` on a success makes the next request wait for the reset.
- One circuit breaker per API (per process): after ``BREAKER_FAIL_MAX``
  consecutive failures every call fails fast for ``BREAKER_RESET_TIMEOUT``
  seconds, so an outage does not tie up every worker in retries.

Credentials stay with their API: a request carrying an ``Authorization``
header (the client's or its own) may only go to the origin (scheme, host,
port) of the client's ``base_url`` (``GITHUB_API_URL``, ``SPOTIFY_API_URL``,
``SPOTIFY_ACCOUNTS_URL``).  A pagination link (GitHub's ``Link``, Spotify's
``next``) naming another origin is refused with :class:`ForeignOriginError`
before anything is sent; a redirect to another origin loses the header
(httpx strips it).  Headers (tokens) are never logged.
"""

from __future__ import annotations

import email.utils
import functools
import logging
import ssl
import threading
import time
from typing import Any

import httpx
import pybreaker

from broker_jobs.app.settings import AppSettings
from broker_jobs.errors import PermanentJobError, TransientJobError
from broker_jobs.redaction import RedactFilter

logger = logging.getLogger(__name__)
# httpx logs each request's URL whole, user info included.
logging.getLogger("httpx").addFilter(RedactFilter())

_breakers: dict[str, pybreaker.CircuitBreaker] = {}
_lock = threading.Lock()


class ServerError(Exception):
    """A 5xx answer (counted by the circuit breaker)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        super().__init__(f"HTTP {response.status_code} from {response.request.method} {response.request.url.path}")


class CircuitOpenError(TransientJobError):
    """An API failed repeatedly; calls fail fast until its breaker's timeout passes."""


class RateLimitedError(TransientJobError):
    """An API asked to wait longer than ``HTTP_MAX_WAIT``; the job is retried later."""


class ForeignOriginError(PermanentJobError):
    """A request with credentials was about to leave the API's own origin; nothing was sent.

    Parameters:
      api: The API's name.
      origin: Where the credentials belong.
      target: Where the request would have gone (scheme, host and port only).
    """

    def __init__(self, api: str, origin: str, target: str) -> None:
        self.origin = origin
        self.target = target
        super().__init__(f"{api}: refused to send credentials to {target}, another origin than the API's "
                         f"{origin} (a link from the API pointed there)")


def origin(url: httpx.URL | str) -> str:
    """``scheme://host:port`` of ``url``, the port explicit (the scheme's default when absent)."""
    url = httpx.URL(url)
    port = url.port or {"http": 80, "https": 443}.get(url.scheme)
    host = f"[{url.host}]" if ":" in url.host else url.host
    return f"{url.scheme}://{host}:{port}"


@functools.lru_cache(maxsize=1)
def _tls() -> ssl.SSLContext:
    # Loading the CA bundle costs tens of milliseconds: once per process, not per client.
    import certifi  # deferred: the CA bundle, only when a client is built

    return ssl.create_default_context(cafile=certifi.where())


def breaker_for(name: str, settings: AppSettings) -> pybreaker.CircuitBreaker:
    """The circuit breaker of API ``name`` in this process."""
    with _lock:
        breaker = _breakers.get(name)
        if breaker is None:
            breaker = _breakers[name] = pybreaker.CircuitBreaker(
                fail_max=settings.breaker_fail_max, reset_timeout=settings.breaker_reset_timeout, name=name)
        return breaker


def reset_breakers() -> None:
    """Forget every breaker's state (tests)."""
    with _lock:
        _breakers.clear()


def retry_after(response: httpx.Response, now: float | None = None) -> float | None:
    """Seconds to wait as the response asks (``Retry-After`` seconds or date, or ``X-RateLimit-Reset``)."""
    now = time.time() if now is None else now
    value = response.headers.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            parsed = email.utils.parsedate_to_datetime(value)
            if parsed is not None:
                return max(0.0, parsed.timestamp() - now)
    if response.headers.get("x-ratelimit-remaining") == "0" and response.headers.get("x-ratelimit-reset"):
        try:
            return max(0.0, float(response.headers["x-ratelimit-reset"]) - now)
        except ValueError:
            return None
    return None


def _rate_limited(response: httpx.Response) -> bool:
    if response.status_code == 429:
        return True
    return response.status_code == 403 and response.headers.get("x-ratelimit-remaining") == "0"


class ApiClient:
    """An ``httpx.Client`` for one API with our retry, rate-limit and breaker rules.

    Parameters:
      name: The API's name in logs and breakers (``github``, ``spotify``, ``service:web``).
      settings: Timeouts, retries and breaker limits.
      base_url: Prefix of relative URLs.
      headers: Sent with every request.
    """

    def __init__(self, name: str, settings: AppSettings, base_url: str = "",
                 headers: dict[str, str] | None = None) -> None:
        self.name = name
        self.settings = settings
        self.breaker = breaker_for(name, settings)
        self.http = httpx.Client(base_url=base_url, headers=headers, follow_redirects=True,
                                 timeout=httpx.Timeout(settings.http_timeout), verify=_tls())
        #: Where requests with credentials may go; ``None``: a client without a base URL has none of its own.
        self.origin = origin(base_url) if base_url else None
        self._not_before = 0.0
        self.requests = 0
        self.retries = 0

    def close(self) -> None:
        """Close the connections."""
        self.http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _send(self, request: httpx.Request, auth: Any) -> httpx.Response:
        self.requests += 1
        response = self.http.send(request, auth=auth)
        if response.status_code >= 500:
            raise ServerError(response)
        return response

    def _wait(self, seconds: float, why: str) -> None:
        if seconds > self.settings.http_max_wait:
            raise RateLimitedError(f"{self.name}: {why}, asked to wait {seconds:.0f} s "
                                   f"(over HTTP_MAX_WAIT={self.settings.http_max_wait:.0f})")
        if seconds > 0:
            logger.info("[http] %s: %s, waiting %.2f s", self.name, why, seconds)
            time.sleep(seconds)

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send a request; returns any answer below 500 other than a rate limit.

        Raises:
          CircuitOpenError: the API's breaker is open.
          RateLimitedError: the API asked for a wait over ``HTTP_MAX_WAIT``.
          TransientJobError: retries exhausted on network errors or 5xx.
        """
        auth = kwargs.pop("auth", httpx.USE_CLIENT_DEFAULT)
        attempt = 0
        while True:
            self._wait(self._not_before - time.time(), "rate limit reached")
            request = self.http.build_request(method, url, **kwargs)  # anew: a retry re-sends the body
            self._check_origin(request, auth)
            try:
                response = self.breaker.call(self._send, request, auth)
            except pybreaker.CircuitBreakerError:
                raise CircuitOpenError(f"{self.name}: circuit open after {self.breaker.fail_max} failures; "
                                       f"calls fail fast for {self.breaker.reset_timeout:.0f} s") from None
            except (httpx.TransportError, ServerError) as exc:
                attempt += 1
                if attempt > self.settings.http_max_retries:
                    raise TransientJobError(f"{self.name}: {exc!s} after {attempt} attempts") from None
                answer = exc.response if isinstance(exc, ServerError) else None
                delay = (retry_after(answer) if answer is not None else None) or self._backoff(attempt)
                self.retries += 1
                logger.warning("[http] %s: %s, retry %d/%d in %.2f s", self.name, exc, attempt,
                               self.settings.http_max_retries, delay)
                self._wait(delay, "server error")
                continue
            if _rate_limited(response):
                attempt += 1
                if attempt > self.settings.http_max_retries:
                    raise RateLimitedError(f"{self.name}: still rate limited after {attempt} attempts")
                self.retries += 1
                self._wait(retry_after(response) or self._backoff(attempt), f"HTTP {response.status_code}")
                continue
            if response.headers.get("x-ratelimit-remaining") == "0":
                self._not_before = time.time() + (retry_after(response) or 0.0)
            return response

    def _check_origin(self, request: httpx.Request, auth: Any) -> None:
        """Refuse a request that carries credentials anywhere but the API's origin."""
        if self.origin is None:
            return
        target = origin(request.url)
        if target == self.origin:
            return
        if "authorization" in request.headers or auth is not httpx.USE_CLIENT_DEFAULT:
            logger.warning("[http] %s: refused to send credentials to %s (API origin %s)", self.name, target,
                           self.origin)
            raise ForeignOriginError(self.name, self.origin, target)

    def _backoff(self, attempt: int) -> float:
        return float(self.settings.http_backoff * 2 ** (attempt - 1))

    def get_json(self, url: str, **kwargs: Any) -> Any:
        """GET ``url`` and decode JSON; a 4xx is a transient job error naming the API."""
        response = self.request("GET", url, **kwargs)
        if response.status_code >= 400:
            raise TransientJobError(f"{self.name}: HTTP {response.status_code} from GET {response.request.url.path}")
        return response.json()
