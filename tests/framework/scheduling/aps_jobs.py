"""A job the engine tests run in a real ``dramatiq broker_jobs.actors`` worker (listed in their jobs file's
``modules:``): it does nothing; the worker's history records each run with its fire id."""

from __future__ import annotations

from broker_jobs import job


@job(queue="aps_it", max_retries=0)
def aps_beat(tag: str = "") -> dict[str, str]:
    """Return the tag (the history's report)."""
    return {"tag": tag}
