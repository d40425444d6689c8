"""Hostile bodies on the wire: a real worker meets 2,000 generated deliveries over bare AMQP.

Hypothesis generates random bytes, random JSON, and valid messages with one field (or one
option a middleware reads) mutated to a value of another type or size, mixed with valid
messages for ``tests.framework.faults.jobs.record_effect``.  They are published in bulk with pika (no
broker_jobs code on the sending side) to a ``dramatiq broker_jobs.actors tests.framework.faults.jobs``
worker on a vhost of the test's own.  Then: every malformed delivery has an archive row whose
reason names its field, and sits in ``faults.XQ``; every valid one ran exactly once and has a
``succeeded`` history row; no malformed one ran; the worker processes have as many threads as
before and logged no consumer crash and no failed middleware hook.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from pathlib import Path
from typing import Any

import pika
import psutil
import pytest
from hypothesis import strategies as st
from sqlalchemy import create_engine, text

from tests.support import (
    QUEUE,
    Workers,
    collect,
    effects,
    free_port,
    queue_depth,
    wait_for,
)

pytestmark = [pytest.mark.rabbitmq, pytest.mark.also_on_cluster]

VALID, BYTES, JSON, MUTATED = 600, 250, 250, 900
ACTOR = "record_effect"
NOW_MS = int(time.time() * 1000)

# -- what a well-formed message is, restated for the test (types and sizes) ---------------------
#: field -> (accepted JSON types, predicate on an accepted value)
TOP: dict[str, tuple[tuple[type, ...], Any]] = {
    "queue_name": ((str,), lambda v: v == QUEUE),
    "actor_name": ((str,), lambda v: 0 < len(v) <= 200 and "\x00" not in v),
    "args": ((list,), lambda v: True),
    "kwargs": ((dict,), lambda v: True),
    "options": ((dict,), lambda v: True),
    "message_id": ((str,), lambda v: 0 < len(v) <= 64 and "\x00" not in v),
    "message_timestamp": ((int,), lambda v: 0 <= v <= 253_402_300_799_999),
}
NUMBER = (int, float)
OPTIONS: dict[str, tuple[tuple[type, ...], Any]] = {
    "retries": ((int,), lambda v: 0 <= v <= 1_000_000),
    "max_retries": ((int,), lambda v: 0 <= v <= 1_000_000),
    "deferrals": ((int,), lambda v: 0 <= v <= 1_000_000),
    "min_backoff": (NUMBER, lambda v: 0 <= v <= 253_402_300_799_999),
    "max_backoff": (NUMBER, lambda v: 0 <= v <= 253_402_300_799_999),
    "time_limit": ((*NUMBER, type(None)), lambda v: v is None or 0 <= v <= 253_402_300_799_999),
    "max_age": ((*NUMBER, type(None)), lambda v: v is None or 0 <= v <= 253_402_300_799_999),
    "eta": ((*NUMBER, type(None)), lambda v: v is None or 0 <= v <= 253_402_300_799_999),
    "bj_eta": ((*NUMBER, type(None)), lambda v: v is None or 0 <= v <= 253_402_300_799_999),
    "priority": ((str, int, type(None)),
                 lambda v: v is None or v in (1, 2, 3) or str(v).strip().lower() in ("high", "medium", "low",
                                                                                     "1", "2", "3")),
    "broker_priority": ((int, type(None)), lambda v: v is None or 0 <= v <= 255),
    "fire_id": ((str, type(None)), lambda v: v is None or (len(v) <= 300 and "\x00" not in v)),
    "on_failure": ((str, type(None)), lambda v: v is None or 0 < len(v) <= 200),
    "pipe_target": ((dict, type(None)), lambda v: True),
    "pipe_ignore": ((bool, type(None)), lambda v: True),
    "throws": ((type(None),), lambda v: True),
    "traceback": ((str, type(None)), lambda v: True),
}


def well_formed(spec: tuple[tuple[type, ...], Any], value: Any) -> bool:
    types, rule = spec
    if isinstance(value, bool) and bool not in types:
        return False
    if isinstance(value, float) and value != value:  # NaN
        return False
    return isinstance(value, types) and rule(value)


scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40),
                    st.text(min_size=60, max_size=400), st.just("\x00"), st.just(""))
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                           st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                           max_leaves=8)


def valid_message(key: str, options: dict[str, Any]) -> dict[str, Any]:
    return {"queue_name": QUEUE, "actor_name": ACTOR, "args": [key], "kwargs": {}, "options": options,
            "message_id": str(uuid.uuid4()), "message_timestamp": NOW_MS}


valid_options = st.fixed_dictionaries({}, optional={
    "priority": st.sampled_from(["high", "medium", "low", 1, 2, 3, " High "]),
    "retries": st.integers(0, 5),
    "max_retries": st.integers(5, 20),
    "eta": st.integers(NOW_MS - 60_000, NOW_MS),
    "time_limit": st.integers(60_000, 600_000),
    # Unique: the workers drop the second message of one fire id (schedule slot dedup).
    "fire_id": st.builds(lambda: f"wirefuzz@{uuid.uuid4()}"),
    "custom_option": st.text(max_size=20),
})


@st.composite
def mutated(draw: st.DrawFn) -> tuple[bytes, str]:
    """A valid message with one field or one option broken: (body, the field's name)."""
    fields = valid_message(f"mutated-{uuid.uuid4()}", {})
    kind = draw(st.sampled_from(["top", "option", "missing", "extra"]))
    if kind == "missing":
        name = draw(st.sampled_from(sorted(TOP)))
        del fields[name]
        return json.dumps(fields).encode(), name
    if kind == "extra":
        name = draw(st.text(min_size=1, max_size=12).filter(lambda n: n not in TOP and "\x00" not in n))
        fields[name] = draw(json_values)
        return json.dumps(fields).encode(), name
    table, name = (TOP, draw(st.sampled_from(sorted(TOP)))) if kind == "top" else (
        OPTIONS, draw(st.sampled_from(sorted(OPTIONS))))
    spec = table[name]
    wrong = draw(st.one_of(json_values, st.sampled_from(["faults_other", "faults.DQ", "x" * 65, "x" * 201]))
                 .filter(lambda v: not well_formed(spec, v)))
    if kind == "top":
        fields[name] = wrong
    else:
        fields["options"][name] = wrong
        name = f"options.{name}"
    return json.dumps(fields).encode(), name


def random_json(value: Any) -> bytes:
    return json.dumps(value).encode()


@pytest.fixture
def wire_env(amqp_vhost: str, fault_db: str, tmp_path: Path) -> dict[str, str]:
    return {"RABBITMQ_URL": amqp_vhost, "DATABASE_URL": fault_db, "FAULT_EFFECTS_URL": fault_db, "REDIS_URL": "",
            "PYTHONUNBUFFERED": "1", "METRICS_PORT": str(free_port()), "METRICS_DIR": str(tmp_path / "metrics")}


def publish(url: str, bodies: list[bytes]) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        channel.tx_select()
        for i, body in enumerate(bodies):
            channel.basic_publish("", QUEUE, body, pika.BasicProperties(delivery_mode=2))
            if i % 200 == 199:
                channel.tx_commit()
        channel.tx_commit()
    finally:
        connection.close()


def rows(url: str, sql: str) -> list[Any]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql)))
    finally:
        engine.dispose()


