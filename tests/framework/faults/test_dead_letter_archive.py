"""The dead-letter tools survive whatever the archive holds.

Hypothesis generates stored letters of every shape (well-formed dead messages, messages
with one field of an unexpected shape, random JSON, random bytes, an oversized one) and
archive rows of unusual content beside them; they are put straight into ``default.XQ``
and the ``dead_letters`` table.  ``broker-jobs dlq list`` and ``GET /api/v1/dlq`` (a real
``broker-jobs serve``) list every one; a bulk replay, from the CLI and then from the API,
replays exactly the replayable ones, lists the others as skipped with why, and marks
exactly the replayed rows.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pika
import pytest
from hypothesis import strategies as st
from sqlalchemy import create_engine, insert, text

from tests.support import (
    collect,
    free_port,
    queue_depth,
    run_cli,
    start,
    stop,
    wait_for,
)

pytestmark = [pytest.mark.rabbitmq, pytest.mark.also_on_cluster]

SECRET = "archive-test-secret-" + "y" * 40
LIMIT = 4096

scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=30))
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                           st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                           max_leaves=6)
DEEP = json.loads("[" * 200 + "]" * 200)


#: What a stored letter's fields must be; the hostile ones get anything else.
SHAPES: dict[str, type | tuple[type, ...]] = {
    "args": list, "kwargs": dict, "options": dict, "message_id": str, "actor_name": str, "queue_name": str,
    "message_timestamp": int, "options.retries": int, "options.eta": (int, float), "options.broker_priority": int,
}


def dead_message(**fields: Any) -> dict[str, Any]:
    """A message as Dramatiq dead-letters it after its retries."""
    return {"queue_name": "default", "actor_name": "diagnostics", "args": [], "kwargs": {},
            "options": {"retries": 3, "traceback": "Traceback (most recent call last):\n  ...\nRuntimeError: x"},
            "message_id": str(uuid.uuid4()), "message_timestamp": 1_700_000_000_000, **fields}


@st.composite
def stored_letters(draw: st.DrawFn) -> tuple[bytes, bool]:
    """A body as it may sit in a ``.XQ``, and whether a replay can send it again."""
    kind = draw(st.sampled_from(["valid", "shape", "shape", "json", "bytes"]))
    if kind == "valid":
        message = dead_message(args=draw(st.lists(st.one_of(st.integers(), st.text(max_size=20)), max_size=3)))
        return json.dumps(message).encode(), True
    if kind == "json":
        return json.dumps(draw(json_values)).encode(), False
    if kind == "bytes":
        return draw(st.binary(min_size=1, max_size=200)), False
    name = draw(st.sampled_from(sorted(SHAPES)))
    message = dead_message()
    expected = SHAPES[name]
    value = draw((json_values | st.just(DEEP)).filter(
        lambda v: v is not None and (isinstance(v, bool) or not isinstance(v, expected))))
    if name.startswith("options."):
        message["options"][name.split(".", 1)[1]] = value
    else:
        message[name] = value
    return json.dumps(message).encode(), False


@pytest.fixture
def archive(amqp_vhost: str, fault_db: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """A vhost with the queues declared, a database with the schema, and ``broker-jobs serve`` on them."""
    env = {"RABBITMQ_URL": amqp_vhost, "DATABASE_URL": fault_db, "API_JWT_SECRET": SECRET,
           "MAX_MESSAGE_BYTES": str(LIMIT), "API_PORT": str(free_port()), "METRICS_PORT": str(free_port()),
           "METRICS_DIR": str(tmp_path / "metrics"), "PYTHONUNBUFFERED": "1"}
    setup = run_cli("setup", env=env)
    assert setup.returncode == 0, setup.stderr
    proc = start(["-m", "broker_jobs", "serve", "--port", env["API_PORT"]], env, tmp_path / "serve.log")
    base = f"http://127.0.0.1:{env['API_PORT']}"
    try:
        wait_for(lambda: httpx.get(base + "/health/live", timeout=1).status_code == 200, "serve answering",
                 timeout=60, ignore=(httpx.HTTPError, OSError))
        yield {**env, "API": base}
    finally:
        stop(proc, timeout=20)


def bearer(scope: str) -> dict[str, str]:
    from broker_jobs.api.auth import mint_token

    return {"Authorization": f"Bearer {mint_token(SECRET, scope, ttl=600)}"}


def store(env: dict[str, str], letters: list[tuple[bytes, bool]], rows: list[dict[str, Any]]) -> None:
    """Put ``letters`` into ``default.XQ`` (some with a nonsense ``x-death`` header) and ``rows`` in the archive."""
    connection = pika.BlockingConnection(pika.URLParameters(env["RABBITMQ_URL"]))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        for i, (body, _) in enumerate(letters):
            headers = {"x-death": ["garbage", 1]} if i % 3 == 0 else ({"x-death": "x"} if i % 3 == 1 else None)
            channel.basic_publish("", "default.XQ", body, pika.BasicProperties(delivery_mode=2, headers=headers))
    finally:
        connection.close()
    from broker_jobs.store.models import dead_letters

    engine = create_engine(env["DATABASE_URL"])
    try:
        with engine.begin() as conn:
            conn.execute(insert(dead_letters), rows)
    finally:
        engine.dispose()


def states(env: dict[str, str]) -> dict[str, str]:
    engine = create_engine(env["DATABASE_URL"])
    try:
        with engine.connect() as conn:
            return dict(conn.execute(text("SELECT message_id, state FROM dead_letters")).all())
    finally:
        engine.dispose()


def test_every_stored_letter_lists_and_a_bulk_replay_replays_and_marks_exactly_the_replayable_ones(archive):
    letters = collect(stored_letters(), 60)
    letters = list({body: (body, ok) for body, ok in letters}.values())
    oversized = json.dumps(dead_message(args=["x" * LIMIT])).encode()
    letters.append((oversized, False))
    ids: list[str | None] = []
    for body, _ in letters:
        try:
            fields = json.loads(body)
        except ValueError:
            fields = None
        mid = fields.get("message_id") if isinstance(fields, dict) else None
        ids.append(mid if isinstance(mid, str) and 0 < len(mid) <= 64 and "\x00" not in mid else None)
    extras = collect(st.fixed_dictionaries({
        "reason": st.text(max_size=300).map(lambda t: t.replace("\x00", "")),
        "traceback": st.none() | st.text(max_size=300).map(lambda t: t.replace("\x00", "")),
        "attempts": st.integers(-(2**31), 2**31 - 1),
        "body": st.none() | st.text(max_size=100).map(lambda t: t.replace("\x00", "")),
    }), len(letters))
    rows = [{"message_id": mid, "actor": "diagnostics", "queue": "default", "dead_at": datetime.now(UTC),
             "state": "dead", **extra} for mid, extra in zip(ids, extras, strict=True) if mid is not None]
    store(archive, letters, rows)

    listed = run_cli("dlq", "list", "--json", env=archive)
    assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed.stderr
    assert len(json.loads(listed.stdout)) == len(letters)
    table = run_cli("dlq", "list", env=archive)
    assert table.returncode == 0 and "Traceback" not in table.stderr, table.stderr
    api = httpx.get(archive["API"] + "/api/v1/dlq", headers=bearer("read"), timeout=60)
    assert api.status_code == 200, api.text
    assert len(api.json()) == len(letters)
    not_replayable = [d for d in api.json() if d["not_replayable"]]
    assert len(not_replayable) == sum(1 for _, ok in letters if not ok) - 1  # the oversized one fits the format

    replayable = {mid for (_, ok), mid in zip(letters, ids, strict=True) if ok}
    replay = run_cli("dlq", "replay", "--all", "--json", env=archive)
    assert replay.returncode == 0 and "Traceback" not in replay.stderr, replay.stderr
    result = json.loads(replay.stdout)
    assert {d["id"] for d in result["replayed"]} == replayable
    assert len(result["skipped"]) == len(letters) - len(replayable)
    assert all(d["not_replayable"] for d in result["skipped"])
    assert any("MAX_MESSAGE_BYTES" in d["not_replayable"] for d in result["skipped"])
    marked = states(archive)
    assert {mid for mid, state in marked.items() if state == "replayed"} == replayable & set(marked)
    assert queue_depth(archive["RABBITMQ_URL"], "default") == len(replayable)
    assert queue_depth(archive["RABBITMQ_URL"], "default.XQ") == len(result["skipped"])

    again = httpx.post(archive["API"] + "/api/v1/dlq/replay", headers=bearer("operate"), json={"all": True},
                       timeout=60)
    assert again.status_code == 200, again.text
    assert again.json()["replayed"] == []
    assert sorted(d["id"] for d in again.json()["skipped"]) == sorted(d["id"] for d in result["skipped"])
    assert states(archive) == marked

    skipped = result["skipped"][0]["id"]
    one = run_cli("dlq", "replay", "--id", skipped, env=archive)
    assert one.returncode == 1 and one.stderr.count("\n") == 1 and "cannot be replayed" in one.stderr, one.stderr
