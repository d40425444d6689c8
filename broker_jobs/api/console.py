"""``/api/v1`` for the console: history search, run and dead-letter details, dead letters in bulk.

The SQL is :mod:`broker_jobs.store.queries`'; replay and purge are :mod:`broker_jobs.dead_letters`', the
functions ``broker-jobs dlq`` calls, so the console leaves the same trail as the CLI (each letter's
archive entry moves to ``replayed`` or ``purged``; a replay carries ``replay_of``).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator

from .. import registry
from ..dead_letters import purge, replay
from ..protocol import FireId
from ..store.db import get_engine
from ..store.queries import RunFilter, dead_groups, run_record, search_runs
from .auth import scopes_of
from .routes import Status, Text, _call, _settings, check_arguments, operate, read
from .statuses import READ, WITH_BODY, answers

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1")

#: At most this many dead letters are acted on by one bulk request.
MAX_SELECTION = 1000


class RunPage(BaseModel):
    """One page of the history, newest first."""

    runs: list[dict[str, Any]]
    next_cursor: int | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


@router.get("/runs", dependencies=[read], tags=["history"], responses=answers(*READ, 422))
def search(request: Request, actor: Text | None = None, queue: Text | None = None, status: Status | None = None,
           since: datetime | None = Query(None, description="Finished at or after (ISO 8601)."),
           until: datetime | None = Query(None, description="Finished before (ISO 8601)."),
           error: Text | None = Query(None, max_length=200, description="The error contains this text."),
           cursor: int | None = Query(None, ge=1, description="`next_cursor` of the previous page."),
           limit: int = Query(50, ge=1, le=500)) -> RunPage:
    """Search the history: filters combine (AND); pages follow ``next_cursor`` (keyset on the run id)."""
    where = RunFilter(actor=actor, queue=queue, status=status, since=since, until=until, error=error)
    runs, after = search_runs(get_engine(_settings(request).database_url), where, before=cursor, limit=limit)
    return RunPage(runs=runs, next_cursor=after)


def _body(text: str | None) -> dict[str, Any]:
    """The message a dead letter's archive kept (``{}`` when it cannot be read)."""
    try:
        value = json.loads(text or "")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _timeline(run: dict[str, Any] | None, attempts: list[dict[str, Any]],
              letters: list[dict[str, Any]]) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    if run is not None:
        events.append({"at": run["enqueued_at"], "event": "enqueued", "detail": run["queue"]})
    for a in attempts:
        events.append({"at": a["started_at"], "event": f"attempt {a['attempt']} started", "detail": a["worker"]})
        events.append({"at": a["finished_at"], "event": f"attempt {a['attempt']} {a['status']}",
                       "detail": a["error"]})
    if run is not None and run["status"] not in ("retrying", "dead"):
        events.append({"at": run["started_at"], "event": f"attempt {run['attempt']} started",
                       "detail": run["worker"]})
        if run["finished_at"] is not None:
            events.append({"at": run["finished_at"], "event": run["status"], "detail": run["error"]})
    for d in letters:
        events.append({"at": d["dead_at"], "event": "dead-lettered", "detail": d["reason"]})
    timed = [e for e in events if e["at"] is not None]
    return sorted(timed, key=lambda e: e["at"])


def _arguments_schema(actor: str | None) -> dict[str, Any] | None:
    if not actor or not registry.has(actor):
        return None
    model = registry.get(actor).args_model
    schema: dict[str, Any] | None = model.model_json_schema() if model is not None else None
    return schema


def _detail(message_id: str, settings: Any) -> dict[str, Any]:
    record = run_record(get_engine(settings.database_url), message_id)
    run, attempts, letters = record.run, record.attempts, record.letters
    if run is None and not letters:
        raise HTTPException(404, detail=f"no run or dead letter with message id {message_id!r}")
    letter = letters[-1] if letters else None
    body = _body(letter["body"]) if letter else {}
    arguments = (run or {}).get("args") or {"args": body.get("args", []), "kwargs": body.get("kwargs", {})}
    fire = FireId.parse(str(run["fire_id"])) if run and run.get("fire_id") else None
    worker = (run or {}).get("worker") or (attempts[-1]["worker"] if attempts else None)
    actor = (run or {}).get("actor") or (letter or {}).get("actor")
    if letter is not None and not attempts:  # archived before attempts were recorded: the letter's own error
        attempts = [{"attempt": letter["attempts"], "status": "dead", "error": letter["reason"],
                     "traceback": letter["traceback"], "worker": worker, "started_at": None,
                     "finished_at": letter["dead_at"]}]
    return {
        "message_id": message_id, "actor": actor, "queue": (run or letter or {}).get("queue"),
        "status": run["status"] if run else "dead", "priority": (run or {}).get("priority"),
        "attempt": (run or {}).get("attempt") or (letter or {}).get("attempts"),
        "args": arguments.get("args", []), "kwargs": arguments.get("kwargs", {}),
        "report": (run or {}).get("report"), "error": (run or {}).get("error") or (letter or {}).get("reason"),
        "worker": worker, "host": worker.rsplit(":", 1)[0] if worker else None,
        "fire_id": str(fire) if fire else None, "schedule_id": fire.job_id if fire else None,
        "slot": fire.slot if fire else None, "manual": bool(fire and fire.is_manual),
        "replay_of": body.get("options", {}).get("replay_of") if isinstance(body.get("options"), dict) else None,
        "enqueued_at": (run or {}).get("enqueued_at"), "started_at": (run or {}).get("started_at"),
        "finished_at": (run or {}).get("finished_at"), "duration_ms": (run or {}).get("duration_ms"),
        "attempts": attempts,
        "dead_letter": None if letter is None else {k: v for k, v in letter.items() if k != "body"},
        "arguments_schema": _arguments_schema(actor),
        "timeline": _timeline(run, record.attempts, letters),
    }


