"""Webhook alerts: what is posted, how often, and that a dead webhook never holds anyone up."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from broker_jobs import alerts, job, metrics
from broker_jobs.errors import PermanentJobError
from tests.support.scheduling import Clock, jobs_file, make_scheduler


class Webhook:
    """A local HTTP endpoint recording what it receives; it can fail or hang on demand."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.status = 200
        self.release = threading.Event()
        self.release.set()
        self.arrived = threading.Event()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.received.append(json.loads(body))
                hook.arrived.set()
                hook.release.wait(30)
                self.send_response(hook.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.close()


@pytest.fixture
def sender(webhook: Webhook) -> Iterator[alerts.AlertSender]:
    sender = alerts.AlertSender(webhook.url, cooldown=3600, timeout=5, fail_max=3, reset_timeout=3600)
    alerts.set_sender(sender)
    yield sender
    alerts.set_sender(None)


def test_a_job_that_dies_posts_one_json_alert_naming_it(stub_broker, stub_worker, sender, webhook):
    name = f"doomed_{uuid.uuid4().hex[:8]}"

    @job(name=name, broker=stub_broker, max_retries=0)
    def doomed() -> None:
        raise PermanentJobError("the source is gone")

    message = doomed.send()
    stub_broker.join("default", fail_fast=False)
    stub_worker.join()
    assert sender.drain()
    [alert] = webhook.received
    assert alert["kind"] == "job_failed" and alert["job"] == name
    assert alert["detail"]["message_id"] == message.message_id
    assert "the source is gone" in alert["summary"]


def test_a_job_alerts_at_most_once_per_cooldown(sender, webhook):
    for attempt in range(5):
        alerts.job_failed("etl_sync", f"m{attempt}", "etl", "boom", 4)
    alerts.job_failed("vault_sync", "m9", "etl", "boom", 4)
    assert sender.drain()
    assert [a["job"] for a in webhook.received] == ["etl_sync", "vault_sync"]
    assert sender.suppressed == 4


def test_a_missed_slot_reported_by_the_scheduler_posts_an_alert(tmp_path, stub_broker, sender, webhook):
    @job(name="missed_probe", queue="default", broker=stub_broker)
    def missed_probe() -> None:
        """A scheduled job whose slots are missed while no scheduler runs."""

    clock = Clock()
    path = jobs_file(tmp_path, """
        jobs:
          - id: etl-spotify-tracks
            actor: missed_probe
            interval: {seconds: 300}
            misfire: skip
    """)
    first = make_scheduler(path, stub_broker, clock)
    assert first.step_lease()
    first.release()  # stopped at T0 after recording the job's start
    clock.advance(305)  # the slot at 10:05 passes while no scheduler runs
    second = make_scheduler(path, stub_broker, clock)
    assert second.step_lease()
    second.tick(clock.now)
    assert sender.drain()
    [alert] = webhook.received
    assert alert == {**alert, "kind": "slot_missed", "job": "etl-spotify-tracks"}
    assert alert["detail"]["slot"] == "2026-01-01T10:05:00+00:00"


def test_recording_a_missed_slot_in_the_metrics_sends_no_alert(sender, webhook):
    slot = datetime(2026, 1, 1, 10, 5, tzinfo=UTC)
    metrics.observe_fire("etl-spotify-tracks", slot, 0.0, "missed")
    alerts.job_failed("sentinel", "m1", "etl", "boom", 1)  # posted after anything queued before it
    assert sender.drain()
    assert [a["job"] for a in webhook.received] == ["sentinel"]


def test_a_hanging_webhook_does_not_hold_up_the_caller(sender, webhook):
    webhook.release.clear()  # the webhook accepts the request and never answers (until released)
    alerts.job_failed("slow_job", "m1", "etl", "boom", 1)
    assert webhook.arrived.wait(10)
    # The caller came back while the post is still in flight.
    assert not webhook.release.is_set() and sender.sent == 0
    webhook.release.set()
    assert sender.drain()
    assert sender.sent == 1


def test_a_failing_webhook_opens_the_circuit_and_is_left_alone(sender, webhook):
    webhook.status = 500
    for i in range(6):
        alerts.job_failed(f"job_{i}", "m", "etl", "boom", 1)
    assert sender.drain()
    assert len(webhook.received) == 3  # fail_max posts, then the circuit is open
    assert sender.failed == 6 and sender.sent == 0


def test_without_a_webhook_url_nothing_is_queued():
    sender = alerts.AlertSender(None)
    assert sender.notify("job_failed", "etl_sync", "boom") is False


def test_the_cooldown_is_shared_between_processes(webhook):
    from broker_jobs.coordination import MemoryClaims

    shared = MemoryClaims()  # stands for Redis or the database, which every process reaches
    first, second = (alerts.AlertSender(webhook.url, cooldown=3600, claims=shared) for _ in range(2))
    first.notify("job_failed", "etl_sync", "boom")
    assert first.drain()
    second.notify("job_failed", "etl_sync", "boom again")
    second.notify("job_failed", "vault_sync", "boom")
    assert second.drain()
    assert [a["job"] for a in webhook.received] == ["etl_sync", "vault_sync"]
    assert second.suppressed == 1


def test_the_shared_cooldown_lives_in_the_database_without_redis(webhook, tmp_path):
    from broker_jobs.coordination import DatabaseClaims

    claims = DatabaseClaims(f"sqlite:///{tmp_path}/claims.sqlite3")
    senders = [alerts.AlertSender(webhook.url, cooldown=3600, claims=claims) for _ in range(3)]
    for sender in senders:
        sender.notify("slot_missed", "nightly", "missed")
        assert sender.drain()
    assert len(webhook.received) == 1
