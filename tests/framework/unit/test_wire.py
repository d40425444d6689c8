"""What every publisher of ours produces passes the workers' message check; the check names the field."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from dramatiq.message import Message

from broker_jobs import wire
from broker_jobs.priorities import Priority
from broker_jobs.scheduling.publisher import Outgoing


def body(**overrides: Any) -> bytes:
    fields = {"queue_name": "default", "actor_name": "diagnostics", "args": [], "kwargs": {}, "options": {},
              "message_id": str(uuid.uuid4()), "message_timestamp": 1_700_000_000_000, **overrides}
    return json.dumps(fields).encode()


def test_a_retried_message_with_dramatiqs_bookkeeping_is_accepted():
    message = Message(queue_name="default.DQ", actor_name="diagnostics", args=(1, "a"), kwargs={"k": [1]},
                      options={"retries": 3, "traceback": "Traceback ...", "requeue_timestamp": 1_700_000_000_000,
                               "eta": 1_700_000_060_000, "bj_eta": 1_700_000_900_000, "priority": "high",
                               "broker_priority": 9, "fire_id": "job@2026-01-01T00:00:00Z", "deferrals": 1,
                               "replay_of": str(uuid.uuid4()), "pipe_target": None, "on_failure": "other",
                               "max_retries": 20, "min_backoff": 15000, "max_backoff": 604800000,
                               "time_limit": 600000, "max_age": 3600000, "anything_else": {"x": [1, None]}})
    parsed = wire.parse(message.encode(), "default.DQ", 1_048_576)
    assert isinstance(parsed, Message) and parsed == message


def test_the_schedulers_message_is_accepted():
    out = Outgoing(job_id="etl-high", actor="etl_sync", queue="etl", args=(), kwargs={"entities": ["a"]},
                   priority=Priority.HIGH, fire_id="etl-high@2026-01-01T00:00:00Z",
                   slot=datetime(2026, 1, 1, tzinfo=UTC), delay_ms=500)
    queue, encoded, _ = out.encoded(1_700_000_000_000)
    assert isinstance(wire.parse(encoded, queue), Message)


def test_options_only_a_worker_sets_are_dropped_on_arrival():
    parsed = wire.parse(body(options={"bj_outcome": "deferred", "bj_error": "x", "bj_report": {"ok": True}}))
    assert isinstance(parsed, Message) and parsed.options == {}


@pytest.mark.parametrize(("raw", "reason"), [
    (b"\xff\xfe", "undecodable body: not a Dramatiq message"),
    (b"[1, 2]", "undecodable body: not a Dramatiq message (a JSON list)"),
    (body(args={"a": 1}), "malformed message: args: Input should be a valid list (got dict)"),
    (body(kwargs=[1]), "malformed message: kwargs: Input should be a valid dictionary"),
    (body(options=[]), "malformed message: options: Input should be a valid dictionary"),
    (body(message_id=7), "malformed message: message_id: Input should be a valid string (got int)"),
    (body(message_id="m" * 65), "malformed message: message_id: "),
    (body(actor_name=["a"]), "malformed message: actor_name: "),
    (body(message_timestamp="now"), "malformed message: message_timestamp: "),
    (body(message_timestamp=10**20), "malformed message: message_timestamp: "),
    (body(options={"retries": "3"}), "malformed message: options.retries: "),
    (body(options={"retries": True}), "malformed message: options.retries: "),
    (body(options={"eta": "soon"}), "malformed message: options.eta: "),
    (body(options={"priority": "urgent"}), "malformed message: options.priority: "),
    (body(options={"broker_priority": 300}), "malformed message: options.broker_priority: "),
    (body(options={"fire_id": ["x"]}), "malformed message: options.fire_id: "),
    (body(options={"fire_id": "a\x00b"}), "malformed message: options.fire_id: Value error, contains a NUL"),
    (body(options={"throws": "ValueError"}), "malformed message: options.throws: "),
    (body(options={"min_backoff": None}), "malformed message: options.min_backoff: "),
    (body(extra=1), "malformed message: extra: unknown field"),
    (body(queue_name="etl"), "malformed message: queue_name: names 'etl', not the queue 'default'"),
])
def test_a_malformed_body_gets_a_reason_naming_its_field(raw: bytes, reason: str):
    parsed = wire.parse(raw, "default", 1_048_576)
    assert isinstance(parsed, wire.Malformed)
    assert parsed.reason.startswith(reason), parsed.reason
    assert 0 < len(parsed.id) <= wire.MAX_ID


def test_a_body_over_the_limit_is_malformed_under_its_own_message_id():
    raw = body(args=["x" * 2000], message_id="m-1")
    parsed = wire.parse(raw, "default", 1024)
    assert isinstance(parsed, wire.Malformed) and parsed.id == "m-1"
    assert parsed.reason == f"malformed message: body: {len(raw)} bytes, over MAX_MESSAGE_BYTES=1024"
