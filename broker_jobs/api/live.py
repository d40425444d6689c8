"""``/api/v1`` for the console: workers, the calendar of the schedule ahead, live updates (SSE)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from ..clock import utc_now
from ..middleware.presence import STALE_AFTER
from ..scheduling import calendar, control
from ..store.db import get_engine
from ..store.queries import worker_heartbeats
from .routes import _call, _settings, overview, read
from .statuses import READ, answers

router = APIRouter(prefix="/api/v1")

#: Seconds between two looks at the state by the event stream (an event is sent only when it changed).
EVENT_CHECK_SECONDS = 2.0
#: Seconds after which an unchanged stream sends a comment, so proxies keep it open.
KEEPALIVE_SECONDS = 15.0


def workers(settings: Any) -> list[dict[str, Any]]:
    """Every worker process's last heartbeat, with its age and whether it is stale."""
    now = utc_now()
    rows = []
    for beat in worker_heartbeats(get_engine(settings.database_url)):
        age = (now - beat["heartbeat_at"]).total_seconds()
        rows.append({**beat, "age_s": round(age, 1), "stale": age > STALE_AFTER})
    return rows


@router.get("/workers", dependencies=[read], tags=["workers"], responses=answers(*READ))
def list_workers(request: Request) -> list[dict[str, Any]]:
    """Worker processes: host, pid, queues, threads, the jobs they run now, version, heartbeat age;
    ``stale`` when the last heartbeat is older than three beats (the process is gone or stuck)."""
    return workers(_settings(request))


@router.get("/calendar", dependencies=[read], tags=["schedules"], responses=answers(*READ, 422))
def schedule_ahead(request: Request, days: int = Query(1, ge=1, le=7, description="1 (hours) to 7 (days).")
                   ) -> dict[str, Any]:
    """Every schedule's slots over the next ``days``, with DST shifts, skips and repeats marked and pauses shown."""
    settings = _settings(request)
    listed = _call(control.list_jobs, settings)
    paused = {str(j["id"]): j.get("note") for j in listed if j.get("paused")}
    jobs = list(_call(control.all_jobs, settings).values())
    start, end, bucket = calendar.span(days, utc_now())
    return {
        "start": start, "end": end, "bucket_s": int(bucket.total_seconds()),
        "jobs": [{"id": w.job.id, "actor": w.job.actor, "queue": w.job.queue, "timezone": w.job.timezone,
                  "trigger": next((j["trigger"] for j in listed if j["id"] == w.job.id), ""),
                  "enabled": w.job.enabled, "paused": w.paused, "note": w.note, "slots": w.slots,
                  "count": len(w.slots), "truncated": w.truncated,
                  "marks": [{"at": m.at, "kind": m.kind, "wall": m.wall, "note": m.note} for m in w.marks]}
                 for w in sorted(calendar.window(jobs, paused, start, end), key=lambda w: w.job.id)],
    }


def _snapshot(request: Request) -> dict[str, Any]:
    data = overview(request)
    try:
        data["workers"] = workers(_settings(request))
    except Exception as exc:  # noqa: BLE001 - one broken panel must not stop the stream
        data["workers"], data["errors"]["workers"] = [], f"{type(exc).__name__}: {exc}"
    return data


async def _stream(request: Request) -> AsyncIterator[str]:
    last, quiet = "", 0.0
    yield "retry: 3000\n\n"
    while not await request.is_disconnected():
        data = await run_in_threadpool(_snapshot, request)
        stamp = data.pop("generated_at", None)
        text = json.dumps(data, default=str, sort_keys=True)
        digest = hashlib.sha256(text.encode()).hexdigest()
        if digest != last:
            last, quiet = digest, 0.0
            data["generated_at"] = stamp
            yield f"event: overview\nid: {digest[:16]}\ndata: {json.dumps(data, default=str)}\n\n"
        elif quiet >= KEEPALIVE_SECONDS:
            quiet = 0.0
            yield ": keep-alive\n\n"
        await asyncio.sleep(EVENT_CHECK_SECONDS)
        quiet += EVENT_CHECK_SECONDS


@router.get("/events", dependencies=[read], tags=["dashboard"], response_class=StreamingResponse,
            responses={**answers(*READ), 200: {"content": {"text/event-stream": {}},
                                               "description": "Server-sent events: `overview` (the overview and "
                                                              "the workers) whenever it changes."}})
def events(request: Request) -> StreamingResponse:
    """Live updates as server-sent events: an ``overview`` event at once, then each time the state changes
    (looked at every 2 s; a keep-alive comment every 15 s of quiet)."""
    return StreamingResponse(_stream(request), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
