"""Malformed and hostile HTTP API requests, generated from the OpenAPI document.

Schemathesis builds requests for every operation of a real ``broker-jobs serve``
(on a private vhost and database).  Without a valid token, or with a token that
lacks the ``operate`` scope, no request may get a 5xx or enqueue anything; with
an ``operate`` token no request may get a 5xx.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import jwt
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from tests.conftest import TEST_POSTGRES_URL, port_open, unavailable

from .services import PrivateRabbit, free_port, private_database, private_vhost
from .support import Process, wait_for

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres, pytest.mark.slow]

SECRET = "fuzz-secret-" + "k" * 40
EXAMPLES = 15
JOBS_YAML = """\
jobs:
  - {id: rare, actor: diagnostics, cron: "0 3 29 2 *"}
"""


def token(scope: str, secret: str = SECRET, ttl: float = 3600) -> str:
    now = int(time.time())
    return jwt.encode({"sub": "fuzz", "scope": scope, "iat": now, "exp": now + int(ttl)}, secret, "HS256")


#: Authorization headers that must not let anybody act (None: no header at all).
HOSTILE = [None, "Bearer", "Bearer not-a-jwt", "Basic Z3Vlc3Q6Z3Vlc3Q=", "Bearer " + "A" * 5000,
           f"Bearer {token('operate', secret='a-guessed-secret-' + 'x' * 30)}",
           f"Bearer {token('operate', ttl=-120)}", f"Bearer {token('admin')}", f"Bearer {token('read')}",
           "Bearer " + jwt.encode({"scope": "operate"}, "", algorithm="HS256")]


@pytest.fixture(scope="module")
def api(private_rabbit: PrivateRabbit, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if not port_open(TEST_POSTGRES_URL, 5432):
        unavailable(f"PostgreSQL at {TEST_POSTGRES_URL}")
    tmp = tmp_path_factory.mktemp("api-fuzz")
    (tmp / "jobs.yaml").write_text(JOBS_YAML)
    with private_vhost(private_rabbit) as amqp_url, private_database(TEST_POSTGRES_URL) as db:
        port = free_port()
        env = {"RABBITMQ_URL": amqp_url, "DATABASE_URL": db, "API_JWT_SECRET": SECRET, "REDIS_URL": "",
               "JOBS_CONFIG": str(tmp / "jobs.yaml"), "METRICS_PORT": str(free_port()),
               "METRICS_DIR": str(tmp / "metrics"), "PYTHONUNBUFFERED": "1"}
        server = Process(["-m", "broker_jobs", "serve", "--port", str(port)], env, tmp / "api.log").start()
        try:
            base = f"http://127.0.0.1:{port}"

            def live() -> bool:
                try:
                    return httpx.get(base + "/health/live", timeout=2).status_code == 200
                except httpx.HTTPError:
                    return False

            wait_for(lambda: live() or not server.alive(), "the API to answer", timeout=90)
            assert server.alive(), server.text()[-3000:]
            vhost = unquote(urlsplit(amqp_url).path[1:])
            yield SimpleNamespace(base=base, server=server, rabbit=private_rabbit, vhost=vhost)
        finally:
            server.stop()


def enqueued(api: Any) -> dict[str, int]:
    """Messages in every queue of the API's vhost (ready or not)."""
    out = api.rabbit.ctl("list_queues", "-p", api.vhost, "name", "messages", "--no-table-headers", "-q")
    return {name: int(count) for name, count in (line.split() for line in out.splitlines() if line.strip())
            if int(count)}


@pytest.fixture(scope="module")
def api_schema(api: Any) -> Any:
    return schemathesis.openapi.from_url(api.base + "/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")

FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=list(HealthCheck))


@schema.parametrize()
@FUZZ
def test_without_a_valid_operate_token_no_request_gets_a_5xx(api, case):
    hostile = random.Random(repr(case.path_parameters) + repr(case.query)).choice(HOSTILE)
    headers = {"Authorization": hostile} if hostile else {}
    if case.headers:
        case.headers.pop("Authorization", None)
    response = case.call(base_url=api.base, headers=headers, timeout=10)
    case.validate_response(response, checks=[not_a_server_error])
    if case.path.startswith("/api/") and hostile != f"Bearer {token('read')}":
        assert response.status_code in (401, 403, 404, 405, 422), (case.method, case.path, response.status_code)


def test_nothing_was_enqueued_without_a_valid_operate_token(api):
    assert enqueued(api) == {}
    assert "Traceback" not in api.server.text()


@schema.parametrize()
@FUZZ
def test_with_an_operate_token_no_request_gets_a_5xx(api, case):
    if case.headers:
        case.headers.pop("Authorization", None)
    response = case.call(base_url=api.base, headers={"Authorization": f"Bearer {token('operate')}"}, timeout=10)
    case.validate_response(response, checks=[not_a_server_error])


def test_the_server_logged_no_traceback_under_fuzzing(api):
    assert "Traceback" not in api.server.text()
