"""The message protocol: fire ids, attempts, and the names the store, metrics and wire check agree on."""

from __future__ import annotations

import typing
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker_jobs import metrics, protocol, wire
from broker_jobs.api.routes import Status
from broker_jobs.priorities import Priority
from broker_jobs.protocol import FireId, PublishOutcome, RunStatus, SlotOutcome, dead_attempts
from broker_jobs.scheduling import policies
from broker_jobs.scheduling.publisher import Outgoing
from broker_jobs.store import history

SLOT = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)


@pytest.mark.parametrize(("fire", "text", "job_id", "slot", "manual"), [
    (FireId.make("nightly", SLOT), "nightly@2026-03-01T12:30:00Z", "nightly", "2026-03-01T12:30:00Z", False),
    (FireId.make("fast", SLOT.replace(microsecond=1500)), "fast@2026-03-01T12:30:00.001500Z", "fast",
     "2026-03-01T12:30:00.001500Z", False),
    (FireId.manual("etl-high", SLOT), "etl-high@manual:2026-03-01T12:30:00Z", "etl-high",
     "manual:2026-03-01T12:30:00Z", True),
    (FireId.parse("foreign-id"), "foreign-id", "foreign-id", None, False),
    (FireId.parse("a@b@c"), "a@b@c", "a", "b@c", False),
    (FireId.parse("trailing@"), "trailing@", "trailing", "", False),
])
def test_a_fire_id_is_written_and_read_back_the_same(fire, text, job_id, slot, manual):
    assert str(fire) == text
    assert FireId.parse(text) == fire
    assert (fire.job_id, fire.slot, fire.is_manual) == (job_id, slot, manual)


@given(st.text())
def test_any_fire_id_text_round_trips_and_names_the_job_before_its_first_at(text):
    # The hand-split it replaces (``split("@", 1)[0]``) read the job id the same way.
    assert str(FireId.parse(text)) == text
    assert FireId.parse(text).job_id == text.split("@", 1)[0]


def test_the_scheduler_stamps_the_fire_id_it_makes_and_the_slot_of_its_form():
    fire = FireId.make("nightly", SLOT)
    out = Outgoing(job_id="nightly", actor="etl", queue="etl", args=(), kwargs={}, priority=Priority.HIGH,
                   fire_id=str(fire), slot=SLOT)
    options = out.fields(0)["options"]
    assert options[protocol.FIRE_ID] == str(fire) and options[protocol.SLOT] == fire.slot
    assert options[protocol.JOB_ID] == fire.job_id


def test_the_job_id_of_nothing_is_none():
    assert protocol.job_id_of(None) is None and protocol.job_id_of("") is None
    assert protocol.job_id_of("sync@2026-03-01T00:00:00Z") == "sync"


@pytest.mark.parametrize(("options", "attempts"), [
    ({}, 1),  # dead on its first delivery without a retry count (a malformed or unknown message)
    ({"retries": 0, "bj_error": "PermanentJobError: bad"}, 1),  # permanent error on the first try
    ({"retries": 2, "bj_error": "PermanentJobError: bad"}, 3),  # permanent error on the third try
    ({"retries": 1}, 1),  # max_retries=0: Retries counted the only attempt
    ({"retries": 4}, 4),  # retries exhausted: every attempt counted
    ({"retries": 4, "bj_error": ""}, 4),  # an empty note is no note
])
def test_a_dead_message_counts_its_attempts(options, attempts):
    assert dead_attempts(options) == attempts


@pytest.mark.parametrize(("options", "attempt"), [({}, 1), ({"retries": 0}, 1), ({"retries": 3}, 4)])
def test_a_delivery_knows_which_attempt_it_is(options, attempt):
    assert protocol.attempt_of(options) == attempt


def test_the_run_statuses_are_exactly_what_the_api_filters_on():
    assert set(typing.get_args(Status)) == {status.value for status in RunStatus}


def test_the_stores_terminal_statuses_are_the_protocols():
    assert set(history.TERMINAL) == {status.value for status in protocol.TERMINAL_STATUSES}


def test_every_publishing_outcome_is_a_slot_outcome_and_counts_as_published_in_the_metrics():
    assert {o.value for o in PublishOutcome} <= {o.value for o in SlotOutcome}
    assert set(metrics.PUBLISHED) == {o.value for o in PublishOutcome}
    assert "manual" in metrics.PUBLISHED
    assert set(policies.PUBLISHING) == set(metrics.PUBLISHED)
    assert set(metrics.SLOT_OUTCOMES) == {o.value for o in SlotOutcome}


def test_every_option_a_worker_reads_on_arrival_is_checked_by_the_wire():
    keys = {value for name, value in vars(protocol).items()
            if name.isupper() and not name.startswith("_") and isinstance(value, str)}
    # The slot is informative (passed through unread); in-process notes are dropped on arrival.
    read = keys - {protocol.SLOT} - set(protocol.IN_PROCESS_OPTIONS)
    assert read <= set(wire.OPTION_TYPES)
    assert wire.IN_PROCESS_OPTIONS == protocol.IN_PROCESS_OPTIONS
