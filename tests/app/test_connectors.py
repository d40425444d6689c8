"""GitHub, Spotify, CSV and service ingest against local servers with the real response shapes."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from broker_jobs.app.settings import get_app_settings
from broker_jobs.app.tables import (
    Company,
    CompanyRecord,
    GithubRepository,
    Service,
    ServiceLog,
    SpotifyAlbum,
    SpotifyArtist,
    SpotifyPlaylist,
    SpotifyTrack,
)
from broker_jobs.settings import get_settings
from tests.support import Answer, FakeApis

from .conftest import JobsEnv, run_job, snapshot_db


def rows(model: type) -> list:
    from broker_jobs.store.db import get_engine

    with Session(get_engine()) as session:
        return list(session.scalars(select(model).order_by(model.id)))


# GitHub


def test_github_ingest_follows_link_pages_and_maps_repositories(jobs_env: JobsEnv, apis: FakeApis):
    from broker_jobs.app.connectors import github
    from broker_jobs.store.db import get_engine

    report = github.ingest(get_app_settings(), get_engine()).asdict()
    assert (report["fetched"], report["inserted"]) == (5, 5)
    assert report["requests"] == 3  # five repositories, two per page
    repos = {r.full_name: r for r in rows(GithubRepository)}
    vector = repos["octo-org/vector-notes"]
    assert (vector.language, vector.stars, vector.topics) == ("Python", 88, ["qdrant", "search"])
    assert repos["octo-org/dotfiles"].description is None


def test_github_second_run_uses_etags_and_a_removed_repository_is_flagged_deleted(jobs_env: JobsEnv,
                                                                                 apis: FakeApis):
    from broker_jobs.app.connectors import github
    from broker_jobs.store.db import get_engine

    github.ingest(get_app_settings(), get_engine())
    again = github.ingest(get_app_settings(), get_engine()).asdict()
    assert again["not_modified_pages"] == 3 and again["skipped"] == 5 and again["fetched"] == 0
    assert apis.state.count("/users/", 304) == 3
    apis.state.github_repos["octo-org"].pop(1)  # queue-workers goes away
    apis.state.github_repos["octo-org"][0]["stargazers_count"] = 1500
    third = github.ingest(get_app_settings(), get_engine()).asdict()
    assert (third["updated"], third["deleted"]) == (1, 1)
    repos = {r.full_name: r for r in rows(GithubRepository)}
    assert repos["octo-org/queue-workers"].deleted and repos["octo-org/hello-world"].stars == 1500


def test_github_ingest_without_a_token_is_skipped_once(jobs_env: JobsEnv, apis: FakeApis, settings_env,
                                                      jobs_broker, stub_worker):
    from broker_jobs.actors import github_ingest

    settings_env.delenv("GITHUB_TOKEN")
    get_settings.cache_clear()
    run = run_job(jobs_broker, stub_worker, github_ingest)
    assert run.status == "skipped" and run.error == "github: GITHUB_TOKEN not set"
    assert run.attempt == 1 and apis.state.hits == []


def test_github_ingest_job_records_its_report_and_enqueues_etl(jobs_env: JobsEnv, apis: FakeApis,
                                                               jobs_broker, stub_worker):
    from broker_jobs.actors import github_ingest
    from broker_jobs.app.vectors import open_store

    apis.state.script("/users/", Answer(502))
    run = run_job(jobs_broker, stub_worker, github_ingest, queues=("etl",))
    assert run.status == "succeeded" and run.report["inserted"] == 5 and run.report["retries"] == 1
    assert run.report["etl_enqueued"] == ["github_repositories"]
    with open_store() as store:
        assert store.count("github_repositories") == 5


# Spotify


def test_spotify_ingest_refreshes_a_token_and_follows_next_pages(jobs_env: JobsEnv, apis: FakeApis):
    from broker_jobs.app.connectors import spotify
    from broker_jobs.store.db import get_engine

    report = spotify.ingest(get_app_settings(), get_engine()).asdict()
    assert report["tracks"]["inserted"] == 5 and report["artists"]["inserted"] == 3
    assert report["playlists"]["inserted"] == 3 and report["albums"]["inserted"] == 2
    assert report["token_refreshes"] == 1
    tracks = {t.name: t for t in rows(SpotifyTrack)}
    assert tracks["Paranoid Android"].artists == "Radiohead" and tracks["Paranoid Android"].album == "OK Computer"
    assert {a.name: a.genres for a in rows(SpotifyArtist)}["Radiohead"] == ["alternative rock", "art rock"]
    assert {p.name: p.tracks_total for p in rows(SpotifyPlaylist)}["Road trip"] == 77
    assert {a.name for a in rows(SpotifyAlbum)} == {"OK Computer", "Abbey Road"}


def test_an_expired_spotify_token_is_refreshed_on_401(jobs_env: JobsEnv, apis: FakeApis):
    from broker_jobs.app.connectors import spotify
    from broker_jobs.store.db import get_engine

    spotify.ingest(get_app_settings(), get_engine())
    apis.state.expire_tokens()
    report = spotify.ingest(get_app_settings(), get_engine()).asdict()
    assert report["token_refreshes"] == 1 and report["skipped"] == 13 and report["failed"] == 0
    assert apis.state.count("/v1/me/tracks", 401) == 1


def test_spotify_429_with_retry_after_is_honoured(jobs_env: JobsEnv, apis: FakeApis):
    from broker_jobs.app.connectors import spotify
    from broker_jobs.store.db import get_engine

    apis.state.script("/v1/me/playlists", Answer(429, {"Retry-After": "1"}), Answer(503))
    report = spotify.ingest(get_app_settings(), get_engine()).asdict()
    assert report["playlists"]["inserted"] == 3 and report["retries"] == 2


def test_a_rejected_refresh_token_dead_letters_at_once(jobs_env: JobsEnv, apis: FakeApis, settings_env,
                                                      jobs_broker, stub_worker):
    from broker_jobs.actors import spotify_ingest

    settings_env.setenv("SPOTIFY_REFRESH_TOKEN", "revoked")
    get_settings.cache_clear()
    jobs_broker.actors  # noqa: B018
    message = spotify_ingest.send()
    try:
        jobs_broker.join("sync")
    except Exception as exc:
        assert "invalid_grant" in str(exc)
    stub_worker.join()
    from .conftest import run_of

    run = run_of(message.message_id)
    assert run.status in ("dead", "failed") and run.attempt == 1
    assert apis.state.count("/api/token") == 1


def test_spotify_without_credentials_is_skipped(jobs_env: JobsEnv, settings_env, jobs_broker, stub_worker):
    from broker_jobs.actors import spotify_ingest

    settings_env.delenv("SPOTIFY_REFRESH_TOKEN")
    get_settings.cache_clear()
    run = run_job(jobs_broker, stub_worker, spotify_ingest)
    assert run.status == "skipped" and run.error == "spotify: SPOTIFY_REFRESH_TOKEN not set"


# CSV import


def test_csv_import_stores_duplicate_rows_once_and_isolates_a_bad_file(jobs_env: JobsEnv, apis: FakeApis):
    from broker_jobs.app.connectors.csv_import import import_all
    from broker_jobs.store.db import get_engine

    apis.state.files["umbrella.csv"] = "date,product,units\n2026-03-01,Vaccine,10\n2026-03-01,Vaccine,10\n"
    (jobs_env.root / "csv" / "broken.csv").write_text("date,product\n2026-01-01,a,unexpected extra\n")
    with jobs_env.companies.open("a") as handle:
        handle.write(f"Umbrella Corp,{apis.url}/csv/umbrella.csv\n")
        handle.write("Broken Inc,csv/broken.csv\n")
        handle.write("Missing Ltd,csv/missing.csv\n")
    report = import_all(get_app_settings(), get_engine()).asdict()
    assert report["failed"] == 2 and set(report["errors"]) == {"Broken Inc", "Missing Ltd"}
    assert report["companies"]["Globex Energy"] == {"fetched": 4, "inserted": 3, "updated": 0, "skipped": 1,
                                                    "deleted": 0, "failed": 0}
    assert report["companies"]["Umbrella Corp"]["inserted"] == 1
    companies = {c.name: c for c in rows(Company)}
    assert "more fields" in companies["Broken Inc"].last_error and companies["Acme Robotics"].last_error is None
    assert len(rows(CompanyRecord)) == 5 + 3 + 3 + 1  # Globex and Umbrella each repeat a row


def test_csv_import_twice_changes_nothing_and_removed_rows_are_flagged(jobs_env: JobsEnv):
    from broker_jobs.app.connectors.csv_import import import_all
    from broker_jobs.store.db import get_engine

    import_all(get_app_settings(), get_engine())
    before = snapshot_db()
    again = import_all(get_app_settings(), get_engine()).asdict()
    assert again["inserted"] == 0 and again["skipped"] == 12
    assert snapshot_db() == before
    lines = (jobs_env.root / "csv" / "initech.csv").read_text().splitlines()
    (jobs_env.root / "csv" / "initech.csv").write_text("\n".join(lines[:-1]) + "\n")
    third = import_all(get_app_settings(), get_engine()).asdict()
    assert third["deleted"] == 1


def test_csv_import_runs_at_most_csv_max_concurrent_companies_at_once(jobs_env: JobsEnv, settings_env):
    import threading

    from broker_jobs.app.connectors import csv_import
    from broker_jobs.store.db import get_engine

    settings_env.setenv("CSV_MAX_CONCURRENT", "2")
    get_settings.cache_clear()
    running, peak, lock = 0, 0, threading.Lock()
    original = csv_import.read_source

    def counting(source: str, settings):  # wraps the real reader to observe concurrency
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        try:
            threading.Event().wait(0.1)
            return original(source, settings)
        finally:
            with lock:
                running -= 1

    csv_import.read_source = counting
    try:
        report = csv_import.import_all(get_app_settings(), get_engine()).asdict()
    finally:
        csv_import.read_source = original
    assert peak == 2 and report["max_concurrent"] == 2 and report["failed"] == 0


# Service sync


def test_sync_all_services_fans_out_and_each_service_inserts_only_new_records(jobs_env: JobsEnv, apis: FakeApis,
                                                                            jobs_broker, stub_worker):
    from broker_jobs.actors import sync_all_services
    from broker_jobs.app.connectors.services import add_service
    from broker_jobs.store.db import get_engine

    web = add_service(get_engine(), "web", f"{apis.url}/status/web")
    add_service(get_engine(), "old", f"{apis.url}/status/old", active=False)
    run = run_job(jobs_broker, stub_worker, sync_all_services, queues=("sync", "etl"))
    assert run.status == "succeeded" and run.report["enqueued"] == 1 and run.report["service_ids"] == [web]
    assert len(rows(ServiceLog)) == 7
    [service] = [s for s in rows(Service) if s.name == "web"]
    assert service.cursor == "evt-0007" and service.last_status == "degraded"
    apis.state.statuses["web"]["records"].append(
        {"id": "evt-0008", "level": "info", "message": "all clear", "timestamp": "2026-11-23T10:00:00Z"})
    from broker_jobs.actors import sync_service

    again = run_job(jobs_broker, stub_worker, sync_service, web, queues=("etl",))
    assert again.report["inserted"] == 1 and again.report["fetched"] == 1
    assert apis.state.count("/status/old") == 0


def test_a_service_whose_api_is_down_fails_alone(jobs_env: JobsEnv, apis: FakeApis):
    from broker_jobs.app.connectors import services
    from broker_jobs.errors import TransientJobError
    from broker_jobs.store.db import get_engine

    down = services.add_service(get_engine(), "down", f"{apis.url}/status/down")
    web = services.add_service(get_engine(), "web", f"{apis.url}/status/web")
    import pytest

    with pytest.raises(TransientJobError, match="404"):
        services.sync(get_app_settings(), get_engine(), down)
    assert services.sync(get_app_settings(), get_engine(), web).inserted == 7
    services.add_service(get_engine(), "web", f"{apis.url}/status/web", active=False)
    from broker_jobs.errors import SkipJob

    with pytest.raises(SkipJob, match="inactive"):
        services.sync(get_app_settings(), get_engine(), web)


def test_spotify_and_csv_jobs_on_the_stub_broker_report_and_feed_etl(jobs_env: JobsEnv, apis: FakeApis,
                                                                    jobs_broker, stub_worker):
    from broker_jobs.actors import csv_import, spotify_ingest
    from broker_jobs.app.vectors import open_store

    spotify = run_job(jobs_broker, stub_worker, spotify_ingest, queues=("etl",))
    assert spotify.status == "succeeded" and spotify.report["inserted"] == 13
    assert set(spotify.report["etl_enqueued"]) == {"spotify_tracks", "spotify_artists", "spotify_playlists",
                                                   "spotify_albums"}
    imported = run_job(jobs_broker, stub_worker, csv_import, queues=("etl",))
    assert imported.status == "succeeded" and imported.report["inserted"] == 11
    with open_store() as store:
        counts = {kind: store.count(kind) for kind in store.kinds()}
    assert counts["spotify_tracks"] == 5 and counts["spotify_albums"] == 2 and counts["company_records"] == 11


def test_every_connector_twice_on_sqlite_and_postgresql_leaves_the_same_rows(jobs_env_any_db: JobsEnv,
                                                                            apis: FakeApis):
    from broker_jobs.app.connectors import csv_import, github, services, spotify
    from broker_jobs.store.db import get_engine

    engine, settings = get_engine(), get_app_settings()
    web = services.add_service(engine, "web", f"{apis.url}/status/web")

    def ingest_all() -> list[dict]:
        return [github.ingest(settings, engine).counts(), spotify.ingest(settings, engine).counts(),
                csv_import.import_all(settings, engine).counts(), services.sync(settings, engine, web).counts()]

    first = ingest_all()
    assert [c["inserted"] for c in first] == [5, 13, 11, 7]
    before = snapshot_db()
    second = ingest_all()
    assert [c["inserted"] + c["updated"] + c["deleted"] for c in second] == [0, 0, 0, 0]
    assert snapshot_db() == before


def test_an_unknown_github_owner_fails_alone_and_a_rejected_token_is_permanent(jobs_env: JobsEnv, apis: FakeApis,
                                                                              settings_env):
    import pytest

    from broker_jobs.app.connectors import github
    from broker_jobs.errors import PermanentJobError
    from broker_jobs.store.db import get_engine

    settings_env.setenv("GITHUB_OWNERS", "no-such-owner, octo-org")
    get_settings.cache_clear()
    report = github.ingest(get_app_settings(), get_engine()).asdict()
    assert report["failed"] == 1 and "no-such-owner" in report["errors"] and report["inserted"] == 5
    settings_env.setenv("GITHUB_TOKEN", "revoked")
    get_settings.cache_clear()
    with pytest.raises(PermanentJobError, match="GITHUB_TOKEN rejected"):
        github.ingest(get_app_settings(), get_engine())