def ids_of(bad: list[tuple[bytes, str | None]]) -> set[str]:
    """The message ids of the malformed bodies that carry one."""
    found = set()
    for body, _ in bad:
        try:
            fields = json.loads(body)
        except ValueError:
            continue
        if isinstance(fields, dict) and isinstance(fields.get("message_id"), str):
            found.add(fields["message_id"])
    return found


def threads(workers: Workers) -> dict[int, int]:
    return {pid: psutil.Process(pid).num_threads() for pid in workers.children()}


def test_malformed_deliveries_are_archived_naming_their_field_and_valid_ones_run_once(wire_env, tmp_path):
    rng = random.Random(13)
    valid = [valid_message(f"valid-{i}", options) for i, options in enumerate(collect(valid_options, VALID))]
    bad: list[tuple[bytes, str | None]] = [(body, None) for body in collect(st.binary(max_size=300), BYTES)]
    bad += [(random_json(value), None) for value in collect(json_values, JSON)]
    bad += collect(mutated(), MUTATED)
    # Examples may repeat (the archive keys a body without a usable id by its hash): keep one of each.
    bad = list({body: (body, field) for body, field in bad}.values())
    deliveries = [json.dumps(m).encode() for m in valid] + [body for body, _ in bad]
    rng.shuffle(deliveries)

    workers = Workers(wire_env, tmp_path / "workers.log", processes=2, threads=3).start()
    try:
        warm = [valid_message(f"warm-{i}", {}) for i in range(20)]
        publish(wire_env["RABBITMQ_URL"], [json.dumps(m).encode() for m in warm])
        wait_for(lambda: len(effects(wire_env["FAULT_EFFECTS_URL"])) == len(warm), "the warm-up messages to run")
        before = threads(workers)
        assert len(before) == 2

        started = time.monotonic()
        publish(wire_env["RABBITMQ_URL"], deliveries)
        wanted = {m["args"][0] for m in valid} | {m["args"][0] for m in warm}
        try:
            wait_for(lambda: wanted <= set(effects(wire_env["FAULT_EFFECTS_URL"])), "every valid message to run",
                     timeout=240, every=1)
        except AssertionError as exc:
            missing = sorted(wanted - set(effects(wire_env["FAULT_EFFECTS_URL"])))
            problems = [line for line in workers.text().splitlines() if "ERROR" in line or "CRITICAL" in line]
            options = {m["args"][0]: m["options"] for m in valid}
            raise AssertionError(f"{exc}: {len(missing)} missing, e.g. {[options.get(k) for k in missing[:8]]}; "
                                 f"worker errors: {problems[-20:]}") from None
        archived = wait_for(lambda: (found := rows(wire_env["DATABASE_URL"], "SELECT message_id, reason, body "
                                                   "FROM dead_letters")) and len(found) >= len(bad) and found,
                            "every malformed message in the archive", timeout=240, every=1)
        elapsed = time.monotonic() - started
        after = threads(workers)
        log = workers.text()
    finally:
        workers.stop()

    done = effects(wire_env["FAULT_EFFECTS_URL"])
    assert {key: runs for key, runs in done.items() if runs != 1} == {}
    assert set(done) == wanted, "a malformed message ran"
    assert len(archived) == len(bad), "a valid message was archived, or a malformed one twice"
    assert queue_depth(wire_env["RABBITMQ_URL"], QUEUE + ".XQ") == len(bad)
    reasons = {row.body: row.reason for row in archived}
    for body, field in bad:
        reason = reasons.get(body.decode("utf-8", "replace").replace("\x00", "\\x00"))
        assert reason, f"no archive row for {body[:200]!r}"
        assert reason.startswith(("malformed message: ", "undecodable body: ")), reason
        if field is not None:
            assert f": {field}:" in reason, (field, reason, body[:300])
    def succeeded() -> set[str]:
        history = rows(wire_env["DATABASE_URL"], "SELECT message_id, status FROM job_runs")
        return {mid for mid, status in history if status == "succeeded"}

    ran = {m["message_id"] for m in valid}
    try:
        wait_for(lambda: ran <= succeeded(), "a succeeded history row for every valid message", timeout=30)
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {len(ran - succeeded())} without one") from None
    assert not any(mid in succeeded() for mid in ids_of(bad)), "a malformed message has a history row"
    assert after == before, f"worker threads before {before}, after {after}"
    assert "Consumer encountered" not in log and "Unexpected failure in" not in log, log[-3000:]
    print(f"wire fuzz: {len(valid)} valid and {len(bad)} malformed deliveries handled in {elapsed:.1f} s")
