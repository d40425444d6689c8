"""Seed 003's concept hygiene: "Merge concept drift automatically", a dry run that only proposes, and undo."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from broker_jobs.app.settings import get_app_settings
from broker_jobs.app.tables import ConceptMerge, Document, MergeProposal
from broker_jobs.settings import get_settings
from tests.support import run_cli

from .conftest import JobsEnv, run_job, snapshot_vectors
from .test_maintenance_and_ondemand import engine, fill


def vault_row_ids() -> set[str]:
    from broker_jobs.app.vectors import open_store

    with open_store() as store:
        return {str(p.payload["row_id"]) for p in store.scan("vault_documents")}


def doc_ids() -> dict[str, str]:
    with Session(engine()) as session:
        return {d.path: str(d.id) for d in session.scalars(select(Document))}


def test_hygiene_merges_the_pairs_above_the_merge_threshold_and_keeps_the_rest_proposed(jobs_env_any_db: JobsEnv,
                                                                                        settings_env, jobs_broker,
                                                                                        stub_worker):
    from broker_jobs.actors import concept_hygiene

    # The sample vault's "Vector search" and "Semantic search" notes score 0.947 (hashing embedder), two company
    # records 0.927: a merge threshold of 0.94 merges the first pair and leaves the second a proposal.
    settings_env.setenv("MERGE_THRESHOLD", "0.94")
    get_settings.cache_clear()
    fill()
    docs = doc_ids()
    source, duplicate = sorted((docs["concepts/Vector search.md"], docs["concepts/Semantic search.md"]))
    run = run_job(jobs_broker, stub_worker, concept_hygiene)
    assert run.status == "succeeded", run.error
    assert run.report["merged"] == 1 and run.report["dry_run"] is False
    assert run.report["kinds"]["vault_documents"]["merged"] == [
        {"source_id": source, "duplicate_id": duplicate, "score": 0.9474}]
    assert duplicate not in vault_row_ids() and source in vault_row_ids()
    with Session(engine()) as session:
        statuses = {(p.kind, p.status) for p in session.scalars(select(MergeProposal))}
        [merge] = session.scalars(select(ConceptMerge)).all()
    assert statuses == {("vault_documents", "merged"), ("company_records", "open")}
    assert (merge.source_id, merge.duplicate_id, merge.undone_at) == (source, duplicate, None)
    assert len(merge.vector) == get_app_settings().embedding_dim  # what undo needs to put it back

    again = run_job(jobs_broker, stub_worker, concept_hygiene)
    assert again.report["merged"] == 0  # nothing left to merge: the second run changes nothing


def test_dry_run_only_proposes_and_names_what_it_would_merge(jobs_env: JobsEnv, settings_env, jobs_broker,
                                                            stub_worker):
    from broker_jobs.actors import concept_hygiene

    settings_env.setenv("MERGE_THRESHOLD", "0.94")
    get_settings.cache_clear()
    fill()
    before = snapshot_vectors()
    run = run_job(jobs_broker, stub_worker, concept_hygiene, dry_run=True)
    assert run.status == "succeeded" and run.report["dry_run"] is True and run.report["merged"] == 0
    [would] = run.report["kinds"]["vault_documents"]["would_merge"]
    assert would["score"] == 0.9474
    assert snapshot_vectors() == before
    with Session(engine()) as session:
        assert session.scalars(select(ConceptMerge)).all() == []
        assert {p.status for p in session.scalars(select(MergeProposal))} == {"open"}


def test_a_merge_is_undone_from_the_cli_and_never_reapplied_by_itself(jobs_env: JobsEnv, settings_env, jobs_broker,
                                                                     stub_worker):
    from broker_jobs.actors import concept_hygiene

    settings_env.setenv("MERGE_THRESHOLD", "0.94")
    get_settings.cache_clear()
    fill()
    before = snapshot_vectors()
    run_job(jobs_broker, stub_worker, concept_hygiene)
    env = {"MERGE_THRESHOLD": "0.94"}
    listed = run_cli("concepts", "merges", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert '"kind": "vault_documents"' in listed.stdout
    with Session(engine()) as session:
        [merge] = session.scalars(select(ConceptMerge)).all()
    undone = run_cli("concepts", "undo", str(merge.id), env=env)
    assert undone.returncode == 0, undone.stderr
    assert f"undid merge {merge.id}: vault_documents {merge.duplicate_id} is back" in undone.stdout
    assert snapshot_vectors() == before  # the very point, payload and vector, is back
    twice = run_cli("concepts", "undo", str(merge.id), env=env)
    assert twice.returncode == 1 and "was undone already" in twice.stderr and "Traceback" not in twice.stderr
    unknown = run_cli("concepts", "undo", "999", env=env)
    assert unknown.returncode != 0 and "no concept merge 999" in unknown.stderr
    again = run_job(jobs_broker, stub_worker, concept_hygiene)
    assert again.report["merged"] == 0 and merge.duplicate_id in vault_row_ids()
    with Session(engine()) as session:
        assert session.get(MergeProposal, merge.proposal_id).status == "undone"
