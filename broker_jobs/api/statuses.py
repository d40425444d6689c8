"""The error statuses each route can answer, for the OpenAPI document (FastAPI ``responses=``).

Every ``/api/v1`` route can answer 401 (no valid token), 403 (a token without
the scope) and 503 (RabbitMQ or the database does not answer).  The rest
depend on the route: 400 for a body that cannot be parsed, 404 for an unknown schedule or dead letter, 409 for a
request the schedule's state refuses, 422 for a request that is not valid.
A test (tests/framework/api/test_hostile_requests.py) checks that every status the
running API answers under fuzzing is documented here for its route.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

DESCRIPTIONS = {
    400: "The body cannot be parsed at all (not UTF-8 JSON).",
    401: "No bearer token, or one that is malformed, expired, too long-lived or wrongly signed.",
    403: "The token lacks the scope this route needs.",
    404: "No such schedule, dead letter, actor or service.",
    409: "The request conflicts with the current state (for example a run still in flight).",
    422: "The request is not valid: `message` and `detail[].field` name the field.",
    503: "RabbitMQ or the database does not answer.",
}


class Problem(BaseModel):
    """An error answer: ``detail`` says what is wrong (a string, or a list of fields for 422)."""

    detail: Any
    message: str | None = None


def answers(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route that can answer ``codes``."""
    return {code: {"model": Problem, "description": DESCRIPTIONS[code]} for code in codes}


#: Statuses of a route that only reads.
READ = (401, 403, 503)
#: Statuses of a route that acts on a schedule or a dead letter.
WRITE = (401, 403, 404, 409, 422, 503)
#: Statuses of a route that also reads a JSON body.
WITH_BODY = (400, *WRITE)
