"""Every failure the CLI can meet is one line on stderr and a documented exit code.

The real ``broker-jobs`` runs as a subprocess against a port nothing listens
on (never a stopped shared service), a jobs file that is not UTF-8, a SQLite
path in a missing directory, a jobs file broken in another environment.
"""

from __future__ import annotations

import re

import pytest

from broker_jobs.cli.common import EXIT_CODES
from tests.support import RABBITMQ_URL, ROOT, free_port, port_open, run_cli, unavailable, vhost


def one_line(result) -> str:
    """The error line; fails on a traceback or several lines."""
    err = result.stderr.strip()
    assert "Traceback" not in err, err[-2000:]
    assert err.count("\n") == 0, err[-2000:]
    assert err.startswith("broker-jobs: "), err
    return err


@pytest.mark.parametrize("command", [("history",), ("jobs", "list"), ("history", "--json"), ("setup",)])
def test_an_unreachable_database_is_one_line_and_exit_5(command):
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nothing"
    result = run_cli(*command, env={"DATABASE_URL": url})
    assert result.returncode == 5, result.stderr[-2000:]
    assert "database unavailable at DATABASE_URL" in one_line(result)


def test_dlq_list_with_a_letter_and_the_database_unreachable_is_one_line_and_exit_5(tmp_path):
    import json
    import uuid

    import pika

    if not port_open(RABBITMQ_URL, 5672):
        unavailable(f"RabbitMQ at {RABBITMQ_URL}")
    with vhost("bj-cli-db") as amqp_url:
        if amqp_url is None:
            unavailable("a vhost of its own on RabbitMQ")
        env = {"RABBITMQ_URL": amqp_url, "DATABASE_URL": f"sqlite:///{tmp_path}/jobs.sqlite3"}
        assert run_cli("setup", env=env).returncode == 0
        # A dead letter in the diagnostics queue's dead-letter queue, as a worker leaves it.
        from broker_jobs import registry
        from broker_jobs.cli.common import load_jobs

        load_jobs()
        queue = registry.get("diagnostics").queue
        connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        try:
            body = {"queue_name": queue, "actor_name": "diagnostics", "args": [], "kwargs": {}, "options": {},
                    "message_id": str(uuid.uuid4()), "message_timestamp": 0}
            connection.channel().basic_publish("", f"{queue}.XQ", json.dumps(body).encode())
        finally:
            connection.close()
        down = {**env, "DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nothing"}
        result = run_cli("dlq", "list", env=down)
        assert result.returncode == 5, result.stdout + result.stderr[-2000:]
        assert "database unavailable at DATABASE_URL" in one_line(result)


def test_rabbitmq_on_a_wrong_port_is_one_line_and_exit_4():
    url = f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F"
    result = run_cli("send", "diagnostics", env={"RABBITMQ_URL": url})
    assert result.returncode == 4, result.stderr[-2000:]
    assert "RabbitMQ unavailable at RABBITMQ_URL" in one_line(result)


def test_a_jobs_file_that_is_not_utf8_is_one_line_naming_it_and_exit_2(tmp_path):
    jobs = tmp_path / "jobs.yaml"
    jobs.write_bytes(b"jobs:\n  - {id: caf\xe9, actor: diagnostics, cron: '0 3 * * *'}\n")
    result = run_cli("check-config", str(jobs))
    assert result.returncode == 2
    line = one_line(result)
    assert str(jobs) in line and "not UTF-8" in line


def test_a_sqlite_path_in_a_missing_directory_is_an_error_not_a_new_directory(tmp_path):
    missing = tmp_path / "no-such-dir"
    result = run_cli("history", env={"DATABASE_URL": f"sqlite:///{missing}/jobs.sqlite3"})
    assert result.returncode == 2
    assert "DATABASE_URL" in one_line(result) and "does not exist" in result.stderr
    assert not missing.exists()


def test_the_default_data_directory_is_still_created_as_make_run_expects(tmp_path):
    result = run_cli("history", env={"DATABASE_URL": "sqlite:///data/broker_jobs.sqlite3"}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "data" / "broker_jobs.sqlite3").is_file()


def test_check_config_validates_every_environment_not_only_the_current_one(tmp_path):
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text("jobs:\n  - id: nightly\n    actor: diagnostics\n"
                    "    cron: {development: '0 3 * * *', production: 'not a cron'}\n", encoding="utf-8")
    result = run_cli("check-config", str(jobs), env={"APP_ENV": "development"})
    assert result.returncode == 2
    line = one_line(result)
    assert "APP_ENV=production" in line and "cron" in line
    fine = tmp_path / "fine.yaml"
    fine.write_text("jobs:\n  - id: nightly\n    actor: diagnostics\n"
                    "    cron: {development: '*/5 * * * *', default: '0 3 * * *'}\n", encoding="utf-8")
    ok = run_cli("check-config", str(fine))
    assert ok.returncode == 0, ok.stderr
    assert "development 1" in ok.stdout and "production 1" in ok.stdout


def test_a_token_beyond_the_maximum_lifetime_is_not_minted():
    env = {"API_JWT_SECRET": "s" * 40, "API_TOKEN_MAX_TTL": "3600"}
    result = run_cli("token", "--scope", "read", "--ttl", "7200", env=env)
    assert result.returncode == 2 and result.stdout == ""
    assert "API_TOKEN_MAX_TTL" in one_line(result)
    assert run_cli("token", "--scope", "read", "--ttl", "3600", env=env).returncode == 0


def test_serve_on_a_port_already_taken_is_one_line_and_exit_2():
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("serve", "--port", str(port), env={"API_JWT_SECRET": "s" * 40})
    assert result.returncode == 2
    assert f"127.0.0.1:{port}" in one_line(result)


def test_serve_refuses_to_print_a_token_when_binding_beyond_loopback():
    result = run_cli("serve", "--host", "0.0.0.0", "--port", str(free_port()), "--print-token",
                     env={"API_JWT_SECRET": "s" * 40})
    assert result.returncode == 2 and "eyJ" not in result.stdout + result.stderr
    assert "--print-token" in one_line(result)


def test_the_readme_lists_every_exit_code_of_the_cli():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("<!-- section: cli -->")
    cli = readme[start:readme.index("<!-- /section: cli -->", start)]
    documented = {int(code) for code in re.findall(r"^\| `(\d+)` \|", cli, re.M)}
    assert documented == set(EXIT_CODES)


def test_a_reader_that_goes_away_ends_the_output_quietly_with_exit_141():
    """``broker-jobs jobs simulate --from .. --to .. | head -1``: the year does not fit the pipe; no line on stderr."""
    import os
    import subprocess
    import sys

    command = [sys.executable, "-m", "broker_jobs", "jobs", "simulate", "--from", "2027-01-01Z", "--to", "2028-01-01Z"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
                          env={**os.environ, "PYTHONUNBUFFERED": "0"}) as process:
        assert process.stdout is not None and process.stderr is not None
        first = process.stdout.readline()
        process.stdout.close()  # what head does after its line
        err = process.stderr.read().decode()
        code = process.wait(timeout=60)
    assert first.startswith(b"2027-01-01T"), first  # a date with a zone starts at its midnight
    assert err == "" and code == 141, (code, err[-2000:])
