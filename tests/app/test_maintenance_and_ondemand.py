"""Maintenance and on-demand jobs on the stub broker: hygiene, retention, rebuilds, exports."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from broker_jobs.app.settings import get_app_settings
from broker_jobs.app.tables import Document, MergeProposal

from .conftest import JobsEnv, run_job, snapshot_db, snapshot_vectors


def fill() -> None:
    """The sample vault and CSVs in the database and the vector store (nothing enqueued)."""
    from broker_jobs.app.connectors.csv_import import import_all
    from broker_jobs.app.connectors.vault import reconcile
    from broker_jobs.app.jobs.etl import run_etl
    from broker_jobs.store.db import get_engine

    reconcile(get_engine(), get_app_settings().vault_path)
    import_all(get_app_settings(), get_engine())
    run_etl()


def engine():
    from broker_jobs.store.db import get_engine

    return get_engine()


def test_concept_hygiene_proposes_near_duplicates_and_drops_orphan_vectors(jobs_env_any_db: JobsEnv,
                                                                         jobs_broker, stub_worker):
    from broker_jobs.actors import concept_hygiene
    from broker_jobs.app.vectors import open_store

    fill()
    with Session(engine()) as session, session.begin():
        gone = session.scalar(select(Document).where(Document.path == "concepts/Dead letters.md"))
        gone_id = gone.id
        session.execute(delete(Document).where(Document.id == gone_id))  # hard delete: no tombstone
    run = run_job(jobs_broker, stub_worker, concept_hygiene)
    assert run.status == "succeeded" and run.report["deleted"] == 1
    with Session(engine()) as session:
        proposals = {(p.kind, p.source_id, p.duplicate_id) for p in session.scalars(select(MergeProposal))}
        docs = {d.path: str(d.id) for d in session.scalars(select(Document))}
    pair = tuple(sorted((docs["concepts/Vector search.md"], docs["concepts/Semantic search.md"])))
    assert ("vault_documents", *pair) in proposals
    with open_store() as store:
        assert str(gone_id) not in {str(p.payload["row_id"]) for p in store.scan("vault_documents")}
    again = run_job(jobs_broker, stub_worker, concept_hygiene)
    assert again.report["inserted"] == 0 and again.report["deleted"] == 0
    assert again.report["skipped"] == len(proposals)


def test_batch_reprocess_builds_a_new_generation_and_switches_the_alias(jobs_env: JobsEnv, jobs_broker,
                                                                       stub_worker):
    from broker_jobs.actors import batch_reprocess
    from broker_jobs.app.vectors import open_store

    fill()
    before = snapshot_vectors()
    run = run_job(jobs_broker, stub_worker, batch_reprocess)
    assert run.status == "succeeded" and run.report["collections"]["vault_documents"] == "vault_documents__g2"
    with open_store() as store:
        assert store.physical("vault_documents") == "vault_documents__g2"
        assert not store.client.collection_exists("vault_documents__g1")
    assert snapshot_vectors() == before  # same points, same vectors, new collection


def test_batch_reprocess_crashed_midway_resumes_into_the_same_new_collection(jobs_env: JobsEnv,
                                                                            monkeypatch: pytest.MonkeyPatch):
    from broker_jobs.app.entities import pipeline
    from broker_jobs.app.jobs.maintenance import run_batch_reprocess
    from broker_jobs.app.vectors import open_store

    fill()
    real = pipeline.embed_rows
    calls = {"n": 0}

    def crashing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("worker killed mid-rebuild")
        return real(*args, **kwargs)

    monkeypatch.setattr("broker_jobs.app.vectors.rebuild.embed_rows", crashing)
    with pytest.raises(RuntimeError):
        from broker_jobs.app.entities import get_entity
        from broker_jobs.app.vectors import get_embedder
        from broker_jobs.app.vectors.rebuild import rebuild

        with open_store() as store:
            rebuild(engine(), store, get_entity("vault_documents"), get_embedder(), 3)
    with open_store() as store:
        assert store.physical("vault_documents") == "vault_documents__g1"  # search still sees the whole old index
        assert store.client.count("vault_documents__g2").count == 3
    monkeypatch.setattr("broker_jobs.app.vectors.rebuild.embed_rows", real)
    report = run_batch_reprocess(["vault_documents"])
    assert report["skipped"] == 3 and report["inserted"] == 5
    with open_store() as store:
        assert store.physical("vault_documents") == "vault_documents__g2" and store.count("vault_documents") == 8


def test_system_maintenance_prunes_history_audit_and_dead_letters_and_vacuums(jobs_env_any_db: JobsEnv,
                                                                             jobs_broker, stub_worker):
    from broker_jobs.actors import system_maintenance
    from broker_jobs.store.models import dead_letters, job_runs, metadata

    old = datetime.now(UTC) - timedelta(days=40)
    with engine().begin() as conn:
        conn.execute(job_runs.insert().values(message_id="old-run", actor="x", queue="default", status="succeeded",
                                              seq=1, finished_at=old))
        conn.execute(dead_letters.insert(), [
            {"message_id": "old-dead", "actor": "x", "queue": "default", "reason": "boom", "dead_at": old},
            {"message_id": "new-dead", "actor": "x", "queue": "default", "reason": "boom",
             "dead_at": datetime.now(UTC)}])
    audit = metadata.tables.get("sched_audit")
    if audit is not None:
        with engine().begin() as conn:
            conn.execute(audit.insert(), [{"job_id": "nightly", "outcome": "fired", "recorded_at": old}])
    run = run_job(jobs_broker, stub_worker, system_maintenance)
    assert run.status == "succeeded"
    pruned = run.report["pruned"]
    assert pruned["dead_letters"] == 1 and pruned["history"] >= 1
    if audit is not None:
        assert pruned["slot_audit"] == 1
    assert run.report["healthy"] in (True, False) and {c["name"] for c in run.report["checks"]} >= {"database"}
    with engine().connect() as conn:
        assert [d.message_id for d in conn.execute(select(dead_letters))] == ["new-dead"]


def test_reprocess_documents_re_embeds_the_given_ids_and_reports_missing_ones(jobs_env: JobsEnv, jobs_broker,
                                                                             stub_worker):
    from broker_jobs.actors import reprocess_documents

    fill()
    with Session(engine()) as session:
        ids = list(session.scalars(select(Document.id).order_by(Document.id).limit(2)))
    run = run_job(jobs_broker, stub_worker, reprocess_documents, [*ids, 9999])
    assert run.status == "succeeded" and run.priority == "high"
    assert run.report["updated"] == 2 and run.report["missing_ids"] == [9999] and run.report["failed"] == 1


def test_export_data_writes_csv_or_json_files_with_a_manifest(jobs_env: JobsEnv, jobs_broker, stub_worker):
    from broker_jobs.actors import export_data

    fill()
    run = run_job(jobs_broker, stub_worker, export_data, ["documents", "companies"])
    assert run.status == "succeeded" and run.report["fetched"] == 11
    manifest = json.loads((jobs_env.exports / "manifest.json").read_text())
    assert [(f["table"], f["rows"]) for f in manifest["files"]] == [("documents", 8), ("companies", 3)]
    with (jobs_env.exports / "companies.csv").open() as handle:
        assert {row["name"] for row in csv.DictReader(handle)} == {"Acme Robotics", "Globex Energy",
                                                                   "Initech Software"}
    first = (jobs_env.exports / "documents.csv").read_bytes()
    run_job(jobs_broker, stub_worker, export_data, ["documents"], format="json")
    assert len(json.loads((jobs_env.exports / "documents.json").read_text())) == 8
    run_job(jobs_broker, stub_worker, export_data, ["documents", "companies"])
    assert (jobs_env.exports / "documents.csv").read_bytes() == first  # same data, same file


def test_export_of_an_unknown_table_dead_letters_without_retry(jobs_env: JobsEnv, jobs_broker, stub_worker):
    from broker_jobs.actors import export_data

    message = export_data.send(["nope"])
    with pytest.raises(Exception, match="unknown tables nope"):
        jobs_broker.join("default")
    stub_worker.join()
    from .conftest import run_of

    assert run_of(message.message_id).attempt == 1


def test_emergency_sync_syncs_the_vault_and_every_service_now(jobs_env: JobsEnv, jobs_broker, stub_worker):
    from broker_jobs.actors import emergency_sync
    from broker_jobs.app.connectors.services import add_service
    from broker_jobs.app.tables import ServiceLog

    add_service(engine(), "web", f"{jobs_env.apis.url}/status/web")
    run = run_job(jobs_broker, stub_worker, emergency_sync, queues=("sync", "etl"))
    assert run.status == "succeeded" and run.priority == "high"
    assert run.report["vault"]["inserted"] == 8 and run.report["services_enqueued"] == 1
    with Session(engine()) as session:
        assert len(list(session.scalars(select(ServiceLog)))) == 7


def test_every_maintenance_job_twice_leaves_the_same_stores(jobs_env: JobsEnv):
    from broker_jobs.app.jobs.maintenance import run_batch_reprocess, run_concept_hygiene, run_system_maintenance

    fill()
    run_concept_hygiene()
    run_system_maintenance()
    db, vectors = snapshot_db(), snapshot_vectors()
    run_concept_hygiene()
    run_system_maintenance()
    assert snapshot_db() == db and snapshot_vectors() == vectors
    run_batch_reprocess()
    after_rebuild = snapshot_db()
    assert snapshot_vectors() == vectors
    run_batch_reprocess()
    assert snapshot_vectors() == vectors
    marks = {k: v for k, v in after_rebuild.items() if k == "etl_watermarks"}
    assert marks  # watermarks moved back to the rebuild's start, nothing else changed
    assert {k: v for k, v in snapshot_db().items() if k != "etl_watermarks"} == \
        {k: v for k, v in db.items() if k != "etl_watermarks"}


def test_prune_history_reports_what_it_deleted(jobs_env: JobsEnv, jobs_broker, stub_worker):
    from broker_jobs.actors import prune_history
    from broker_jobs.store.models import job_runs

    with engine().begin() as conn:
        conn.execute(job_runs.insert().values(message_id="ancient", actor="x", queue="default", status="failed",
                                              seq=1, finished_at=datetime.now(UTC) - timedelta(days=30)))
    run = run_job(jobs_broker, stub_worker, prune_history)
    assert run.status == "succeeded" and run.report["deleted"] >= 1 and "duration_ms" in run.report
