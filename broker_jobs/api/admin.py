"""``/api/admin/schedulers``: every group's scheduler in seed 001's shape, and pausing or resuming them.

All behind the ``operate`` scope (scheduler management).  ``{group}`` is a group of the jobs file
(``default`` for jobs that name none) or ``all`` for the whole scheduler.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from ..scheduling import control, groups
from .auth import require
from .routes import Text, _call, _settings
from .statuses import WITH_BODY, WRITE, answers

operate = Depends(require("operate"))
router = APIRouter(prefix="/api/admin")

#: A group, or ``all``.
Group = Path(pattern=groups.PATTERN.pattern, description="A group of the jobs file, or `all` for every job.")


class SchedulerPause(BaseModel):
    """Why the scheduler is paused (shown beside it)."""

    model_config = ConfigDict(extra="forbid")
    note: Text | None = Field(None, min_length=1, max_length=500, description="Why; shown in listings.")


def _group(group: str) -> str | None:
    return None if group == groups.EVERYTHING else group


@router.get("/schedulers", dependencies=[operate], tags=["admin"], responses=answers(*WRITE))
def list_schedulers(request: Request) -> dict[str, Any]:
    """Every group's scheduler: ``healthy``, ``status``, ``timestamp``, ``schedulers`` {total, running, paused,
    errors} and ``details`` per group {status RUNNING|PAUSED|STOPPED|ERROR, healthy, lastSuccess, leader, ...}."""
    return _call(control.schedulers, _settings(request))


@router.post("/schedulers/{group}/pause", dependencies=[operate], tags=["admin"], responses=answers(*WITH_BODY))
def pause_scheduler(request: Request, group: str = Group, body: SchedulerPause | None = None) -> dict[str, Any]:
    """Pause one group's scheduler (``all``: the whole scheduler) on every instance; slots are recorded paused."""
    return _call(control.pause_scheduler, _settings(request), _group(group), (body or SchedulerPause()).note)


@router.post("/schedulers/{group}/resume", dependencies=[operate], tags=["admin"], responses=answers(*WRITE))
def resume_scheduler(request: Request, group: str = Group) -> dict[str, Any]:
    """Resume one group's scheduler (``all``: the whole scheduler) from its next slot."""
    return _call(control.resume_scheduler, _settings(request), _group(group))
