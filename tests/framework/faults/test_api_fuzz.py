"""Malformed and hostile HTTP API requests, generated from the OpenAPI document.

Schemathesis builds requests for every operation of a real ``broker-jobs serve``
(on a private vhost and database).  Without a valid token, or with a token that
lacks the ``operate`` scope, no request may get a 5xx or enqueue anything; with
an ``operate`` token no request may get a 5xx.  Every status answered must be
one the OpenAPI document lists for its route.  Each test checks its own
requests were sent and its own part of the server log: none depends on another.
"""

from __future__ import annotations

import base64
import json
import random
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import jwt
import pytest

from tests.support import (
    TEST_POSTGRES_URL,
    PrivateRabbit,
    Process,
    database,
    free_port,
    port_open,
    private_vhost,
    unavailable,
    wait_for,
)

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres, pytest.mark.slow]

SECRET = "fuzz-secret-" + "k" * 40
EXAMPLES = 25
JOBS_YAML = """\
jobs:
  - {id: rare, actor: diagnostics, cron: "0 3 29 2 *"}
"""


def token(scope: str, secret: str = SECRET, ttl: float = 3600) -> str:
    now = int(time.time())
    return jwt.encode({"sub": "fuzz", "scope": scope, "iat": now, "exp": now + int(ttl)}, secret, "HS256")


def unsigned(claims: dict[str, Any]) -> str:
    """A JWT with ``alg: none``: the classic forgery."""
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


#: A valid token that may look but not act.
READ = f"Bearer {token('read')}"

#: Authorization headers that must not let anybody act (None: no header at all).
HOSTILE = [None, "Bearer", "Bearer not-a-jwt", "Basic Z3Vlc3Q6Z3Vlc3Q=", "Bearer " + "A" * 5000,
           f"Bearer {token('operate', secret='a-guessed-secret-' + 'x' * 30)}",
           f"Bearer {token('operate', ttl=-120)}", f"Bearer {token('admin')}", READ,
           "Bearer " + unsigned({"sub": "fuzz", "scope": "operate", "exp": int(time.time()) + 3600})]


@pytest.fixture(scope="module")
def api(private_rabbit: PrivateRabbit, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if not port_open(TEST_POSTGRES_URL, 5432):
        unavailable(f"PostgreSQL at {TEST_POSTGRES_URL}")
    tmp = tmp_path_factory.mktemp("api-fuzz")
    (tmp / "jobs.yaml").write_text(JOBS_YAML)
    with private_vhost(private_rabbit) as amqp_url, database(TEST_POSTGRES_URL, "bj_fault") as db:
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
            wait_for(lambda: httpx.get(base + "/health", timeout=5).status_code == 200, "a healthy API")
            vhost = unquote(urlsplit(amqp_url).path[1:])
            document = httpx.get(base + "/openapi.json", timeout=10).json()
            yield SimpleNamespace(base=base, server=server, rabbit=private_rabbit, vhost=vhost, document=document)
        finally:
            server.stop()


def enqueued(api: Any) -> dict[str, int]:
    """Messages in every queue of the API's vhost (ready or not)."""
    out = api.rabbit.ctl("list_queues", "-p", api.vhost, "name", "messages", "--no-table-headers", "-q")
    return {name: int(count) for name, count in (line.split() for line in out.splitlines() if line.strip())
            if int(count)}


@pytest.fixture(scope="module")
def api_schema(api: Any) -> Any:
    try:
        import schemathesis
    except ImportError:
        unavailable("schemathesis (installed with the dev extras)")
    return schemathesis.openapi.from_url(api.base + "/openapi.json")


def fuzz(schema: Any, check: Callable[[Any], None]) -> int:
    """Run ``check`` on generated valid and invalid requests of every operation; return how many.

    Hypothesis drives schemathesis' strategies directly (its pytest plugin does
    not run under pytest 9).  No shrinking: the first failure is reported as is.
    """
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st
    from schemathesis import GenerationMode

    calls = [0]
    for result in schema.get_all_operations():
        operation = result.ok()
        strategy = st.one_of(operation.as_strategy(GenerationMode.POSITIVE),
                             operation.as_strategy(GenerationMode.NEGATIVE))

        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  phases=(Phase.generate,), suppress_health_check=list(HealthCheck))
        @given(case=strategy)
        def run(case: Any) -> None:
            calls[0] += 1
            check(case)

        run()
    return calls[0]


def no_server_error(case: Any, response: Any) -> None:
    """No 5xx, except the health probes' deliberate 503 for a dependency that does not answer."""
    deliberate = case.path.startswith("/health") and response.status_code == 503
    assert response.status_code < 500 or deliberate, (
        f"{case.method} {case.path} -> {response.status_code}: {response.text[:300]}")


def documented(api: Any, case: Any, response: Any) -> None:
    """An error status must be listed in the OpenAPI document for the route (success and redirects aside)."""
    status = response.status_code
    if status < 400:
        return
    listed = {int(code) for code in api.document["paths"][case.path][case.method.lower()]["responses"]}
    assert status in listed, (f"{case.method} {case.path} -> {status}, not in its OpenAPI responses {sorted(listed)}: "
                              f"{response.text[:200]} (sent {case.headers!r} {case.body!r:.200})")


class LogMark:
    """The server log from a point on: a test reads only what its own requests caused."""

    def __init__(self, api: Any) -> None:
        self.api = api
        self.start = len(api.server.text())

    def text(self) -> str:
        return self.api.server.text()[self.start:]


def call(api: Any, case: Any, authorization: str | None) -> Any:
    """Send ``case`` with exactly this Authorization header (or none)."""
    if case.headers:
        case.headers = {k: v for k, v in case.headers.items() if k.lower() != "authorization"}
    return case.call(base_url=api.base, headers={"Authorization": authorization} if authorization else {},
                     timeout=10)


def test_without_a_valid_operate_token_no_request_gets_a_5xx_or_enqueues_anything(api, api_schema):
    pick = random.Random(7)
    mark = LogMark(api)

    def check(case: Any) -> None:
        hostile = pick.choice(HOSTILE)
        response = call(api, case, hostile)
        no_server_error(case, response)
        documented(api, case, response)
        if case.path.startswith("/api/") and hostile != READ:
            # Refused, whatever the reason (401, 403, or a malformed request caught first).
            assert 400 <= response.status_code < 500, (case.method, case.path, response.status_code, hostile)

    requests = fuzz(api_schema, check)
    print(f'{{"test": "API fuzz without a valid operate token", "requests": {requests}}}')
    assert requests >= 10 * len(list(api_schema.get_all_operations()))
    assert enqueued(api) == {}
    assert "Traceback" not in mark.text()


def test_with_an_operate_token_no_request_gets_a_5xx(api, api_schema):
    operate = f"Bearer {token('operate')}"
    mark = LogMark(api)
    statuses: set[int] = set()

    def check(case: Any) -> None:
        response = call(api, case, operate)
        statuses.add(response.status_code)
        no_server_error(case, response)
        documented(api, case, response)

    requests = fuzz(api_schema, check)
    print(f'{{"test": "API fuzz with an operate token", "requests": {requests}, "statuses": {sorted(statuses)}}}')
    assert requests >= 10 * len(list(api_schema.get_all_operations()))
    assert 200 in statuses and 422 in statuses  # the requests reached the handlers, valid and not
    assert "Traceback" not in mark.text()
