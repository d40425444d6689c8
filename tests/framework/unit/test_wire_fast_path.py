"""The message check's fast path accepts only what the full check accepts, and takes the usual bodies."""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, datetime
from typing import Any

from dramatiq.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from broker_jobs import wire
from broker_jobs.priorities import Priority
from broker_jobs.scheduling.publisher import Outgoing

#: Values around every edge the full check draws: lengths, ranges, types, text it cannot store.
edge_text = st.one_of(
    st.text(max_size=5),
    st.text(alphabet=st.characters(codec="ascii"), min_size=60, max_size=70),
    st.text(alphabet=st.characters(codec="ascii"), min_size=195, max_size=205),
    st.text(alphabet=st.characters(codec="ascii"), min_size=295, max_size=305),
    st.sampled_from(["", "a\x00b", "\ud800", "high", "medium", "low", "High", " low ", "1", "3", "default",
                     "default.DQ", str(uuid.uuid4())]),
)
#: Every numeric edge of the check: the ranges' ends, floats that are no number, booleans.
NUMBERS = [-1, 0, 1, 3, 4, 255, 256, 999_999, 1_000_000, 1_000_001, wire.MAX_MILLIS, wire.MAX_MILLIS + 1,
           -1.0, -0.0, 0.5, 1e300, float(wire.MAX_MILLIS), math.nextafter(wire.MAX_MILLIS, math.inf),
           math.nan, math.inf, -math.inf, True, False]
boundaries = st.sampled_from(NUMBERS)
edge_number = st.one_of(
    boundaries,
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
)
edge_value = st.one_of(st.none(), edge_text, edge_number, st.just([]), st.just({}), st.just([1]), st.just({"a": 1}))
option_key = st.one_of(st.sampled_from(sorted(wire.OPTION_TYPES)), st.sampled_from(["anything_else", "x"]))
options = st.one_of(st.dictionaries(option_key, edge_value, max_size=6), edge_value)


@st.composite
def bodies(draw: st.DrawFn) -> dict[str, Any]:
    """A valid body with one to three things changed: a field or an option set to an edge value,
    a field dropped, or a field added."""
    fields: dict[str, Any] = {
        "queue_name": "default", "actor_name": "diagnostics", "args": [1, "a"], "kwargs": {"k": 1},
        "options": {"retries": 1, "priority": "medium", "broker_priority": 5}, "message_id": str(uuid.uuid4()),
        "message_timestamp": 1_700_000_000_000,
    }
    for _ in range(draw(st.integers(1, 3))):
        change = draw(st.sampled_from(["field", "option", "option", "option", "options", "drop", "add"]))
        if change == "field":
            fields[draw(st.sampled_from(sorted(fields)))] = draw(edge_value)
        elif change == "option" and isinstance(fields.get("options"), dict):
            fields["options"][draw(option_key)] = draw(st.one_of(boundaries, edge_value))
        elif change == "options":
            fields["options"] = draw(options)
        elif change == "drop" and fields:
            fields.pop(draw(st.sampled_from(sorted(fields))))
        elif change == "add":
            fields["extra"] = 1
    return fields


def accepted_by_the_full_check(fields: dict[str, Any]) -> bool:
    try:
        wire.Body.model_validate(fields)
    except ValidationError:
        return False
    return True


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies())
def test_the_fast_path_never_accepts_a_body_the_full_check_refuses(fields: dict[str, Any]) -> None:
    if wire._plainly_valid(fields):
        assert accepted_by_the_full_check(fields), fields


def test_what_our_publishers_and_plain_dramatiq_send_takes_the_fast_path() -> None:
    sent = Message(queue_name="default", actor_name="diagnostics", args=("a", 1, 0.5), kwargs={},
                   options={"broker_priority": 5, "priority": "medium", "fire_id": None, "retries": 2,
                            "max_retries": 20, "min_backoff": 15000, "time_limit": 600000.0,
                            "eta": 1_700_000_060_000, "traceback": "Traceback ...", "anything_else": [1]},
                   message_id=str(uuid.uuid4()), message_timestamp=1_700_000_000_000)
    scheduled = Outgoing(job_id="etl-high", actor="etl_sync", queue="etl", args=(), kwargs={"entities": ["a"]},
                         priority=Priority.HIGH, fire_id="etl-high@2026-01-01T00:00:00Z",
                         slot=datetime(2026, 1, 1, tzinfo=UTC), delay_ms=500).encoded(1_700_000_000_000)[1]
    for body in (sent.encode(), scheduled):
        assert wire._plainly_valid(json.loads(body)), body


def test_a_body_the_fast_path_does_not_know_still_gets_the_full_check_and_its_reason() -> None:
    body = json.dumps({"queue_name": "default", "actor_name": "diagnostics", "args": [], "kwargs": {},
                       "options": {"priority": "HIGH ", "on_failure": 7}, "message_id": "m",
                       "message_timestamp": 1}).encode()
    parsed = wire.parse(body, "default")
    assert isinstance(parsed, wire.Malformed)
    assert parsed.reason.startswith("malformed message: options.on_failure: ")


EDGE_VALUES = [None, "", "a", "a\x00b", "\ud800", "é", "high", "HIGH", " low ", "1", "x" * 64, "x" * 65,
               "x" * 200, "x" * 201, "x" * 300, "x" * 301, [], {}, [1], {"a": 1}, *NUMBERS]
VALID = {"queue_name": "default", "actor_name": "diagnostics", "args": [1], "kwargs": {"k": 1}, "options": {},
         "message_id": "m-1", "message_timestamp": 1_700_000_000_000}


def test_every_edge_value_of_every_field_and_option_is_judged_as_the_full_check_judges_it() -> None:
    wrong = []
    for value in EDGE_VALUES:
        for name in VALID:
            fields = {**VALID, name: value}
            if wire._plainly_valid(fields) and not accepted_by_the_full_check(fields):
                wrong.append((name, value))
        for key in wire.OPTION_TYPES:
            fields = {**VALID, "options": {key: value}}
            if wire._plainly_valid(fields) and not accepted_by_the_full_check(fields):
                wrong.append((f"options.{key}", value))
    assert wrong == []
