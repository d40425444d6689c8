"""One redaction for URL credentials, and environment errors that name a variable without echoing a secret."""

from __future__ import annotations

import json
import logging
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from broker_jobs.errors import ConfigError
from broker_jobs.redaction import MASK, redact, redact_call, redact_value
from broker_jobs.settings import load_settings
from tests.support import run_cli

schemes = st.sampled_from(["amqp", "amqps", "redis", "rediss", "postgresql", "postgresql+psycopg", "https", "http"])
users = st.text("abcdefghijklmnopqrstuvwxyz0123456789._-", max_size=12)
hosts = st.sampled_from(["127.0.0.1", "db.example.com", "rabbit", "[::1]"])
ports = st.one_of(st.just(""), st.integers(1, 65535).map(lambda p: f":{p}"))
paths = st.text("abcdefghijklmnopqrstuvwxyz0123456789/%._-?&", max_size=20).map(lambda p: "/" + p)
# Anything a password may hold; whitespace cannot appear unencoded in a URL.
raw_passwords = st.text(st.characters(exclude_categories=("Cs", "Zs", "Zl", "Zp", "Cc")), min_size=1, max_size=30)
words = st.text("abcdefghijklmnopqrstuvwxyz0123456789.,;()[]{}'\"-", max_size=20)


@settings(max_examples=500)
@given(scheme=schemes, user=users, password=raw_passwords, host=hosts, port=ports, path=paths,
       before=words, after=words, encode=st.booleans())
def test_the_password_of_a_url_anywhere_in_a_text_is_masked_and_nothing_else_changes(
        scheme, user, password, host, port, path, before, after, encode):
    secret = quote(password, safe="") if encode else password
    url = f"{scheme}://{user}:{secret}@{host}{port}{path}"
    assert redact(f"{before} {url} {after}") == f"{before} {scheme}://{user}:{MASK}@{host}{port}{path} {after}"


@settings(max_examples=300)
@given(scheme=schemes, password=raw_passwords, host=hosts, path=paths)
def test_a_url_password_is_masked_inside_reprs_json_and_tracebacks(scheme, password, host, path):
    secret = "Zx9" + quote(password, safe="")
    url = f"{scheme}://me:{secret}@{host}{path}"
    for text in (repr(url), json.dumps({"url": url}), f"Traceback:\n  ValueError: cannot parse {url!r}\n",
                 f"could not connect to {url}; retrying", str(httpx.Response(
                     404, request=httpx.Request("GET", f"http://me:{secret}@127.0.0.1:1/x")).request.url)):
        assert secret not in redact(text)
    assert secret not in json.dumps(redact_value({"errors": {"a": [url, (url,)]}, url: 1}))


@given(text=st.text(max_size=200))
def test_text_without_user_info_or_credential_parameters_is_left_as_it_is(text):
    plain = text.replace("@", "").replace("=", "")
    assert redact(plain) == plain
    assert redact(redact(text)) == redact(text)


@pytest.mark.parametrize(("text", "expected"), [
    ("GET https://api.example.com/x?access_token=abc123&page=2",
     "GET https://api.example.com/x?access_token=***&page=2"),
    ("https://h/x?API_KEY=zz#top", "https://h/x?API_KEY=***#top"),
    ("redis://:hunter2@cache:6379/0", "redis://:***@cache:6379/0"),
    ("postgresql://u:se/cr@et@db/app", "postgresql://u:***@db/app"),  # SQLAlchemy reads 'se/cr', urllib more
    ("amqp://guest@rabbit/%2F", "amqp://guest@rabbit/%2F"),  # a user name alone is not a secret
    ("http://[::1]:8080/path", "http://[::1]:8080/path"),
])
def test_credential_query_parameters_and_odd_urls(text, expected):
    assert redact(text) == expected


# Environment errors


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(password=raw_passwords, variable=st.sampled_from([
    ("DATABASE_URL", "postgresql://app:{}@db:notaport/app"),
    ("DATABASE_URL", "mysql://app:{}@db/app"),
    ("RABBITMQ_URL", "amqp://app:{}@rabbit:99999/%2F"),
    ("RABBITMQ_URL", "http://app:{}@rabbit/"),
    ("REDIS_URL", "redis://:{}@cache:port/0"),
    ("REDIS_URL", "memcached://:{}@cache/0"),
]), encode=st.booleans())
def test_an_invalid_url_variable_is_named_and_its_password_never_echoed(settings_env, password, variable, encode):
    name, template = variable
    # Unencoded, '/', '?' or '#' ends the URL's authority before the bad port: the URL is then valid (an empty
    # host, the rest a path), a different case from the invalid variable this test is about.
    assume(encode or not set("/?#") & set(password))
    secret = "Zx9" + (quote(password, safe="") if encode else password)
    for other in ("DATABASE_URL", "RABBITMQ_URL", "REDIS_URL"):  # the examples share one environment
        settings_env.delenv(other, raising=False)
    settings_env.setenv(name, template.format(secret))
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith(f"invalid environment variable {name}") and "\n" not in message
    assert secret not in message


