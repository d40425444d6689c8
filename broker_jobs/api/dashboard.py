"""The dashboard at ``/``: one server-rendered page that refreshes itself.

The page carries no data of its own (it is served without a token); its
script keeps a bearer token in ``sessionStorage`` (pasted into the sign-in
form, or handed over once as ``/?token=...``, which the script removes from
the address bar) and polls ``/api/v1/overview`` and ``/health`` every few
seconds.  Buttons call the ``operate`` routes with the same token.
"""

from __future__ import annotations

import html
from pathlib import Path
from string import Template

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse

from .. import __version__

STATIC = Path(__file__).parent / "static"
router = APIRouter(include_in_schema=False)

#: Seconds between two refreshes of the page's data.
REFRESH_SECONDS = 3


@router.get("/", response_class=HTMLResponse)
def dashboard(request: Request) -> HTMLResponse:
    """The dashboard page."""
    settings = request.app.state.settings
    page = Template((STATIC / "dashboard.html").read_text(encoding="utf-8")).substitute(
        version=html.escape(__version__),
        environment=html.escape(settings.app_env),
        refresh_ms=REFRESH_SECONDS * 1000,
    )
    return HTMLResponse(page, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


@router.get("/static/{name}")
def static(name: str) -> FileResponse:
    """The page's stylesheet and script."""
    allowed = {"dashboard.css": "text/css", "dashboard.js": "text/javascript"}
    if name not in allowed:
        raise HTTPException(404, detail="not found")
    return FileResponse(STATIC / name, media_type=allowed[name])
