"""Behaviour of jobs declared with @job, on the StubBroker with the full middleware stack."""

from __future__ import annotations

import uuid
from typing import Any

import dramatiq
import pytest
from pydantic import BaseModel

from broker_jobs import job, registry
from broker_jobs.errors import PermanentJobError, SkipJob, TransientJobError
from broker_jobs.store.db import get_engine
from broker_jobs.store.history import writer
from broker_jobs.store.models import dead_letters
from broker_jobs.store.queries import query_runs
from tests.support import wait_for


def unique(name: str) -> str:
    return f"{name}_{uuid.uuid4().hex[:8]}"


def runs_of(actor: str, expected: int = 1) -> list:
    """The actor's runs, once ``expected`` of them are finished (the worker's last acks recorded)."""
    def finished() -> list | None:
        writer.flush()
        runs = query_runs(get_engine(), actor=actor, limit=100)
        return runs if sum(r.status not in ("running", "retrying") for r in runs) >= expected else None

    return wait_for(finished, f"{expected} finished run(s) of {actor}", timeout=10, every=0.02)


def dead_letters_of(actor: str) -> list[Any]:
    """The actor's archived dead letters, once the worker has archived them."""
    from sqlalchemy import select

    def archived() -> list[Any]:
        writer.flush()
        with get_engine().connect() as conn:
            return list(conn.execute(select(dead_letters).where(dead_letters.c.actor == actor)))

    return wait_for(archived, f"a dead letter of {actor}", timeout=10, every=0.02)


def test_a_job_runs_and_its_report_is_kept_on_the_history_entry(stub_broker, stub_worker):
    name = unique("report")

    @job(name=name, broker=stub_broker)
    def work(count: int) -> dict:
        return {"fetched": count, "inserted": count - 1}

    message = work.send(3)
    stub_broker.join("default")
    stub_worker.join()
    [run] = runs_of(name)
    assert run.message_id == message.message_id
    assert run.status == "succeeded"
    assert run.report == {"fetched": 3, "inserted": 2}
    assert run.attempt == 1
    assert run.duration_ms is not None and run.worker


def test_arguments_are_validated_and_coerced_before_the_body_runs(stub_broker, stub_worker):
    name, seen = unique("coerce"), []

    @job(name=name, broker=stub_broker)
    def work(limit: int, tags: list[str] | None = None) -> None:
        seen.append((limit, tags))

    work.send("5", tags=["a"])
    stub_broker.join("default")
    stub_worker.join()
    assert seen == [(5, ["a"])]


@pytest.mark.parametrize(
    ("args", "kwargs", "reason"),
    [
        (("many",), {}, "argument 'limit'"),
        ((), {}, "missing a required argument: 'limit'"),
        ((1,), {"bogus": True}, "unexpected keyword argument 'bogus'"),
    ],
)
def test_invalid_arguments_are_dead_lettered_at_once_with_the_reason(stub_broker, stub_worker, args, kwargs, reason):
    name, calls = unique("invalid"), []

    @job(name=name, broker=stub_broker, max_retries=5)
    def work(limit: int) -> None:
        calls.append(limit)

    work.send_with_options(args=args, kwargs=kwargs)
    stub_broker.join("default", fail_fast=False)
    stub_worker.join()
    assert calls == []
    assert len(stub_broker.dead_letters) == 1
    [run] = runs_of(name)
    assert run.status == "dead" and run.attempt == 1
    assert reason in run.error
    [letter] = dead_letters_of(name)
    assert reason in letter.reason and letter.attempts == 1 and letter.traceback


def test_an_explicit_argument_model_is_used(stub_broker, stub_worker):
    class Args(BaseModel):
        source: str
        limit: int = 10

    name, seen = unique("model"), []

    @job(name=name, broker=stub_broker, args_model=Args)
    def work(source, limit=10):
        seen.append((source, limit))

    work.send("github", limit="7")
    work.send(source=42)  # not a str: dead-lettered
    stub_broker.join("default", fail_fast=False)
    stub_worker.join()
    assert seen == [("github", 7)]
    assert len(stub_broker.dead_letters) == 1


def test_a_message_for_an_unknown_actor_is_dead_lettered_and_the_worker_keeps_running(stub_broker, stub_worker):
    name, seen = unique("after"), []

    @job(name=name, broker=stub_broker)
    def work() -> None:
        seen.append(1)

    ghost_actor = unique("no_such_actor")
    ghost = dramatiq.Message(queue_name="default", actor_name=ghost_actor, args=(), kwargs={}, options={})
    stub_broker.enqueue(ghost)
    work.send()
    stub_broker.join("default", fail_fast=False)
    stub_worker.join()
    assert seen == [1]
    assert [m.actor_name for m in stub_broker.dead_letters] == [ghost_actor]
    [ghost_run] = runs_of(ghost_actor)
    assert ghost_run.message_id == ghost.message_id
    assert ghost_run.status == "dead" and f"unknown actor {ghost_actor!r}" in ghost_run.error