MessageId = Path(min_length=1, max_length=64, pattern=r"^[\w.:@-]+$", description="The message id.")


@router.get("/runs/{message_id}", dependencies=[read], tags=["history"], responses=answers(*READ, 404, 422))
def run_detail(request: Request, message_id: str = MessageId) -> dict[str, Any]:
    """One run: arguments, every failed attempt with its error and traceback, report, host, fire id and slot,
    timeline (and its dead-letter archive entry if it died)."""
    return _detail(message_id, _settings(request))


@router.get("/dlq/groups", dependencies=[read], tags=["dead letters"], responses=answers(*READ))
def dead_by_reason(request: Request) -> list[dict[str, Any]]:
    """The letters archived as dead, grouped by reason (largest group first), each with its letters."""
    groups: dict[str, dict[str, Any]] = {}
    for letter in dead_groups(get_engine(_settings(request).database_url)):
        reason = str(letter["reason"]).splitlines()[0][:300] if letter["reason"] else "?"
        group = groups.setdefault(reason, {"reason": reason, "count": 0, "actors": [], "letters": []})
        group["count"] += 1
        group["letters"].append(letter)
        if letter["actor"] not in group["actors"]:
            group["actors"].append(letter["actor"])
    return sorted(groups.values(), key=lambda g: (-g["count"], g["reason"]))


@router.get("/dlq/{message_id}", dependencies=[read], tags=["dead letters"], responses=answers(*READ, 404, 422))
def dead_detail(request: Request, message_id: str = MessageId) -> dict[str, Any]:
    """One dead letter: its archive entry (reason, traceback), arguments, attempts, report, host, fire id,
    slot, timeline, and the job's arguments schema (what an edited replay is checked against)."""
    detail = _detail(message_id, _settings(request))
    if detail["dead_letter"] is None:
        raise HTTPException(404, detail=f"no dead letter with message id {message_id!r}")
    return detail


class Selection(BaseModel):
    """Which dead letters: the console's selection (``ids``), or all of a ``queue``/``actor``, or ``all``."""

    model_config = ConfigDict(extra="forbid")
    ids: list[Text] | None = Field(None, min_length=1, max_length=MAX_SELECTION)
    queue: Text | None = Field(None, min_length=1)
    actor: Text | None = Field(None, min_length=1)
    all: bool = False

    @model_validator(mode="after")
    def _selects(self) -> Selection:
        if not (self.ids or self.queue or self.actor or self.all):
            raise ValueError("say which dead letters: ids, queue, actor or all")
        return self


class EditedReplay(BaseModel):
    """Replay one dead letter with new arguments, checked against the job's arguments first."""

    model_config = ConfigDict(extra="forbid")
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)


def _who(request: Request) -> str:
    return str(getattr(request.state, "subject", None) or "console")


@router.post("/dlq/replay-selected", dependencies=[operate], tags=["dead letters"], responses=answers(*WITH_BODY))
def replay_selected(request: Request, body: Selection) -> dict[str, list[dict[str, Any]]]:
    """Replay a selection of dead letters (retries reset, each under a new id), as ``dlq replay`` does."""
    done = _call(replay, _settings(request), queue=body.queue, actor=body.actor, everything=body.all, ids=body.ids)
    logger.info("[dlq] %s replayed %d dead letter(s), skipped %d", _who(request), len(done.replayed),
                len(done.skipped))
    result: dict[str, list[dict[str, Any]]] = done.asdict()
    return result


@router.post("/dlq/purge", dependencies=[operate], tags=["dead letters"], responses=answers(*WITH_BODY))
def purge_selected(request: Request, body: Selection) -> dict[str, list[dict[str, Any]]]:
    """Delete a selection of dead letters for good, as ``dlq purge`` does."""
    done = _call(purge, _settings(request), queue=body.queue, actor=body.actor, everything=body.all, ids=body.ids)
    logger.info("[dlq] %s purged %d dead letter(s)", _who(request), len(done))
    return {"purged": [d.asdict() for d in done]}


@router.post("/dlq/{message_id}/replay", dependencies=[operate], tags=["dead letters"],
             responses=answers(*WITH_BODY))
def replay_edited(request: Request, body: EditedReplay, message_id: str = MessageId) -> dict[str, Any]:
    """Replay one dead letter with edited arguments; arguments the job refuses are a 422 and nothing is sent."""
    settings = _settings(request)
    letters = run_record(get_engine(settings.database_url), message_id).letters
    if not letters:
        raise HTTPException(404, detail=f"no dead letter with message id {message_id!r}")
    check_arguments(letters[-1]["actor"], body.args, body.kwargs)
    done = _call(replay, settings, id=message_id, args=body.args, kwargs=body.kwargs)
    logger.info("[dlq] %s replayed %s with edited arguments", _who(request), message_id)
    if done.skipped:
        why = done.skipped[0].not_replayable
        raise HTTPException(409, detail=f"dead letter {message_id} cannot be replayed: {why}")
    return {"replayed": [d.asdict() for d in done.replayed]}


@router.get("/whoami", tags=["dashboard"], responses=answers(*READ))
def whoami(claims: dict[str, Any] = read) -> dict[str, Any]:
    """What the token may do: the console hides the operate buttons from a read-only token."""
    scopes = sorted(scopes_of(claims))
    return {"subject": claims.get("sub"), "scopes": scopes, "operate": "operate" in scopes,
            "expires_at": claims.get("exp")}
