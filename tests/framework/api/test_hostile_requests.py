"""Hostile requests against a real ``broker-jobs serve`` on PostgreSQL: 4xx, never 5xx.

The server runs with its own vhost and its own PostgreSQL database (PostgreSQL
refuses NUL in text, SQLite does not: the hostile case lives there).  Inputs
are generated with hypothesis; a few named cases pin what the issue found.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

import httpx
import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import (
    JOBS_FILE,
    RABBITMQ_URL,
    SECRET,
    TEST_POSTGRES_URL,
    UNREACHABLE,
    database,
    free_port,
    port_open,
    start,
    stop,
    token,
    unavailable,
    vhost,
    wait_for,
)

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]

#: Short, so the lifetime rule is easy to cross.
MAX_TTL = 600
FUZZ = settings(max_examples=60, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """``broker-jobs serve`` (no --print-token) on a private vhost and PostgreSQL database."""
    if not port_open(RABBITMQ_URL, 5672):
        unavailable(f"RabbitMQ at {RABBITMQ_URL}")
    if not port_open(TEST_POSTGRES_URL, 5432):
        unavailable(f"PostgreSQL at {TEST_POSTGRES_URL}")
    tmp = tmp_path_factory.mktemp("hostile")
    (tmp / "jobs.yaml").write_text(JOBS_FILE, encoding="utf-8")
    with vhost("bj-hostile") as amqp_url, database(TEST_POSTGRES_URL, "bj_hostile") as db:
        if amqp_url is None:
            unavailable("a vhost of its own on RabbitMQ")
        port = free_port()
        env = {"RABBITMQ_URL": amqp_url, "DATABASE_URL": db, "API_JWT_SECRET": SECRET, "REDIS_URL": "",
               "JOBS_CONFIG": str(tmp / "jobs.yaml"), "METRICS_PORT": str(free_port()),
               "METRICS_DIR": str(tmp / "metrics"), "API_TOKEN_MAX_TTL": str(MAX_TTL), "PYTHONUNBUFFERED": "1"}
        log = tmp / "serve.log"
        proc = start(["-m", "broker_jobs", "serve", "--port", str(port)], env, log)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_for(lambda: proc.poll() is None and httpx.get(base + "/health/live", timeout=2).status_code == 200,
                     f"serve answering (log: {log})", timeout=60, ignore=UNREACHABLE)
            client = httpx.Client(base_url=base, timeout=20,
                                  headers={"Authorization": f"Bearer {token('operate', ttl=300)}"})
            schema = client.get("/openapi.json").json()
            yield SimpleNamespace(base=base, log=log, client=client, schema=schema)
            client.close()
        finally:
            stop(proc, timeout=20)


def documented(api: Any, method: str, template: str) -> set[int]:
    """The statuses the OpenAPI document lists for a route."""
    return {int(code) for code in api.schema["paths"][template][method.lower()]["responses"]}


def call(api: Any, method: str, path: str, template: str, client: httpx.Client | None = None,
         **kwargs: Any) -> httpx.Response:
    """Send a request; its status must be below 500 and listed in the OpenAPI document for the route."""
    response = (client or api.client).request(method, path, **kwargs)
    assert response.status_code < 500, f"{method} {path} -> {response.status_code}: {response.text[:300]}"
    assert response.status_code in documented(api, method, template), (
        f"{method} {template} answered {response.status_code}, not in its OpenAPI responses")
    return response


def test_a_backfill_starting_in_year_1_or_ending_in_9999_is_a_422_naming_the_field(api):
    for body, field in (({"start": "0001-01-01T00:00:00Z", "end": "2020-01-01T00:00:00Z"}, "start"),
                        ({"start": "2020-01-01T00:00:00Z", "end": "9999-12-31T23:59:59Z"}, "end")):
        response = call(api, "POST", "/api/v1/jobs/nightly-diagnostics/backfill",
                        "/api/v1/jobs/{job_id}/backfill", json=body)
        assert response.status_code == 422, response.text
        assert field in response.json()["message"]


def test_a_backfill_with_start_equal_to_end_is_the_one_instant(api):
    path, template = "/api/v1/jobs/nightly-diagnostics/backfill", "/api/v1/jobs/{job_id}/backfill"
    on_slot = call(api, "POST", path, template, json={"start": "2024-02-29T03:00:00Z", "end": "2024-02-29T03:00:00Z"})
    assert on_slot.status_code == 200, on_slot.text
    assert on_slot.json()["slots"] == 1
    off_slot = call(api, "POST", path, template, json={"start": "2024-02-28T03:00:00Z", "end": "2024-02-28T03:00:00Z"})
    assert (off_slot.status_code, off_slot.json()["slots"]) == (200, 0)
    backwards = call(api, "POST", path, template, json={"start": "2024-03-01T00:00:00Z", "end": "2024-02-01T00:00:00Z"})
    assert backwards.status_code == 422 and "end must not be before start" in backwards.text


def test_nul_characters_in_a_pause_note_a_filter_or_a_job_id_are_a_422_on_postgresql(api):
    assert call(api, "POST", "/api/v1/jobs/nightly-diagnostics/pause", "/api/v1/jobs/{job_id}/pause",
                json={"note": "vendor\x00outage"}).status_code == 422
    assert call(api, "GET", "/api/v1/history", "/api/v1/history", params={"actor": "a\x00b"}).status_code == 422
    assert call(api, "GET", "/api/v1/dlq", "/api/v1/dlq", params={"queue": "\x00"}).status_code == 422
    assert call(api, "POST", "/api/v1/dlq/replay", "/api/v1/dlq/replay", json={"id": "x\x00"}).status_code == 422
    assert call(api, "POST", "/api/v1/jobs/a%00b/resume", "/api/v1/jobs/{job_id}/resume").status_code == 422


@FUZZ
@given(start=st.datetimes(timezones=st.sampled_from([UTC, None])),
       end=st.datetimes(timezones=st.sampled_from([UTC, None])))
def test_no_backfill_range_gets_a_5xx(api, start, end):
    call(api, "POST", "/api/v1/jobs/nightly-diagnostics/backfill", "/api/v1/jobs/{job_id}/backfill",
         json={"start": start.isoformat(), "end": end.isoformat()})


@FUZZ
@given(text=st.text(min_size=1, max_size=40))
def test_no_text_in_a_filter_a_note_or_a_job_id_gets_a_5xx(api, text):
    call(api, "GET", "/api/v1/history", "/api/v1/history", params={"actor": text})
    call(api, "GET", "/api/v1/dlq", "/api/v1/dlq", params={"actor": text, "queue": text, "id": text})
    call(api, "POST", "/api/v1/jobs/nightly-diagnostics/pause", "/api/v1/jobs/{job_id}/pause", json={"note": text})
    call(api, "POST", "/api/v1/dlq/replay", "/api/v1/dlq/replay", json={"id": text})
    if "/" not in text and text not in (".", ".."):  # those name another route, not a job id
        call(api, "GET", f"/api/v1/jobs/{quote(text, safe='')}", "/api/v1/jobs/{job_id}")
    call(api, "POST", "/api/v1/jobs/nightly-diagnostics/resume", "/api/v1/jobs/{job_id}/resume")


def test_each_error_status_the_document_lists_for_the_schedule_routes_is_reachable(api):
    unauthenticated = httpx.Client(base_url=api.base, timeout=20)
    reader = httpx.Client(base_url=api.base, timeout=20, headers={"Authorization": f"Bearer {token('read', ttl=300)}"})
    run, show = "/api/v1/jobs/{job_id}/run", "/api/v1/jobs/{job_id}"
    reached = {
        401: call(api, "POST", "/api/v1/jobs/nightly-diagnostics/run", run, unauthenticated),
        403: call(api, "POST", "/api/v1/jobs/nightly-diagnostics/run", run, reader),
        404: call(api, "POST", "/api/v1/jobs/no-such-job/run", run),
        422: call(api, "POST", "/api/v1/jobs/nightly-diagnostics/run", run, json={"force": "maybe"}),
        400: call(api, "POST", "/api/v1/jobs/nightly-diagnostics/run", run, content=b"\xa8\xa6\x0c\xc1",
                  headers={"Content-Type": "application/json"}),
    }
    assert {code: r.status_code for code, r in reached.items()} == {code: code for code in reached}
    assert call(api, "GET", "/api/v1/jobs/no-such-job", show).status_code == 404
    assert call(api, "GET", "/api/v1/jobs/nightly-diagnostics", show, params={"preview": -1}).status_code == 422
    assert call(api, "POST", "/api/v1/dlq/replay", "/api/v1/dlq/replay", json={"id": "nope"}).status_code == 404
    # No route documents a 5xx other than 503 (a dependency down), nor an undocumented catch-all.
    for path, methods in api.schema["paths"].items():
        for method, operation in methods.items():
            codes = {int(c) for c in operation["responses"]}
            assert codes & {500, 502, 504} == set(), (method, path)
            if path.startswith("/api/v1/"):
                assert {401, 403} <= codes, (method, path)


def test_a_token_living_longer_than_the_maximum_or_without_exp_is_refused(api):
    now = int(time.time())
    too_long = jwt.encode({"sub": "t", "scope": "read", "iat": now, "exp": now + MAX_TTL + 60}, SECRET, "HS256")
    no_exp = jwt.encode({"sub": "t", "scope": "read", "iat": now}, SECRET, "HS256")
    backdated = jwt.encode({"sub": "t", "scope": "read", "iat": now - 10 * MAX_TTL, "exp": now + 60}, SECRET,
                           "HS256")
    within = jwt.encode({"sub": "t", "scope": "read", "iat": now, "exp": now + MAX_TTL - 60}, SECRET, "HS256")
    for bad in (too_long, no_exp, backdated):
        response = httpx.get(api.base + "/api/v1/jobs", headers={"Authorization": f"Bearer {bad}"}, timeout=20)
        assert response.status_code == 401, response.text
    assert "API_TOKEN_MAX_TTL" in httpx.get(api.base + "/api/v1/jobs", timeout=20,
                                            headers={"Authorization": f"Bearer {too_long}"}).json()["detail"]
    ok = httpx.get(api.base + "/api/v1/jobs", headers={"Authorization": f"Bearer {within}"}, timeout=20)
    assert ok.status_code == 200, ok.text


def test_serve_prints_no_token_unless_asked(api):
    text = api.log.read_text()
    assert "serving on" in text
    assert "token=" not in text and "eyJ" not in text


@pytest.mark.parametrize("path", ["/", "/static/dashboard.js", "/api/v1/jobs", "/health/live", "/no-such-page",
                                  "/openapi.json"])
def test_every_answer_carries_csp_frame_and_nosniff_headers(api, path):
    response = httpx.get(api.base + path, timeout=20)
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    csp = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "'unsafe-inline'" not in csp and "script-src 'self'" in csp


def test_the_dashboard_page_has_no_inline_script_or_style_for_the_csp_to_block(api):
    import re

    page = httpx.get(api.base + "/", timeout=20).text
    script = httpx.get(api.base + "/static/dashboard.js", timeout=20).text
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", page) == []
    assert " style=" not in page and "style=" not in script
    assert re.findall(r"\son[a-z]+=", page) == []  # no inline event handlers either