def test_transient_errors_are_retried_with_backoff_until_success(stub_broker, stub_worker):
    name, attempts = unique("flaky"), []

    @job(name=name, broker=stub_broker, max_retries=3, min_backoff=0.01)
    def work() -> None:
        attempts.append(1)
        if len(attempts) < 3:
            raise TransientJobError("blip")

    work.send()
    stub_broker.join("default")
    stub_worker.join()
    assert len(attempts) == 3
    [run] = runs_of(name)
    assert run.status == "succeeded" and run.attempt == 3


def test_a_job_failing_every_try_is_dead_lettered_after_its_retries_with_its_traceback(stub_broker, stub_worker):
    name, attempts = unique("poison"), []

    @job(name=name, broker=stub_broker, max_retries=2, min_backoff=0.01)
    def work() -> None:
        attempts.append(1)
        raise RuntimeError("always broken")

    work.send()
    stub_broker.join("default", fail_fast=False)
    stub_worker.join()
    assert len(attempts) == 3
    [run] = runs_of(name)
    assert run.status == "dead" and run.attempt == 3 and "always broken" in run.error
    [letter] = dead_letters_of(name)
    assert letter.attempts == 3 and "RuntimeError: always broken" in letter.traceback


def test_a_permanent_error_is_never_retried(stub_broker, stub_worker):
    name, attempts = unique("permanent"), []

    @job(name=name, broker=stub_broker, max_retries=5, min_backoff=0.01)
    def work() -> None:
        attempts.append(1)
        raise PermanentJobError("bad input file")

    work.send()
    stub_broker.join("default", fail_fast=False)
    stub_worker.join()
    assert len(attempts) == 1
    assert runs_of(name)[0].status == "dead"


def test_skip_job_ends_the_run_as_skipped_with_its_reason(stub_broker, stub_worker):
    name = unique("skip")

    @job(name=name, broker=stub_broker)
    def work() -> None:
        raise SkipJob("spotify: SPOTIFY_REFRESH_TOKEN not set")

    work.send()
    stub_broker.join("default")
    stub_worker.join()
    [run] = runs_of(name)
    assert run.status == "skipped" and "SPOTIFY_REFRESH_TOKEN" in run.error
    assert stub_broker.dead_letters == []


def test_every_message_carries_a_priority_from_the_job_or_the_send(stub_broker):
    @job(name=unique("prio"), broker=stub_broker, priority="low")
    def work() -> None: ...

    assert work.send().options["broker_priority"] == 1
    assert work.send_with_options(priority="high").options["broker_priority"] == 9
    assert work.send_with_options(priority=2).options["priority"] == "medium"


def test_a_second_message_for_the_same_schedule_slot_is_dropped(stub_broker, stub_worker):
    name, runs = unique("slot"), []

    @job(name=name, broker=stub_broker)
    def work() -> None:
        runs.append(1)

    first = work.send_with_options(fire_id=f"{name}@2026-01-01T10:00:00Z")
    second = work.send_with_options(fire_id=f"{name}@2026-01-01T10:00:00Z")
    work.send_with_options(fire_id=f"{name}@2026-01-01T10:05:00Z")
    stub_broker.join("default")
    stub_worker.join()
    assert len(runs) == 2
    statuses = {r.message_id: r.status for r in runs_of(name, expected=3)}
    assert statuses[first.message_id] == "succeeded"
    assert statuses[second.message_id] == "skipped"


def test_a_job_over_its_rate_limit_is_delayed_not_failed(stub_broker, stub_worker):
    name, runs = unique("limited"), []

    @job(name=name, broker=stub_broker, rate_limit="2/1s")
    def work(i: int) -> None:
        runs.append(i)

    for i in range(5):
        work.send(i)
    stub_broker.join("default")
    stub_worker.join()
    assert sorted(runs) == [0, 1, 2, 3, 4]
    assert stub_broker.dead_letters == []
    assert {r.status for r in runs_of(name, expected=5)} == {"succeeded"}


def test_jobs_are_listed_in_the_registry(stub_broker):
    name = unique("listed")

    @job(name=name, broker=stub_broker, queue="etl", priority="high", description="Listed job")
    def work() -> None: ...

    assert registry.has(name)
    spec = registry.get(name)
    assert (spec.queue, spec.priority.label, spec.description) == ("etl", "high", "Listed job")
    assert name in [s.name for s in registry.list()]


def test_a_bad_rate_limit_is_refused_at_declaration(stub_broker):
    with pytest.raises(ValueError, match="invalid rate limit"):
        @job(name=unique("bad"), broker=stub_broker, rate_limit="often")
        def work() -> None: ...
