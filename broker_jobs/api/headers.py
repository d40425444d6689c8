"""Security headers on every answer: CSP, X-Frame-Options, X-Content-Type-Options.

The dashboard loads its script and stylesheet from ``/static`` and has no inline
script or style, so its policy allows nothing but this origin (plus ``data:``
images for the favicon).  FastAPI's explorers (``/docs``, ``/redoc``) are pages
of FastAPI's own with an inline bootstrap script and assets on a CDN: they get
a policy that allows exactly those.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
                   Awaitable[None]]

#: The policy of every answer but the explorers.
STRICT_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
              "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
              "frame-ancestors 'none'")
#: FastAPI's Swagger UI and ReDoc pages (inline bootstrap, assets from jsDelivr).
EXPLORER_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
                "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
                "font-src 'self' https://fonts.gstatic.com; img-src 'self' data: https://fastapi.tiangolo.com "
                "https://cdn.redoc.ly; worker-src 'self' blob:; connect-src 'self'; object-src 'none'; "
                "base-uri 'none'; frame-ancestors 'none'")
EXPLORERS = ("/docs", "/redoc")


def headers_for(path: str) -> list[tuple[bytes, bytes]]:
    """The security headers of an answer to ``path``."""
    csp = EXPLORER_CSP if path in EXPLORERS or path.startswith("/docs/") else STRICT_CSP
    return [(b"content-security-policy", csp.encode()), (b"x-frame-options", b"DENY"),
            (b"x-content-type-options", b"nosniff")]


class SecurityHeaders:
    """ASGI middleware adding :func:`headers_for` to every HTTP answer (errors included)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]],
                       send: Callable[[Message], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = headers_for(scope.get("path", ""))

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (name, value) for name, value in extra if name not in present]
            await send(message)

        await self.app(scope, receive, with_headers)
