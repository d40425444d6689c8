"""What the worker-side middleware counts, on the stub broker (in this process's export)."""

from __future__ import annotations

import time
import uuid

from prometheus_client.parser import text_string_to_metric_families

from broker_jobs import job, metrics
from broker_jobs.errors import PermanentJobError
from tests.support import wait_for


def exported() -> dict[tuple[str, frozenset], float]:
    body, _ = metrics.render()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(body.decode()) for s in family.samples}


def count(name: str, **labels: str) -> float:
    return exported().get((name, frozenset(labels.items())), 0.0)


def test_a_run_over_its_rate_limit_is_counted_as_rate_limited_not_failed(stub_broker, stub_worker):
    name = f"limited_{uuid.uuid4().hex[:8]}"

    @job(name=name, broker=stub_broker, rate_limit="1/m")
    def limited() -> None:
        pass

    limited.send()
    limited.send()
    wait_for(lambda: count("broker_jobs_rate_limited_total", queue="default", actor=name) == 1,
             "the run over the limit counted as rate limited", timeout=10, every=0.02)
    wait_for(lambda: count("broker_jobs_job_runs_total", queue="default", actor=name, status="succeeded") == 1,
             "the run within the limit counted as succeeded", timeout=10, every=0.02)
    assert count("broker_jobs_dead_lettered_total", queue="default", actor=name) == 0
    stub_broker.flush_all()


def test_outcomes_are_counted_and_a_scheduled_success_is_timestamped(stub_broker, stub_worker):
    name = f"mixed_{uuid.uuid4().hex[:8]}"

    @job(name=name, broker=stub_broker, max_retries=0)
    def mixed(fail: bool) -> None:
        if fail:
            raise PermanentJobError("no")

    before = time.time()
    mixed.send_with_options(args=(False,), fire_id=f"{name}-schedule@2026-01-01T10:05:00Z")
    mixed.send(True)
    stub_broker.join("default", fail_fast=False)
    stub_worker.join()
    labels = {"queue": "default", "actor": name}
    wait_for(lambda: count("broker_jobs_dead_lettered_total", **labels) == 1, "the failed run counted as dead lettered",
             timeout=10, every=0.02)
    # Counts of finished runs are applied once a second (metrics/batch.py).
    wait_for(lambda: count("broker_jobs_job_runs_total", status="succeeded", **labels) == 1,
             "the succeeded run counted", timeout=10, every=0.05)
    assert count("broker_jobs_job_runs_total", status="dead", **labels) == 1
    assert count("broker_jobs_schedule_last_success_timestamp", job=f"{name}-schedule") >= before
