"""Long operations draw a progress bar on a terminal, and nothing when the output is not one or with ``--json``.

The command runs with its stderr on a real pseudo-terminal, as in a shell, against real RabbitMQ.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time
from pathlib import Path

import pika
import pytest
from dramatiq.message import Message

from tests.support import ROOT, purge, queue_depth, run_cli

pytestmark = pytest.mark.rabbitmq


def dead_letters(url: str, count: int) -> None:
    """``count`` messages of ``default`` in its dead-letter queue, as a worker leaves them."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        for i in range(count):
            body = Message(queue_name="default", actor_name="diagnostics", args=(i,), kwargs={}, options={}).encode()
            channel.basic_publish("", "default.XQ", body, pika.BasicProperties(delivery_mode=2), mandatory=True)
    finally:
        connection.close()


def on_a_terminal(args: list[str], env: dict[str, str], timeout: float = 120) -> tuple[int, str, str]:
    """Run ``broker-jobs ARGS`` with stderr on a pseudo-terminal: (exit code, stdout, what the terminal showed)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "broker_jobs", *args], stdout=subprocess.PIPE, stderr=slave,
                            env={**os.environ, **env, "TERM": "xterm-256color", "COLUMNS": "120"}, cwd=ROOT)
    os.close(slave)
    shown = bytearray()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    os.close(master)
    out = proc.stdout.read().decode() if proc.stdout else ""
    return proc.wait(timeout=30), out, shown.decode(errors="replace")


@pytest.fixture
def env(rabbitmq_url: str, tmp_path: Path) -> dict[str, str]:
    env = {"RABBITMQ_URL": rabbitmq_url, "DATABASE_URL": f"sqlite:///{tmp_path}/jobs.sqlite3"}
    assert run_cli("setup", env=env).returncode == 0
    purge(rabbitmq_url, "default.XQ")  # the session's vhost: earlier tests may have left dead letters
    return env


def test_a_bulk_purge_on_a_terminal_shows_its_progress_then_prints_its_result(env):
    dead_letters(env["RABBITMQ_URL"], 40)
    code, out, shown = on_a_terminal(["dlq", "purge", "--queue", "default"], env)
    assert code == 0, shown
    assert "purge dead letters" in shown and "40" in shown  # the bar, with its count
    assert out.strip() == "purged 40 dead letter(s)"
    assert queue_depth(env["RABBITMQ_URL"], "default.XQ") == 0


def test_with_json_or_off_a_terminal_nothing_but_the_result_is_printed(env):
    dead_letters(env["RABBITMQ_URL"], 5)
    code, out, shown = on_a_terminal(["dlq", "purge", "--queue", "default", "--json"], env)
    assert code == 0 and "purge dead letters" not in shown and shown.strip() == ""
    assert len(json.loads(out)) == 5
    dead_letters(env["RABBITMQ_URL"], 5)
    piped = run_cli("dlq", "purge", "--queue", "default", env=env)
    assert piped.returncode == 0 and piped.stderr == "" and piped.stdout.strip() == "purged 5 dead letter(s)"
