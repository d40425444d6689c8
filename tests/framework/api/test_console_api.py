"""The console's API against a real ``broker-jobs serve``, a real worker, RabbitMQ and the database."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, insert

from tests.support import UNREACHABLE, bearer, queue_depth, wait_for

from .test_with_a_worker import publish_raw

pytestmark = pytest.mark.rabbitmq


def publish_bad(service_env: dict[str, str], *args: Any) -> str:
    """A ``diagnostics`` message with arguments it refuses (it dies at once), sent as another service would."""
    return publish_raw(service_env, "diagnostics", *args)


def get(server: str, path: str, scope: str = "read", **params: Any) -> httpx.Response:
    return httpx.get(server + path, params=params, headers=bearer(scope), timeout=20)


def dead_detail(server: str, message_id: str) -> dict[str, Any] | None:
    """The letter's detail once the history has it too: archived, and its failed attempt recorded by the worker
    (until then the detail falls back on the letter's own error, with no start time)."""
    response = get(server, f"/api/v1/dlq/{message_id}")
    if response.status_code != 200:
        return None
    detail: dict[str, Any] = response.json()
    recorded = detail["status"] == "dead" and detail["attempts"] and detail["attempts"][-1]["started_at"]
    return detail if recorded else None


def test_a_dead_letter_detail_has_its_arguments_attempt_traceback_host_and_timeline(server, worker, service_env):
    dead_id = publish_bad(service_env, "wrong", 7)
    detail = wait_for(lambda: dead_detail(server, dead_id), "the dead letter's detail", timeout=30, every=0.2,
                      ignore=UNREACHABLE)
    assert detail["actor"] == "diagnostics" and detail["queue"] == "default"
    assert detail["args"] == ["wrong", 7] and detail["kwargs"] == {}
    [attempt] = detail["attempts"]
    assert "ArgumentsInvalid" in attempt["error"] and "Traceback" in attempt["traceback"]
    assert detail["host"] and detail["worker"].startswith(detail["host"] + ":")
    assert detail["dead_letter"]["state"] == "dead" and "ArgumentsInvalid" in detail["dead_letter"]["reason"]
    assert [e["event"] for e in detail["timeline"]][-1] == "dead-lettered"
    assert detail["arguments_schema"]["type"] == "object"
    same = get(server, f"/api/v1/runs/{dead_id}").json()
    assert same["status"] == "dead" and same["attempts"] == detail["attempts"]
    assert get(server, "/api/v1/runs/no-such-message").status_code == 404
    assert get(server, "/api/v1/dlq/no-such-message").status_code == 404


def test_a_scheduled_run_detail_names_its_fire_id_slot_report_and_arguments(server, worker):
    started = httpx.post(f"{server}/api/v1/jobs/nightly-diagnostics/run", headers=bearer("operate"), json={},
                         timeout=20).json()
    run = wait_for(lambda: (r := get(server, f"/api/v1/runs/{started['message_id']}")).status_code == 200
                   and r.json()["status"] == "succeeded" and r.json(), "the run to succeed", timeout=30, every=0.2,
                   ignore=UNREACHABLE)
    assert run["schedule_id"] == "nightly-diagnostics" and run["manual"] and run["slot"].startswith("manual:")
    assert run["report"]["ok"] in (True, False) and run["attempts"] == []
    assert run["args"] == [] and run["host"]
    assert [e["event"] for e in run["timeline"]][:1] == ["enqueued"] and run["timeline"][-1]["event"] == "succeeded"


def test_history_search_filters_and_pages_newest_first_without_repeats(server, worker, service_env):
    ids = [publish_bad(service_env, f"page-{i}") for i in range(5)]
    wait_for(lambda: {r["message_id"] for r in get(server, "/api/v1/runs", status="dead", limit=100).json()["runs"]}
             >= set(ids), "five dead runs", timeout=30, every=0.2, ignore=UNREACHABLE)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"status": "dead", "actor": "diagnostics", "error": "argumentsinvalid", "limit": 2}
        page = get(server, "/api/v1/runs", **params, **({"cursor": cursor} if cursor else {})).json()
        assert all(r["status"] == "dead" and "ArgumentsInvalid" in r["error"] for r in page["runs"])
        seen += [r["message_id"] for r in page["runs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) and set(ids) <= set(seen)
    assert seen.index(ids[4]) < seen.index(ids[0])  # newest first
    assert get(server, "/api/v1/runs", error="no such text anywhere").json() == {"runs": [], "next_cursor": None}
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert get(server, "/api/v1/runs", since=future).json()["runs"] == []
    assert get(server, "/api/v1/runs", queue="default", status="dead").json()["runs"]
    bad = get(server, "/api/v1/runs", status="exploded")
    assert bad.status_code == 422 and bad.json()["message"] == "invalid status"


def test_an_edited_replay_is_checked_against_the_jobs_arguments_before_anything_is_sent(server, worker, service_env):
    dead_id = publish_bad(service_env, "still wrong")
    wait_for(lambda: dead_detail(server, dead_id), "the dead letter", timeout=30, every=0.2, ignore=UNREACHABLE)
    refused = httpx.post(f"{server}/api/v1/dlq/{dead_id}/replay", headers=bearer("operate"),
                         json={"args": ["x"]}, timeout=20)
    assert refused.status_code == 422 and refused.json()["detail"].startswith("args:")
    refused = httpx.post(f"{server}/api/v1/dlq/replay", headers=bearer("operate"),
                         json={"id": dead_id, "kwargs": {"nope": 1}}, timeout=20)
    assert refused.status_code == 422 and refused.json()["detail"].startswith("kwargs:")
    assert dead_detail(server, dead_id)["dead_letter"]["state"] == "dead"  # nothing was sent
    assert queue_depth(service_env["RABBITMQ_URL"], "default.XQ") >= 1
    assert httpx.post(f"{server}/api/v1/dlq/{dead_id}/replay", headers=bearer("read"), json={},
                      timeout=20).status_code == 403
    done = httpx.post(f"{server}/api/v1/dlq/{dead_id}/replay", headers=bearer("operate"), json={"args": []},
                      timeout=20)
    assert done.status_code == 200, done.text
    new_id = done.json()["replayed"][0]["replayed_as"]
    copy = wait_for(lambda: (r := get(server, f"/api/v1/runs/{new_id}")).status_code == 200
                    and r.json()["status"] == "succeeded" and r.json(), "the edited replay to succeed", timeout=30,
                    every=0.2, ignore=UNREACHABLE)
    assert copy["args"] == []
    assert get(server, f"/api/v1/dlq/{dead_id}").json()["dead_letter"]["state"] == "replayed"


def test_dead_letters_group_by_reason_and_a_selection_is_replayed_or_purged(server, worker, service_env):
    keep = publish_bad(service_env, "keep me")
    chosen = [publish_bad(service_env, "bulk", i) for i in range(3)]

    def grouped() -> dict[str, Any]:
        return {d["id"]: g for g in get(server, "/api/v1/dlq/groups").json() for d in g["letters"]}

    wait_for(lambda: set(grouped()) >= {keep, *chosen}, "the letters grouped", timeout=30, every=0.2,
             ignore=UNREACHABLE)
    groups = grouped()
    assert "ArgumentsInvalid" in groups[chosen[0]]["reason"] and groups[chosen[0]]["count"] >= 3
    assert httpx.post(f"{server}/api/v1/dlq/purge", headers=bearer("operate"), json={},
                      timeout=20).status_code == 422
    purged = httpx.post(f"{server}/api/v1/dlq/purge", headers=bearer("operate"), json={"ids": chosen[:2]},
                        timeout=30)
    assert purged.status_code == 200, purged.text
    assert sorted(d["id"] for d in purged.json()["purged"]) == sorted(chosen[:2])
    replayed = httpx.post(f"{server}/api/v1/dlq/replay-selected", headers=bearer("operate"),
                          json={"ids": [chosen[2]]}, timeout=30)
    assert [d["id"] for d in replayed.json()["replayed"]] == [chosen[2]]
    assert get(server, f"/api/v1/dlq/{chosen[0]}").json()["dead_letter"]["state"] == "purged"
    assert get(server, f"/api/v1/dlq/{chosen[2]}").json()["dead_letter"]["state"] == "replayed"
    assert keep in grouped()  # untouched


def test_each_worker_process_publishes_a_heartbeat_and_a_stale_one_is_flagged(server, worker, service_env):
    def mine() -> list[dict[str, Any]]:
        return [w for w in get(server, "/api/v1/workers").json() if not w["worker_id"].startswith("gone")]

    [beat] = wait_for(mine, "the worker's heartbeat", timeout=30, every=0.2, ignore=UNREACHABLE)
    assert beat["threads"] == 2 and "default" in beat["queues"] and beat["pid"] > 0 and beat["version"]
    assert beat["stale"] is False and beat["age_s"] < 15
    old = datetime.now(UTC) - timedelta(minutes=5)
    engine = create_engine(service_env["DATABASE_URL"])
    from broker_jobs.store.models import worker_beats

    with engine.begin() as conn:
        conn.execute(insert(worker_beats), [dict(worker_id="gone:1", host="gone", pid=1, version="0.0.1",
                                                 queues=["default"], threads=1, current=[], started_at=old,
                                                 heartbeat_at=old)])
    engine.dispose()
    [gone] = [w for w in get(server, "/api/v1/workers").json() if w["worker_id"] == "gone:1"]
    assert gone["stale"] is True and gone["age_s"] >= 299


def test_the_calendar_lists_each_schedules_slots_and_pauses(server):
    week = get(server, "/api/v1/calendar", days=7).json()
    [job] = [j for j in week["jobs"] if j["id"] == "nightly-diagnostics"]
    assert week["bucket_s"] == 86400 and job["paused"] is False and isinstance(job["slots"], list)
    assert get(server, "/api/v1/calendar", days=1).json()["bucket_s"] == 3600
    assert get(server, "/api/v1/calendar", days=8).status_code == 422


def test_live_updates_arrive_as_server_sent_events(server, worker):
    assert httpx.get(server + "/api/v1/events", timeout=10).status_code == 401
    with httpx.stream("GET", server + "/api/v1/events", headers=bearer("read"), timeout=20) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        event, data = None, None
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "overview":
                data = json.loads(line[6:])
                break
    assert data is not None and {"queues", "jobs", "runs", "dead", "workers"} <= set(data)


def test_whoami_tells_the_page_whether_the_token_may_operate(server):
    assert get(server, "/api/v1/whoami", "read").json()["operate"] is False
    assert get(server, "/api/v1/whoami", "operate").json()["operate"] is True
    assert httpx.get(server + "/api/v1/whoami", timeout=10).status_code == 401


def test_every_console_route_is_in_the_openapi_document_with_its_statuses(server):
    paths = httpx.get(server + "/openapi.json", timeout=10).json()["paths"]
    for path, method in [("/api/v1/runs", "get"), ("/api/v1/runs/{message_id}", "get"),
                         ("/api/v1/dlq/{message_id}", "get"), ("/api/v1/dlq/groups", "get"),
                         ("/api/v1/dlq/replay-selected", "post"), ("/api/v1/dlq/purge", "post"),
                         ("/api/v1/dlq/{message_id}/replay", "post"), ("/api/v1/workers", "get"),
                         ("/api/v1/calendar", "get"), ("/api/v1/events", "get"), ("/api/v1/whoami", "get")]:
        assert {"401", "403"} <= set(paths[path][method]["responses"]), (path, method)
