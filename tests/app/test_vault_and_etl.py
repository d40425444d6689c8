"""Vault sync and ETL: notes -> documents -> vectors, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from broker_jobs.app.connectors.vault import NoteError, parse_note, split_front_matter, wiki_links
from broker_jobs.app.tables import Document, DocumentLink

from .conftest import JobsEnv, run_job, snapshot_db, snapshot_vectors


def documents() -> dict[str, Document]:
    from broker_jobs.store.db import get_engine

    with Session(get_engine()) as session:
        return {d.path: d for d in session.scalars(select(Document))}


def vector_titles(kind: str = "vault_documents") -> dict[str, str]:
    from broker_jobs.app.vectors import open_store

    with open_store() as store:
        return {str(p.payload["row_id"]): p.payload["title"] for p in store.scan(kind)}


def test_front_matter_and_wiki_links_are_parsed():
    note = parse_note("a/b.md", b"---\ntitle: B\ntags: [x, y]\naliases: beta\n---\n# Ignored\n"
                                b"See [[C]], [[D#part|label]] and [[C]] again.\n")
    assert (note.title, note.tags, note.aliases) == ("B", ["x", "y"], ["beta"])
    assert note.links == ["C", "D"]
    assert wiki_links("no links") == []
    assert split_front_matter("plain text") == ({}, "plain text")
    assert parse_note("n.md", b"# Heading title\nbody").title == "Heading title"
    assert parse_note("stem.md", b"body only").title == "stem"


def test_bad_front_matter_is_a_note_error():
    with pytest.raises(NoteError, match="front matter"):
        parse_note("bad.md", b"---\ntitle: [unclosed\n---\nbody")
    with pytest.raises(NoteError, match="not closed"):
        parse_note("bad.md", b"---\ntitle: x\nbody")


def test_vault_sync_fills_documents_records_broken_links_and_etl_embeds_them(jobs_env_any_db: JobsEnv,
                                                                            jobs_broker, stub_worker):
    from broker_jobs.actors import vault_sync

    run = run_job(jobs_broker, stub_worker, vault_sync, queues=("etl",))
    assert run.status == "succeeded"
    assert run.report["inserted"] == 8 and run.report["failed"] == 0
    assert run.report["broken_links"] == 2
    assert sorted(run.report["broken"]) == ["Index.md -> [[Reranking]]", "projects/Scheduling.md -> [[Leases]]"]
    docs = documents()
    assert docs["concepts/Vector search.md"].tags == ["search", "embeddings"]
    assert vector_titles() == {str(d.id): d.title for d in docs.values()}  # the enqueued ETL ran
    from broker_jobs.store.db import get_engine

    with Session(get_engine()) as session:
        link = session.scalar(select(DocumentLink).where(DocumentLink.target == "projects/Broker jobs"))
        assert link is not None and link.target_id == docs["projects/Broker jobs.md"].id and not link.broken


def test_changed_new_and_deleted_notes_reach_the_vector_store(jobs_env_any_db: JobsEnv):
    from broker_jobs.app.jobs.etl import run_etl
    from broker_jobs.app.jobs.vault import run_vault_sync

    run_vault_sync()
    run_etl()
    vault = jobs_env_any_db.vault
    (vault / "concepts" / "Dead letters.md").unlink()
    (vault / "Index.md").write_text("---\ntitle: Home\n---\nNow links [[Leases]] and [[Reranking]].\n")
    (vault / "Leases.md").write_text("# Leases\nA lease keeps one scheduler active.\n")
    (vault / ".obsidian").mkdir()
    (vault / ".obsidian" / "ignored.md").write_text("# not a note")

    report = run_vault_sync()
    assert (report["inserted"], report["updated"], report["deleted"], report["skipped"]) == (1, 1, 1, 6)
    assert report["broken_links"] == 2  # Reranking from Index; Dead letters from Message broker; Leases resolved
    etl = run_etl(["vault_documents"])
    assert (etl["inserted"], etl["updated"], etl["deleted"]) == (1, 1, 1)
    docs = documents()
    assert docs["concepts/Dead letters.md"].deleted
    titles = vector_titles()
    assert str(docs["concepts/Dead letters.md"].id) not in titles
    assert titles[str(docs["Index.md"].id)] == "Home"
    assert titles[str(docs["Leases.md"].id)] == "Leases"


def test_a_note_with_bad_front_matter_fails_alone(jobs_env: JobsEnv):
    from broker_jobs.app.jobs.vault import run_vault_sync

    (jobs_env.vault / "Broken.md").write_text("---\ntitle: [oops\n---\nbody\n")
    report = run_vault_sync()
    assert report["failed"] == 1 and report["inserted"] == 8
    assert "Broken.md" in report["errors"]


def test_vault_sync_and_etl_twice_leave_the_same_stores(jobs_env_any_db: JobsEnv):
    from broker_jobs.app.jobs.etl import run_etl
    from broker_jobs.app.jobs.vault import run_vault_sync

    run_vault_sync()
    run_etl()
    db, vectors = snapshot_db(), snapshot_vectors()
    again = run_vault_sync()
    etl = run_etl()
    assert again["skipped"] == 8 and again["inserted"] == again["updated"] == 0
    assert etl["fetched"] == 0
    assert snapshot_db() == db and snapshot_vectors() == vectors


def test_etl_crashed_mid_batch_resumes_without_loss_or_duplicates(jobs_env_any_db: JobsEnv,
                                                                 monkeypatch: pytest.MonkeyPatch):
    from broker_jobs.app.jobs import etl
    from broker_jobs.app.jobs.vault import run_vault_sync

    run_vault_sync()

    def crash(batch: int) -> None:
        if batch == 2:
            raise RuntimeError("worker killed")

    monkeypatch.setattr(etl, "batch_hook", crash)
    with pytest.raises(RuntimeError, match="killed"):
        etl.run_etl(["vault_documents"])
    assert len(vector_titles()) == 6  # two batches of ETL_BATCH_SIZE=3 were committed
    monkeypatch.setattr(etl, "batch_hook", None)
    report = etl.run_etl(["vault_documents"])
    assert report["fetched"] == 2 and report["inserted"] == 2
    assert sorted(vector_titles()) == sorted(str(d.id) for d in documents().values())


def test_a_user_entity_declared_in_the_entities_file_is_embedded(jobs_env: JobsEnv):
    from sqlalchemy import text

    from broker_jobs.app.jobs.etl import run_etl
    from broker_jobs.store.db import get_engine

    with get_engine().begin() as conn:
        conn.execute(text("CREATE TABLE recipes (id INTEGER PRIMARY KEY, name TEXT, steps TEXT, cuisine TEXT,"
                          " updated_at TIMESTAMP, deleted BOOLEAN DEFAULT 0)"))
        conn.execute(text("INSERT INTO recipes VALUES (1, 'Ramen', 'boil noodles', 'japanese', "
                          "'2026-01-01 10:00:00', 0), (2, 'Tacos', 'warm tortillas', 'mexican', "
                          "'2026-01-01 11:00:00', 0)"))
    Path(jobs_env.root / "entities.yaml").write_text(
        "entities:\n  - kind: recipes\n    table: recipes\n    text: \"{name}: {steps}\"\n"
        "    payload: [name, cuisine]\n")
    report = run_etl(["recipes"])
    assert report["inserted"] == 2
    from broker_jobs.app.vectors import open_store

    with open_store() as store:
        payloads = sorted((p.payload["name"], p.payload["cuisine"], p.payload["embedder"])
                          for p in store.scan("recipes"))
    assert payloads == [("Ramen", "japanese", "hashing"), ("Tacos", "mexican", "hashing")]


def test_an_entity_whose_table_is_missing_fails_without_stopping_the_others(jobs_env: JobsEnv):
    from broker_jobs.app.jobs.etl import run_etl
    from broker_jobs.app.jobs.vault import run_vault_sync

    Path(jobs_env.root / "entities.yaml").write_text(
        "entities:\n  - {kind: ghosts, table: no_such_table, text: '{name}'}\n")
    run_vault_sync()
    report = run_etl()
    assert report["failed"] == 1 and "no_such_table" in report["errors"]["ghosts"]
    assert report["inserted"] == 8


@pytest.mark.parametrize(("overlap", "caught"), [("30", True), ("0", False)])
def test_a_row_committed_late_with_an_older_timestamp_is_caught_by_the_overlap(jobs_env: JobsEnv, settings_env,
                                                                                overlap: str, caught: bool):
    from datetime import UTC, datetime, timedelta

    from broker_jobs.app.jobs.etl import run_etl
    from broker_jobs.app.jobs.vault import run_vault_sync
    from broker_jobs.settings import get_settings
    from broker_jobs.store.db import get_engine

    settings_env.setenv("ETL_OVERLAP", overlap)
    get_settings.cache_clear()
    run_vault_sync()
    run_etl(["vault_documents"])
    # A transaction that stamped its row 5 s ago commits only now, after ETL moved past it.
    with Session(get_engine()) as session, session.begin():
        session.add(Document(path="late.md", title="Late", body="committed late", content_hash="x",
                             updated_at=datetime.now(UTC) - timedelta(seconds=5)))
    report = run_etl(["vault_documents"])
    assert (report["inserted"] == 1) is caught
    assert ("Late" in vector_titles().values()) is caught


def test_an_unknown_entity_kind_fails_alone_and_only_unknown_kinds_dead_letter(jobs_env: JobsEnv, jobs_broker,
                                                                               stub_worker):
    from broker_jobs.actors import etl_sync
    from broker_jobs.app.connectors.vault import reconcile
    from broker_jobs.store.db import get_engine

    reconcile(get_engine(), jobs_env.vault)  # the notes, without vault_sync's own ETL message
    run = run_job(jobs_broker, stub_worker, etl_sync, ["vault_documents", "nope"])
    assert run.status == "succeeded" and run.report["inserted"] == 8 and run.report["failed"] == 1
    assert run.report["errors"]["nope"].startswith("unknown entity 'nope'")
    message = etl_sync.send(["nope"])
    with pytest.raises(Exception, match="unknown entity 'nope'"):
        jobs_broker.join("etl")
    stub_worker.join()
    from .conftest import run_of

    assert run_of(message.message_id).attempt == 1  # permanent: no retries


def test_etl_refuses_to_mix_embedders_until_batch_reprocess_rebuilds_the_collection(jobs_env: JobsEnv,
                                                                                  settings_env):
    from broker_jobs.app.jobs.etl import run_etl
    from broker_jobs.app.jobs.maintenance import run_batch_reprocess
    from broker_jobs.app.jobs.vault import run_vault_sync
    from broker_jobs.app.vectors import embedders, open_store
    from broker_jobs.settings import get_settings

    run_vault_sync()
    run_etl(["vault_documents"])
    settings_env.setenv("EMBEDDING_DIM", "128")  # another embedder: stale vectors everywhere
    get_settings.cache_clear()
    embedders.get_embedder.cache_clear()
    (jobs_env.vault / "New.md").write_text("# New\nA note written after the change.\n")
    run_vault_sync()
    refused = run_etl(["vault_documents"])
    assert refused["failed"] == 1 and "batch_reprocess" in refused["errors"]["vault_documents"]
    rebuilt = run_batch_reprocess(["vault_documents"])
    assert rebuilt["inserted"] == 9
    with open_store() as store:
        assert store.size(store.physical("vault_documents")) == 128
        assert {p.payload["embedder_version"] for p in store.scan("vault_documents")} == {"mmh3-uni-bi-log-128"}
    assert run_etl(["vault_documents"])["failed"] == 0


def test_a_same_size_embedder_of_another_kind_is_refused_too(jobs_env: JobsEnv):
    from broker_jobs.app.entities import get_entity
    from broker_jobs.app.entities.pipeline import sync_entity
    from broker_jobs.app.jobs.etl import run_etl
    from broker_jobs.app.jobs.vault import run_vault_sync
    from broker_jobs.app.vectors import HashingEmbedder, open_store
    from broker_jobs.errors import PermanentJobError
    from broker_jobs.store.db import get_engine

    run_vault_sync()
    run_etl(["vault_documents"])
    other = HashingEmbedder(384)
    other.name = "other-model"
    with open_store() as store, pytest.raises(PermanentJobError, match=r"other-model.*batch_reprocess"):
        sync_entity(get_engine(), store, get_entity("vault_documents"), other, batch_size=3)
