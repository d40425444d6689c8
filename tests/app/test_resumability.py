"""A worker killed mid-batch: the message is redelivered to another worker, which finishes the job
with nothing lost and nothing duplicated."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

from tests.support import ROOT

from .conftest import JobsEnv, run_of, snapshot_vectors

pytestmark = pytest.mark.rabbitmq


def start_worker(crash_after: int | None = None) -> subprocess.Popen[str]:
    args = [sys.executable, "-m", "tests.app.worker_process"]
    if crash_after is not None:
        args.append(str(crash_after))
    process = subprocess.Popen(args, cwd=ROOT, env=dict(os.environ), stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    return process


def test_an_etl_worker_killed_mid_batch_is_finished_by_another_without_loss_or_duplicates(
        jobs_env: JobsEnv, rabbit_broker: Any) -> None:
    from broker_jobs.actors import etl_sync
    from broker_jobs.app.jobs.vault import run_vault_sync

    from .conftest import bind_jobs

    previous = bind_jobs(rabbit_broker)
    try:
        report = run_vault_sync()  # 8 notes; ETL_BATCH_SIZE=3 makes three batches
        assert report["inserted"] == 8
        rabbit_broker.flush_all()  # the ETL the vault sync enqueued: this test sends its own
        doomed = start_worker(crash_after=2)
        message = etl_sync.send(["vault_documents"])
        assert doomed.wait(timeout=60) == -9  # killed by SIGKILL after committing two batches
        assert len(snapshot_vectors()["vault_documents"]) == 6
        survivor = start_worker()
        try:
            run = run_of(message.message_id, timeout=60)
        finally:
            survivor.terminate()
            survivor.wait(timeout=30)
    finally:
        for actor, broker in previous.items():
            actor.broker = broker
    assert run.status == "succeeded"
    assert (run.report["fetched"], run.report["inserted"]) == (2, 2)  # only the batch never committed
    points = snapshot_vectors()["vault_documents"]
    assert len(points) == 8
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from broker_jobs.app.tables import Document
    from broker_jobs.store.db import get_engine

    with Session(get_engine()) as session:
        ids = list(session.scalars(select(Document.id)))
    assert sorted(dict(payload)["row_id"] for payload, _ in points.values()) == sorted(int(i) for i in ids)
