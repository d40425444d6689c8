"""The scheduler's publisher encodes each message without building a Dramatiq ``Message``:
the bytes are exactly what ``Message.encode()`` gives, so workers decode the same message."""

from __future__ import annotations

from datetime import UTC, datetime

import dramatiq
import pytest

from broker_jobs.priorities import parse_priority
from broker_jobs.scheduling.publisher import Outgoing

SLOT = datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC)

ROWS = [
    ("on time, high", dict(priority="high", slot=SLOT, delay_ms=0, args=(1, "a"), kwargs={})),
    ("jittered 1.5 s, low", dict(priority="low", slot=SLOT.replace(microsecond=250), delay_ms=1500, args=(),
                                 kwargs={"since": "2026-01-01", "full": True})),
    ("run-now without a slot", dict(priority="medium", slot=None, delay_ms=0, args=[3], kwargs={})),
]


@pytest.mark.parametrize(("what", "fields"), ROWS, ids=[r[0] for r in ROWS])
def test_the_encoded_body_is_the_dramatiq_message_encoding(what, fields):
    item = Outgoing(job_id="nightly", actor="etl_run", queue="etl", fire_id="nightly@x",
                    **{**fields, "priority": parse_priority(fields["priority"])})
    queue, body, priority = item.encoded(1_700_000_000_000)
    message = item.message(1_700_000_000_000)
    assert body == message.encode()
    assert queue == message.queue_name == ("etl.DQ" if fields["delay_ms"] else "etl")
    assert priority == message.options["broker_priority"]
    assert dramatiq.Message.decode(body) == message