@pytest.mark.parametrize(("name", "value"), [
    ("DATABASE_URL", "postgresql://u:s3cr3t-pw@host:notaport/db"),
    ("RABBITMQ_URL", "amqp://u:s3cr3t-pw@rabbit:notaport/%2F"),
    ("RABBITMQ_URL", "http://u:s3cr3t-pw@rabbit/"),
    ("REDIS_URL", "redis://:s3cr3t-pw@cache:70000/0"),
])
def test_the_cli_names_a_bad_url_variable_in_one_line_without_its_password(name, value):
    result = run_cli("queues", env={name: value})
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"broker-jobs: invalid environment variable "
                                                                       f"{name}")
    assert "s3cr3t" not in result.stderr + result.stdout and "Traceback" not in result.stderr


def test_log_lines_and_health_details_mask_a_url_password(caplog: pytest.LogCaptureFixture):
    from broker_jobs import health
    from broker_jobs.logging import JsonFormatter, PlainFormatter, RedactingFormatter

    def probe() -> str:  # a real library error quoting the URL it was given, password included
        request = httpx.Request("GET", "http://reader:s3cr3t-pw@127.0.0.1:1/status")
        httpx.Response(503, request=request).raise_for_status()
        return "unreachable"

    check = health._timed("status-page", probe)
    assert not check.ok and "reader:***@127.0.0.1:1" in check.detail and "s3cr3t" not in check.detail
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "cannot reach %s", ("amqp://u:s3cr3t-pw@h/",),
                               None)
    for formatter in (PlainFormatter("%(message)s"), JsonFormatter(), RedactingFormatter(logging.Formatter())):
        line = formatter.format(record)
        assert "s3cr3t" not in line and "u:***@h" in line


@pytest.mark.parametrize("hostile", [
    "a" * 200_000 + "://x",
    "http://u:" + "b" * 200_000,
    "http://u:p" * 20_000,
    "a://:" * 40_000 + "@host",
])
def test_long_hostile_text_is_redacted_in_one_pass(hostile):
    # A note's link target can reach a report: a backtracking pattern took minutes on these.
    masked = redact(hostile)
    assert redact(masked) == masked
    if hostile.endswith("@host"):
        assert masked == f"a://:{MASK}@host"


# Values a job's arguments hold: plain ones, and strings with a URL password or a `key=secret` in them.
_secrets = st.sampled_from(["redis://:hunter2@cache:6379/0", "dsn=postgresql://u:pw@db/app", "&password=hunter2",
                           "?token=s3cr3t", "a=b", "x://y"])
_flat = st.one_of(_secrets, st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False),
                  st.text(max_size=20))
# Mostly flat calls (the fast path), some with containers (the recursion).
_argument_values = _flat | st.recursive(
    _flat,
    lambda inner: st.lists(inner, max_size=3) | st.tuples(inner) | st.dictionaries(st.text(max_size=8), inner,
                                                                                    max_size=3),
    max_leaves=8,
)


@settings(max_examples=500)
@given(args=st.lists(_argument_values, max_size=4),
       kwargs=st.none() | st.dictionaries(st.one_of(st.text(max_size=10), _secrets), _argument_values, max_size=3))
def test_a_calls_arguments_are_redacted_as_the_whole_call_would_be(args, kwargs):
    assert redact_call(tuple(args), kwargs) == redact_value({"args": list(args), "kwargs": dict(kwargs or {})})


def test_a_plain_call_is_copied_and_a_password_in_one_argument_or_keyword_is_masked():
    assert redact_call(("bench", 20000, 0.0, True, None), {}) == {"args": ["bench", 20000, 0.0, True, None],
                                                                  "kwargs": {}}
    masked = redact_call(("x", "redis://:hunter2@cache:6379/0"), {"n": 1})
    assert "hunter2" not in json.dumps(masked) and masked["args"][0] == "x" and masked["kwargs"] == {"n": 1}
    assert "hunter2" not in json.dumps(redact_call((), {"url": "redis://:hunter2@cache/0"}))
