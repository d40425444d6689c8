"""Every job through a real Dramatiq worker on RabbitMQ, twice: each succeeds, the second round changes nothing."""

from __future__ import annotations

from typing import Any

import dramatiq
import pytest

from tests.support import FakeApis

from .conftest import DATA_TABLES, JobsEnv, bind_jobs, run_of, snapshot_db, snapshot_vectors

pytestmark = pytest.mark.rabbitmq

QUEUES = ("sync", "etl", "maintenance", "default")


def drain(broker: Any, worker: dramatiq.Worker) -> None:
    """Wait until every queue (and what jobs enqueued on others) is empty and the worker idle."""
    for _ in range(2):  # a job on one queue may enqueue on another already joined
        for queue in QUEUES:
            broker.join(queue, min_successes=2, idle_time=50, timeout=60_000)
        worker.join()


def round_of_jobs(broker: Any, worker: dramatiq.Worker, service_id: int) -> dict[str, Any]:
    from broker_jobs import actors

    sent = {
        "vault_sync": actors.vault_sync.send(),
        "csv_import": actors.csv_import.send(),
        "github_ingest": actors.github_ingest.send(),
        "spotify_ingest": actors.spotify_ingest.send(),
        "sync_all_services": actors.sync_all_services.send(),
        "sync_service": actors.sync_service.send(service_id),
    }
    drain(broker, worker)
    sent["etl_sync"] = actors.etl_sync.send()
    sent["reprocess_documents"] = actors.reprocess_documents.send([1, 2])
    sent["export_data"] = actors.export_data.send(["documents", "companies"], format="json")
    sent["emergency_sync"] = actors.emergency_sync.send()
    drain(broker, worker)
    sent["concept_hygiene"] = actors.concept_hygiene.send()
    sent["system_maintenance"] = actors.system_maintenance.send()
    sent["prune_history"] = actors.prune_history.send()
    drain(broker, worker)
    sent["batch_reprocess"] = actors.batch_reprocess.send()
    drain(broker, worker)
    return {name: run_of(message.message_id) for name, message in sent.items()}


def test_every_job_succeeds_on_a_real_worker_and_a_second_round_changes_nothing(
        jobs_env: JobsEnv, apis: FakeApis, rabbit_broker: Any) -> None:
    from broker_jobs.app.connectors.services import add_service
    from broker_jobs.store.db import get_engine

    service_id = add_service(get_engine(), "web", f"{apis.url}/status/web")
    previous = bind_jobs(rabbit_broker)
    worker = dramatiq.Worker(rabbit_broker, worker_threads=2, worker_timeout=100)
    worker.start()
    try:
        first = round_of_jobs(rabbit_broker, worker, service_id)
        assert {name: run.status for name, run in first.items()} == dict.fromkeys(first, "succeeded")
        assert first["vault_sync"].report["inserted"] == 8
        assert first["github_ingest"].report["inserted"] == 5
        assert first["spotify_ingest"].report["inserted"] == 13
        assert first["csv_import"].report["inserted"] == 11
        assert first["sync_all_services"].report["enqueued"] == 1
        assert first["batch_reprocess"].report["fetched"] == 8 + 5 + 13 + 11 + 7
        db, vectors = snapshot_db(), snapshot_vectors()
        assert sum(len(points) for points in vectors.values()) == 8 + 5 + 13 + 11 + 7

        second = round_of_jobs(rabbit_broker, worker, service_id)
        assert {name: run.status for name, run in second.items()} == dict.fromkeys(second, "succeeded")
        for name in ("vault_sync", "github_ingest", "spotify_ingest", "csv_import", "sync_service"):
            report = second[name].report
            assert report["inserted"] == report["updated"] == report["deleted"] == 0, name
        assert snapshot_vectors() == vectors
        # A rebuild moves each watermark back to its start on purpose; every other row is unchanged.
        steady = [t for t in DATA_TABLES if t != "etl_watermarks"]
        again = snapshot_db()
        assert {t: again[t] for t in steady} == {t: db[t] for t in steady}
    finally:
        worker.stop()
        for actor, broker in previous.items():
            actor.broker = broker
