"""Who may call what, and how bad requests are refused (in-process app, nothing reaches a broker)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import jwt
import pytest
from fastapi.testclient import TestClient

from broker_jobs.api.app import create_app
from broker_jobs.api.health import HealthMonitor
from broker_jobs.settings import Settings
from tests.support import SECRET, bearer, token


class NoChecks(HealthMonitor):
    """A monitor that reports nothing checked (these tests are about auth, not health)."""

    def start(self) -> None:
        self._first.set()


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    settings = Settings(api_jwt_secret=SECRET, rabbitmq_url="amqp://guest:guest@127.0.0.1:1/%2F")
    app = create_app(settings, monitor=NoChecks(settings))
    with TestClient(app) as c:
        yield c


def forged(claims: dict, secret: str = SECRET) -> str:
    return jwt.encode(claims, secret, algorithm="HS256")


BAD_HEADERS = {
    "missing": {},
    "empty bearer": {"Authorization": "Bearer "},
    "not a jwt": {"Authorization": "Bearer not-a-jwt"},
    "basic auth": {"Authorization": "Basic Z3Vlc3Q6Z3Vlc3Q="},
    "expired": {"Authorization": "Bearer " + forged({"scope": "operate", "exp": int(time.time()) - 10})},
    "wrongly signed": {"Authorization": "Bearer " + token("operate", secret="another-secret-" + "y" * 40)},
    "no expiry": {"Authorization": "Bearer " + forged({"scope": "operate"})},
    "other algorithm": {"Authorization": "Bearer " + jwt.encode(
        {"scope": "operate", "exp": int(time.time()) + 60}, SECRET, algorithm="HS512")},
}


@pytest.mark.parametrize("case", sorted(BAD_HEADERS))
@pytest.mark.parametrize("method,path", [("POST", "/api/v1/sync/all"), ("GET", "/api/v1/queues"),
                                         ("POST", "/api/v1/dlq/replay"), ("GET", "/api/v1/jobs")])
def test_a_request_without_a_valid_token_is_refused_with_401(client, case, method, path):
    response = client.request(method, path, headers=BAD_HEADERS[case], json={"all": True})
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("method,path,body", [
    ("POST", "/api/v1/sync/all", None),
    ("POST", "/api/v1/sync/service/3", None),
    ("POST", "/api/v1/jobs/any/run", {}),
    ("POST", "/api/v1/jobs/any/pause", {"note": "x"}),
    ("POST", "/api/v1/jobs/any/resume", None),
    ("POST", "/api/v1/dlq/replay", {"all": True}),
])
def test_a_read_token_cannot_operate(client, method, path, body):
    response = client.request(method, path, headers=bearer("read"), json=body)
    assert response.status_code == 403
    assert "operate" in response.json()["detail"]


def test_a_token_minted_by_the_cli_is_accepted(client, settings_env):
    from tests.support import run_cli

    result = run_cli("token", "--scope", "read", "--ttl", "60", env={"API_JWT_SECRET": SECRET})
    assert result.returncode == 0, result.stderr
    claims = jwt.decode(result.stdout.strip(), SECRET, algorithms=["HS256"])
    assert claims["scope"] == "read" and claims["exp"] - claims["iat"] == 60


def test_minting_a_token_without_a_secret_fails_with_one_line():
    from tests.support import run_cli

    result = run_cli("token", "--scope", "operate", env={"API_JWT_SECRET": ""})
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "API_JWT_SECRET" in result.stderr


@pytest.mark.parametrize("path,body,field", [
    ("/api/v1/jobs/nightly/pause", {}, "note"),
    ("/api/v1/jobs/nightly/pause", {"note": ""}, "note"),
    ("/api/v1/jobs/nightly/backfill", {"start": "2026-01-02T00:00:00Z"}, "end"),
    ("/api/v1/jobs/nightly/backfill", {"start": "yesterday", "end": "2026-01-02T00:00:00Z"}, "start"),
    ("/api/v1/jobs/nightly/run", {"force": "sometimes"}, "force"),
    ("/api/v1/dlq/replay", {"id": "m1", "args": "not-a-list"}, "args"),
    ("/api/v1/sync/service/abc", None, "service_id"),
    ("/api/v1/sync/service/0", None, "service_id"),
])
def test_a_bad_body_is_a_422_naming_the_field(client, path, body, field):
    response = client.post(path, headers=bearer("operate"), json=body)
    assert response.status_code == 422, response.text
    assert field in [e["field"] for e in response.json()["detail"]]
    assert field in response.json()["message"]


@pytest.mark.parametrize("body,reason", [
    ({}, "say which dead letters"),
    ({"queue": "etl", "args": [1]}, "need id"),
])
def test_a_replay_that_selects_nothing_or_mixes_arguments_is_refused(client, body, reason):
    response = client.post("/api/v1/dlq/replay", headers=bearer("operate"), json=body)
    assert response.status_code == 422
    assert reason in response.text


def test_a_backfill_ending_before_it_starts_is_refused(client):
    response = client.post("/api/v1/jobs/nightly/backfill", headers=bearer("operate"),
                           json={"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"})
    assert response.status_code == 422
    assert "end must not be before start" in response.text


@pytest.mark.parametrize("path", ["/health", "/health/live", "/health/ready", "/openapi.json", "/",
                                  "/static/dashboard.js"])
def test_health_docs_and_the_dashboard_page_need_no_token(client, path):
    assert client.get(path).status_code in (200, 503)


def test_the_openapi_document_is_valid_and_declares_bearer_auth(client):
    from openapi_spec_validator import validate

    spec = client.get("/openapi.json").json()
    validate(spec)
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    for path in ("/api/v1/sync/all", "/api/v1/jobs/{job_id}/pause", "/api/v1/dlq/replay", "/health"):
        assert path in spec["paths"]
    assert spec["paths"]["/api/v1/sync/all"]["post"]["security"] == [{"HTTPBearer": []}]


def test_the_app_refuses_to_start_without_a_secret():
    from broker_jobs.errors import ConfigError

    with pytest.raises(ConfigError, match="API_JWT_SECRET"):
        create_app(Settings(api_jwt_secret=None), load_jobs=False)
