"""The shared HTTP client against a real local server: retries, Retry-After, rate limits, the breaker."""

from __future__ import annotations

import time

import httpx
import pytest

from broker_jobs.app.connectors.http import ApiClient, CircuitOpenError, RateLimitedError, retry_after
from broker_jobs.app.settings import get_app_settings
from broker_jobs.errors import TransientJobError
from broker_jobs.settings import get_settings
from tests.support import Answer, FakeApis


def github(apis: FakeApis) -> ApiClient:
    return ApiClient("github-test", get_app_settings(), base_url=apis.url,
                     headers={"Authorization": f"Bearer {apis.state.github_token}"})


def test_a_burst_of_5xx_is_retried_until_the_answer_comes(jobs_env, apis: FakeApis):
    apis.state.script("/users/", Answer(503), Answer(502), Answer(500))
    with github(apis) as api:
        response = api.request("GET", "/users/octo-org/repos")
    assert response.status_code == 200 and len(response.json()) == 2
    assert api.retries == 3 and apis.state.count("/users/", 503) == 1


def test_retries_give_up_as_a_transient_job_error(jobs_env, apis: FakeApis):
    apis.state.script("/users/", *[Answer(503)] * 4)
    with github(apis) as api, pytest.raises(TransientJobError, match="503"):
        api.request("GET", "/users/octo-org/repos")
    assert apis.state.count("/users/") == 4  # the first try and HTTP_MAX_RETRIES=3


def test_429_waits_for_retry_after_then_succeeds(jobs_env, apis: FakeApis):
    apis.state.script("/users/", Answer(429, {"Retry-After": "1"}))
    started = time.monotonic()
    with github(apis) as api:
        assert api.request("GET", "/users/octo-org/repos").status_code == 200
    assert time.monotonic() - started >= 0.9  # it honoured the server's wait


def test_a_wait_longer_than_http_max_wait_fails_fast_for_a_later_retry(jobs_env, apis: FakeApis):
    apis.state.script("/users/", Answer(429, {"Retry-After": "3600"}))
    with github(apis) as api, pytest.raises(RateLimitedError, match="3600"):
        api.request("GET", "/users/octo-org/repos")


def test_github_403_with_no_remaining_rate_is_a_rate_limit(jobs_env, apis: FakeApis):
    reset = str(int(time.time()) + 1)
    apis.state.script("/users/", Answer(403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset}))
    with github(apis) as api:
        assert api.request("GET", "/users/octo-org/repos").status_code == 200
    assert apis.state.count("/users/", 403) == 1


def test_retry_after_reads_seconds_dates_and_rate_limit_resets():
    request = httpx.Request("GET", "http://x/")
    assert retry_after(httpx.Response(429, headers={"Retry-After": "7"}, request=request)) == 7
    dated = httpx.Response(429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, request=request)
    assert retry_after(dated, now=1445412470) == 10
    reset = httpx.Response(200, headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "105"}, request=request)
    assert retry_after(reset, now=100) == 5
    assert retry_after(httpx.Response(200, request=request)) is None


def test_the_breaker_opens_after_repeated_failures_and_then_fails_fast(jobs_env, apis: FakeApis, settings_env):
    settings_env.setenv("BREAKER_FAIL_MAX", "3")
    settings_env.setenv("HTTP_MAX_RETRIES", "10")
    get_settings.cache_clear()
    apis.state.script("/users/", *[Answer(503)] * 20)
    with github(apis) as api, pytest.raises(CircuitOpenError, match="circuit open"):
        api.request("GET", "/users/octo-org/repos")
    assert apis.state.count("/users/") == 3
    with github(apis) as api, pytest.raises(CircuitOpenError):
        api.request("GET", "/users/octo-org/repos")
    assert apis.state.count("/users/") == 3  # the open breaker sent nothing


def test_network_errors_are_retried_then_reported(jobs_env):
    with ApiClient("nowhere", get_app_settings(), base_url="http://127.0.0.1:9") as api:
        with pytest.raises(TransientJobError, match="nowhere"):
            api.request("GET", "/")
        assert api.retries == 3


def test_an_exhausted_rate_limit_on_a_success_delays_the_next_request_until_the_reset(jobs_env, apis: FakeApis):
    reset = time.time() + 1
    apis.state.script("/users/", Answer(200, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)},
                                        body=[]))
    with github(apis) as api:
        assert api.request("GET", "/users/octo-org/repos").json() == []
        api.request("GET", "/users/octo-org/repos")
    assert time.time() >= reset  # the second request waited for the window to reset
