"""Credentials go only where they belong: tokens stay on their API's origin, URL passwords stay out of text.

A second fake API on another port plays the foreign host a pagination link
(GitHub's ``Link``, Spotify's ``next``) or a redirect points to.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from broker_jobs.app.settings import get_app_settings
from broker_jobs.app.tables import Company, GithubRepository, SpotifyTrack
from tests.support import Answer, FakeApis, fixture, free_port

from .conftest import JobsEnv, run_job


@pytest.fixture
def foreign() -> Iterator[FakeApis]:
    """Another server, another origin: whatever it receives has left the API."""
    server = FakeApis()
    yield server
    server.close()


def rows(model: type) -> list:
    from broker_jobs.store.db import get_engine

    with Session(get_engine()) as session:
        return list(session.scalars(select(model)))


def test_a_github_link_header_to_another_origin_is_refused_and_the_token_never_leaves(
        jobs_env: JobsEnv, apis: FakeApis, foreign: FakeApis, jobs_broker, stub_worker):
    from broker_jobs.actors import github_ingest

    first = run_job(jobs_broker, stub_worker, github_ingest, queues=("etl",))
    assert first.report["inserted"] == 5
    page = fixture("github_repos.json")[:2]
    apis.state.script("/users/octo-org/repos", Answer(200, {
        "Link": f'<{foreign.url}/users/octo-org/repos?per_page=100&page=2>; rel="next"'}, page))
    run = run_job(jobs_broker, stub_worker, github_ingest, queues=("etl",))
    assert foreign.state.hits == []  # not one request, so no token either
    assert run.status == "succeeded" and run.report["failed"] == 1
    assert run.report["errors"]["octo-org"] == (
        f"github: refused to send credentials to {foreign.url}, another origin than the API's "
        f"{apis.url} (a link from the API pointed there)")
    assert run.report["deleted"] == 0 and not any(r.deleted for r in rows(GithubRepository))


def test_a_spotify_next_link_to_another_origin_is_refused_and_that_list_deletes_nothing(
        jobs_env: JobsEnv, apis: FakeApis, foreign: FakeApis):
    from broker_jobs.app.connectors import spotify
    from broker_jobs.store.db import get_engine

    spotify.ingest(get_app_settings(), get_engine())
    apis.state.script("/v1/me/tracks", Answer(200, {}, {
        "href": f"{apis.url}/v1/me/tracks?offset=0&limit=2", "limit": 2, "offset": 0, "total": 5,
        "next": f"{foreign.url}/v1/me/tracks?offset=2&limit=2", "previous": None,
        "items": fixture("spotify_saved_tracks.json")[:2]}))
    report = spotify.ingest(get_app_settings(), get_engine()).asdict()
    assert foreign.state.hits == []
    assert report["failed"] == 1 and "refused to send credentials to " + foreign.url in report["errors"]["tracks"]
    assert report["tracks"]["deleted"] == 0 and not any(t.deleted for t in rows(SpotifyTrack))
    assert report["albums"]["failed"] == 0 and report["albums"]["fetched"] == 2  # the other lists went on


def test_a_redirect_to_another_origin_loses_the_authorization_header(jobs_env: JobsEnv, apis: FakeApis,
                                                                    foreign: FakeApis):
    from broker_jobs.app.connectors import github
    from broker_jobs.app.connectors.http import ApiClient

    apis.state.script("/users/octo-org/repos", Answer(302, {"Location": f"{foreign.url}/users/octo-org/repos"}))
    with github.client(get_app_settings()) as api:
        response = api.request("GET", "/users/octo-org/repos")
    assert apis.state.authorizations == [("/users/octo-org/repos", f"Bearer {apis.state.github_token}")]
    assert foreign.state.authorizations == [("/users/octo-org/repos", None)]
    assert response.status_code == 401  # the foreign host got no token to accept
    with ApiClient("plain", get_app_settings()) as anonymous:  # no base URL: no credentials of its own to guard
        assert anonymous.request("GET", f"{foreign.url}/csv/none.csv").status_code == 404


def test_httpx_request_lines_never_show_a_url_password(jobs_env: JobsEnv, apis: FakeApis,
                                                       caplog: pytest.LogCaptureFixture):
    from broker_jobs.app.connectors.http import ApiClient

    with caplog.at_level(logging.INFO, logger="httpx"), ApiClient("plain", get_app_settings()) as api:
        api.request("GET", apis.url.replace("http://", "http://ops:s3cr3t-pw@") + "/csv/none.csv")
    assert "HTTP Request: GET http://ops:***@127.0.0.1" in caplog.text and "s3cr3t" not in caplog.text


# CSV sources with credentials in the URL

passwords = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=6, max_size=24)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(password=passwords)
def test_a_csv_source_password_is_in_no_log_report_history_row_or_error(
        jobs_env: JobsEnv, apis: FakeApis, jobs_broker, stub_worker, caplog: pytest.LogCaptureFixture,
        password: str):
    from broker_jobs.actors import csv_import

    secret = "PW" + password
    encoded = quote(secret, safe="")
    dead = free_port()
    apis.state.files["ok.csv"] = "a,b\n1,2\n"
    jobs_env.companies.write_text(
        "name,source\n"
        f"Served,http://reader:{encoded}@127.0.0.1:{apis.url.rsplit(':', 1)[1]}/csv/ok.csv\n"
        f"Missing,http://reader:{encoded}@127.0.0.1:{apis.url.rsplit(':', 1)[1]}/csv/missing.csv\n"
        f"Dead,http://reader:{encoded}@127.0.0.1:{dead}/x.csv\n")
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        run = run_job(jobs_broker, stub_worker, csv_import, queues=("etl",))
    assert run.status == "succeeded" and run.report["companies"]["Served"]["fetched"] == 1
    assert {"Missing", "Dead"} <= set(run.report["errors"])
    last_errors = [c.last_error or "" for c in rows(Company)]
    texts = [caplog.text, json.dumps(run.report, ensure_ascii=False), run.error or "", *last_errors]
    for text in texts:
        assert secret not in text and encoded not in text
    assert run.report["errors"]["Missing"].startswith("HTTP 404 from http://127.0.0.1:")  # sent as Basic auth
    assert "HTTP Request: GET http://127.0.0.1:" in caplog.text  # httpx's own line, without the user info
    basic = "Basic " + base64.b64encode(f"reader:{secret}".encode()).decode()
    assert ("/csv/ok.csv", basic) in apis.state.authorizations  # the credentials still reach their host


def test_services_list_shows_a_status_url_without_its_password(jobs_env: JobsEnv):
    from click.testing import CliRunner

    from broker_jobs.app.main import cli as main

    cli = CliRunner()
    assert cli.invoke(main, ["services", "add", "web", "https://ops:s3cr3t-pw@status.example/api"]).exit_code == 0
    for args in (["services", "list", "--json"], ["services", "list"]):
        listed = cli.invoke(main, args)
        assert listed.exit_code == 0 and "ops:***@status.example" in listed.output
        assert "s3cr3t" not in listed.output


@pytest.mark.rabbitmq
def test_a_real_worker_importing_a_csv_url_with_a_password_never_prints_it(apis: FakeApis, tmp_path):
    """``dramatiq broker_jobs.actors`` as deployed: its stderr (our lines, httpx's, dramatiq's) and its history."""
    from tests.support import (
        RABBITMQ_URL,
        log_text,
        port_open,
        run_cli,
        start,
        stop,
        unavailable,
        vhost,
        wait_for,
        wait_for_log,
    )

    if not port_open(RABBITMQ_URL, 5672):
        unavailable(f"RabbitMQ at {RABBITMQ_URL}")
    secret = "s3cr3t-" + tmp_path.name[-6:]
    apis.state.files["ok.csv"] = "a,b\n1,2\n"
    host = apis.url.replace("http://", f"http://reader:{secret}@")
    (tmp_path / "companies.csv").write_text(f"name,source\nServed,{host}/csv/ok.csv\nMissing,{host}/csv/gone.csv\n")
    with vhost("bj-files") as url:
        if url is None:
            unavailable("a vhost of its own on RabbitMQ")
        env = {"RABBITMQ_URL": url, "DATABASE_URL": f"sqlite:///{tmp_path}/jobs.sqlite3",
               "COMPANIES_FILE": str(tmp_path / "companies.csv"), "QDRANT_PATH": str(tmp_path / "qdrant"),
               "METRICS_PORT": str(free_port()), "METRICS_DIR": str(tmp_path / "prometheus"),
               "JOBS_CONFIG": str(tmp_path / "none.yaml"), "LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1",
               "HTTP_MAX_RETRIES": "0"}
        log = tmp_path / "worker.log"
        proc = start(["-m", "dramatiq", "broker_jobs.actors", "--processes", "1", "--threads", "1"], env, log)
        try:
            wait_for_log(log, "ready for action", proc, timeout=60)
            sent = run_cli("send", "csv_import", env=env)
            assert sent.returncode == 0, sent.stderr
            wait_for_log(log, r"\[csv\] Missing failed", proc, timeout=60)
            history = {}

            def finished() -> bool:
                result = run_cli("history", "--json", env=env)
                history["runs"] = json.loads(result.stdout or "[]")
                return any(r["actor"] == "csv_import" and r["status"] == "succeeded" for r in history["runs"])

            wait_for(finished, "the csv_import run in the history", timeout=60)
        finally:
            stop(proc, timeout=30)
    text = log_text(log)
    assert "HTTP Request: GET http://127.0.0.1:" in text  # httpx's own line, as the worker prints it
    assert secret not in text and secret not in json.dumps(history["runs"])
