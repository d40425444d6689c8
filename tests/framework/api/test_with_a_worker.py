"""The dashboard in headless Chromium, against a real server, worker, RabbitMQ and database.

Needs Debian's ``chromium`` package (``/usr/bin/chromium``) and the Playwright
Python package; no browser is downloaded.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import httpx
import pytest

from tests.support import UNREACHABLE, bearer, token, wait_for

pytestmark = pytest.mark.rabbitmq

JOB = "nightly-diagnostics"
SCREENSHOT = os.path.join(tempfile.gettempdir(), "broker-jobs-dashboard.png")


def runs(server: str) -> list[dict[str, Any]]:
    response = httpx.get(server + "/api/v1/history", params={"actor": "diagnostics"}, headers=bearer("read"),
                         timeout=10)
    response.raise_for_status()
    return response.json()


def run_ids(page: Any) -> set[str]:
    return set(page.eval_on_selector_all(
        '#runs tbody tr[data-actor="diagnostics"]', "rows => rows.map(r => r.dataset.messageId)"))


def test_the_dashboard_shows_a_job_that_just_ran_and_run_now_adds_a_new_run(server, worker, browser):
    started = httpx.post(f"{server}/api/v1/jobs/{JOB}/run", headers=bearer("operate"), json={}, timeout=20)
    assert started.status_code == 200, started.text
    first = started.json()["message_id"]
    wait_for(lambda: any(r["message_id"] == first and r["status"] == "succeeded" for r in runs(server)),
             "the first run to succeed", timeout=30, every=0.1, ignore=UNREACHABLE)

    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    page.goto(f"{server}/?token={token('operate')}")
    assert "token=" not in page.url  # the token left the address bar for sessionStorage
    row = page.locator(f'#runs tbody tr[data-message-id="{first}"]')
    row.wait_for(timeout=15_000)
    assert row.locator(".badge").inner_text().lower() == "succeeded"
    schedule = page.locator(f'#jobs tbody tr[data-job="{JOB}"]')
    assert "diagnostics" in schedule.inner_text()
    before = run_ids(page)

    schedule.locator('button[data-action="run"]').click()
    page.wait_for_function(
        """([known]) => [...document.querySelectorAll('#runs tbody tr[data-actor="diagnostics"]')]
             .some(r => !known.includes(r.dataset.messageId) && r.querySelector('.b-succeeded'))""",
        arg=[sorted(before)], timeout=30_000)
    new = run_ids(page) - before
    assert len(new) == 1
    [message_id] = new
    assert any(r["message_id"] == message_id and r["fire_id"].startswith(f"{JOB}@manual")
               for r in runs(server))
    page.screenshot(path=SCREENSHOT, full_page=True)
    page.close()


def test_a_read_only_token_sees_the_dashboard_without_operate_buttons(server, browser):
    page = browser.new_page()
    page.goto(f"{server}/?token={token('read')}")
    page.locator(f'#jobs tbody tr[data-job="{JOB}"]').wait_for(timeout=15_000)
    assert page.inner_text("#scope") == "read only"
    assert page.locator("button[data-action]").count() == 0
    page.goto(f"{server}/#/dead")
    page.locator("#groups-note").wait_for(timeout=10_000)
    assert page.locator(".bulk").is_hidden()
    page.close()


def test_without_a_token_the_page_asks_for_one_and_accepts_a_pasted_token(server, browser):
    page = browser.new_page()
    page.goto(server + "/")
    page.locator("#login").wait_for(state="visible", timeout=10_000)
    page.fill("#token-input", "not-a-token")
    page.click("#login-form button")
    page.locator("#login-error").wait_for(state="visible", timeout=10_000)
    assert "Token refused" in page.inner_text("#login-error")
    page.fill("#token-input", token("read"))
    page.click("#login-form button")
    page.locator("#app").wait_for(state="visible", timeout=10_000)
    assert page.locator("#login").is_hidden()
    page.close()


def publish_raw(service_env: dict[str, str], actor: str, *args: Any) -> str:
    """Publish a message the way another service's Dramatiq would (AMQP priority and all)."""
    import pika
    from dramatiq.message import Message

    message = Message(queue_name="default", actor_name=actor, args=args, kwargs={}, options={})
    conn = pika.BlockingConnection(pika.URLParameters(service_env["RABBITMQ_URL"]))
    try:
        conn.channel().basic_publish("", "default", message.encode(), pika.BasicProperties(delivery_mode=2))
    finally:
        conn.close()
    return message.message_id


def test_a_dead_letter_is_listed_with_its_reason_and_replayed_with_fixed_arguments(server, worker, service_env):
    dead_id = publish_raw(service_env, "diagnostics", 1)

    def listed() -> list[dict[str, Any]]:
        response = httpx.get(server + "/api/v1/dlq", headers=bearer("read"), timeout=10)
        response.raise_for_status()
        return [d for d in response.json() if d["id"] == dead_id]

    [letter] = wait_for(listed, "the dead letter listed", timeout=30, every=0.1, ignore=UNREACHABLE)
    assert letter["actor"] == "diagnostics" and "ArgumentsInvalid" in letter["reason"]

    replayed = httpx.post(server + "/api/v1/dlq/replay", headers=bearer("operate"),
                          json={"id": dead_id, "args": []}, timeout=20)
    assert replayed.status_code == 200, replayed.text
    [done] = replayed.json()["replayed"]
    new_id = done["replayed_as"]
    wait_for(lambda: any(r["message_id"] == new_id and r["status"] == "succeeded" for r in runs(server)),
             "the replay to succeed", timeout=30, every=0.1, ignore=UNREACHABLE)
    assert listed() == []
    missing = httpx.post(server + "/api/v1/dlq/replay", headers=bearer("operate"), json={"id": dead_id}, timeout=20)
    assert missing.status_code == 404


def test_the_replay_button_sends_a_dead_letter_back(server, worker, service_env, browser):
    dead_id = publish_raw(service_env, "diagnostics", "still wrong")
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    page.goto(f"{server}/?token={token('operate')}")
    row = page.locator(f'#dead tbody tr[data-dead-id="{dead_id}"]')
    row.wait_for(timeout=20_000)
    assert "ArgumentsInvalid" in row.inner_text()

    def dead_runs() -> set[str]:
        return {r["message_id"] for r in runs(server) if r["status"] == "dead"}

    before = dead_runs()
    row.locator('button[data-action="replay"]').click()
    page.locator(".toast.ok").wait_for(timeout=10_000)
    row.wait_for(state="detached", timeout=20_000)  # replayed: no longer listed as dead
    # The copy ran under a new message id (and, with the same wrong argument, died again).
    wait_for(lambda: dead_runs() - before, "the replayed copy to run", timeout=30, every=0.1, ignore=UNREACHABLE)
    page.close()
