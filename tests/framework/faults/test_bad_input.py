"""Bad input gets one clear error and loses nothing; the worker stays unharmed.

Messages go through a real RabbitMQ (the shared one, on the test's own vhost):
undecodable bodies, unknown actors, invalid arguments, oversized messages and
a poison job.  Configuration: every setting and every jobs-file field with a
value of the wrong type.
"""

from __future__ import annotations

import json
import threading
import typing
import uuid
from types import SimpleNamespace
from typing import Any

import pika
import pytest
import yaml
from dramatiq import Worker
from dramatiq.message import Message
from pydantic import ValidationError

from broker_jobs import dead_letters, job
from broker_jobs.errors import ConfigError, MessageTooLarge
from broker_jobs.settings import Settings, get_settings, load_settings
from broker_jobs.store.db import get_engine
from broker_jobs.store.history import writer
from broker_jobs.store.queries import query_runs
from tests.support import run_cli, wait_for


def unique(name: str) -> str:
    return f"{name}_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def lane(rabbit_broker: Any) -> Any:
    """A queue of its own with a good job and a poison job, and a worker consuming it."""
    queue, done, lock = unique("bad_input"), [], threading.Lock()

    @job(name=unique("good"), queue=queue, broker=rabbit_broker)
    def good(n: int) -> None:
        with lock:
            done.append(n)

    @job(name=unique("poison"), queue=queue, broker=rabbit_broker, max_retries=2, min_backoff=0.05)
    def poison() -> None:
        raise RuntimeError("poison message: this job fails on every try")

    worker = Worker(rabbit_broker, queues={queue}, worker_threads=2, worker_timeout=100)
    worker.start()
    yield SimpleNamespace(queue=queue, good=good, poison=poison, done=done, broker=rabbit_broker)
    worker.stop()


def still_working(lane: Any, n: int) -> None:
    """The worker still runs good jobs after the bad input."""
    lane.good.send(n)
    wait_for(lambda: n in lane.done, f"good job {n} to run after the bad input")


def dead_in(lane: Any, **select: str) -> list[dead_letters.DeadLetter]:
    writer.flush()
    return dead_letters.list_dead(get_settings(), queue=lane.queue, **select)


def publish_raw(lane: Any, body: bytes) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(get_settings().rabbitmq_url))
    try:
        connection.channel().basic_publish("", lane.queue, body, pika.BasicProperties(delivery_mode=2))
    finally:
        connection.close()


@pytest.mark.rabbitmq
@pytest.mark.also_on_cluster
def test_an_undecodable_body_is_dead_lettered_as_such_and_the_worker_goes_on(lane):
    publish_raw(lane, b"\xff\x00 this is not a Dramatiq message")
    still_working(lane, 1)
    [letter] = wait_for(lambda: dead_in(lane), "the body in the dead-letter queue")
    assert letter.reason.startswith("undecodable body: not a Dramatiq message")
    assert letter.id.startswith("raw-") and letter.actor is None


@pytest.mark.rabbitmq
@pytest.mark.also_on_cluster
def test_an_unknown_actor_is_dead_lettered_with_the_reason_at_once(lane):
    message = Message(queue_name=lane.queue, actor_name="no_such_actor", args=(), kwargs={}, options={})
    lane.broker.enqueue(message)
    still_working(lane, 2)
    [letter] = wait_for(lambda: dead_in(lane), "the message in the dead-letter queue")
    assert letter.id == message.message_id
    assert "unknown actor 'no_such_actor'" in letter.reason and letter.attempts == 1


@pytest.mark.rabbitmq
@pytest.mark.parametrize(("args", "kwargs", "reason"), [
    (("three",), {}, "argument 'n'"),
    ((), {}, "missing a required argument: 'n'"),
    ((1, 2), {}, "too many positional arguments"),
    ((), {"n": 1, "m": 2}, "unexpected keyword argument 'm'"),
])
@pytest.mark.also_on_cluster
def test_invalid_arguments_are_dead_lettered_at_once_naming_the_argument(lane, args, kwargs, reason):
    sent = lane.good.send_with_options(args=args, kwargs=kwargs)
    still_working(lane, 3)
    [letter] = wait_for(lambda: dead_in(lane), "the message in the dead-letter queue")
    assert letter.id == sent.message_id and reason in letter.reason and letter.attempts == 1
    assert lane.done == [3]


@pytest.mark.rabbitmq
@pytest.mark.also_on_cluster
def test_a_poison_job_is_dead_lettered_after_its_retries_with_its_traceback(lane):
    sent = lane.poison.send()
    [letter] = wait_for(lambda: dead_in(lane), "the poison message in the dead-letter queue")
    assert letter.id == sent.message_id and letter.attempts == 3
    assert "RuntimeError: poison message" in letter.reason
    assert "Traceback (most recent call last)" in (letter.traceback or "")
    assert "raise RuntimeError" in (letter.traceback or "")
    [run] = [r for r in query_runs(get_engine(), actor=lane.poison.actor_name) if r.message_id == sent.message_id]
    assert (run.status, run.attempt) == ("dead", 3)
    still_working(lane, 4)


@pytest.mark.rabbitmq
@pytest.mark.also_on_cluster
def test_an_oversized_message_is_refused_before_publishing_with_one_clear_error(lane):
    limit = get_settings().max_message_bytes
    with pytest.raises(MessageTooLarge, match=rf"over MAX_MESSAGE_BYTES={limit}: pass a reference"):
        lane.good.send("x" * (limit + 1))
    assert lane.broker.get_queue_message_counts(lane.queue)[0] == 0
    still_working(lane, 5)
    assert lane.done == [5]


@pytest.mark.rabbitmq
@pytest.mark.also_on_cluster
def test_send_refuses_an_oversized_message_with_one_line_and_exit_2(rabbitmq_url):
    huge = json.dumps({"payload": "x" * 2048})
    result = run_cli("send", "diagnostics", "--kwargs", huge,
                     env={"RABBITMQ_URL": rabbitmq_url, "MAX_MESSAGE_BYTES": "1024"})
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "over MAX_MESSAGE_BYTES=1024" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.rabbitmq
def test_rabbitmq_itself_refuses_a_message_over_its_max_message_size(private_rabbit):
    """The backstop for producers that bypass broker_jobs (the private node allows 4 MiB)."""
    connection = pika.BlockingConnection(pika.URLParameters(private_rabbit.url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()  # the publish waits for the broker's answer: here, a channel close
        queue = channel.queue_declare("", exclusive=True).method.queue
        with pytest.raises(pika.exceptions.ChannelClosedByBroker, match="larger than configured max size"):
            channel.basic_publish("", queue, b"x" * (4 * 1024 * 1024 + 1))
    finally:
        connection.close()


@pytest.mark.rabbitmq
@pytest.mark.also_on_cluster
def test_listing_dead_letters_before_any_queue_exists_answers_an_empty_list(vhost_url, fault_db):
    """Found by fuzzing the API: a missing .XQ queue closed the channel the next one was asked on."""
    result = run_cli("dlq", "list", "--json", env={"RABBITMQ_URL": vhost_url, "DATABASE_URL": fault_db})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


# -- configuration -------------------------------------------------------------------------------

#: Strings with rules of their own; any other plain string is a valid value.
VALIDATED_STRINGS = {"rabbitmq_url": "http://localhost", "redis_url": "memcached://x",
                     "database_url": "mysql://x", "scheduler_timezone": "Mars/Olympus"}


def wrong_value(name: str, annotation: Any) -> str | None:
    """A value of the wrong type (or a string breaking the field's rule) for one setting."""
    if name in VALIDATED_STRINGS:
        return VALIDATED_STRINGS[name]
    args = typing.get_args(annotation) or (annotation,)
    if typing.get_origin(annotation) is typing.Literal:
        return "bogus"
    if int in args:
        return "twelve"
    if float in args:
        return "soon"
    return None


SETTINGS_CASES = [(name.upper(), value) for name, field in Settings.model_fields.items()
                  if (value := wrong_value(name, field.annotation)) is not None]


@pytest.mark.parametrize(("variable", "value"), SETTINGS_CASES, ids=[c[0] for c in SETTINGS_CASES])
def test_every_setting_with_a_wrong_value_is_one_line_naming_it(settings_env, variable, value):
    settings_env.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert variable in message and "\n" not in message
    assert caught.value.exit_code == 2


def test_the_settings_cases_cover_every_typed_setting():
    typed = [n for n, f in Settings.model_fields.items() if wrong_value(n, f.annotation) is not None]
    assert len(SETTINGS_CASES) == len(typed) >= 25


def job_entry_cases() -> list[tuple[str, Any]]:
    """For every field of a jobs-file entry, the first container and the first scalar of a
    wrong type that it refuses."""
    from broker_jobs.scheduling.config import JobEntry

    base = {"id": "probe", "actor": "fault_config_probe", "cron": "@daily"}
    cases = []
    for name in JobEntry.model_fields:
        entry = {k: v for k, v in base.items() if name not in ("interval", "date") or k != "cron"}
        for candidates in (([1, 2], {"a": 1}), ("soon", 5, "maybe", 2.5)):
            for candidate in candidates:
                try:
                    JobEntry.model_validate({**entry, name: candidate})
                except ValidationError as exc:
                    if any(err["loc"] and err["loc"][0] == name for err in exc.errors()):
                        cases.append((name, candidate))
                        break
    return cases


JOB_CASES = job_entry_cases()


@pytest.fixture
def probe_actor(stub_broker: Any) -> Any:
    @job(queue="default", broker=stub_broker)
    def fault_config_probe(n: int = 0) -> None:
        """A job the jobs-file cases name."""

    return fault_config_probe


@pytest.mark.parametrize(("field", "value"), JOB_CASES, ids=[f"{c[0]}={c[1]!r}" for c in JOB_CASES])
def test_every_jobs_file_field_with_a_wrong_type_is_one_line_with_file_line_and_field(
        tmp_path, probe_actor, field, value):
    from broker_jobs.scheduling.config import load_config
    from tests.support.scheduling import fake_settings

    entry: dict[str, Any] = {"id": "probe", "actor": "fault_config_probe", "cron": "@daily"}
    if field in ("interval", "date"):
        entry.pop("cron")
    entry[field] = value
    path = tmp_path / "jobs.yaml"
    path.write_text(yaml.safe_dump({"jobs": [entry]}, sort_keys=False))
    with pytest.raises(ConfigError) as caught:
        load_config(path, fake_settings(path))
    message = str(caught.value)
    assert message.startswith(f"{path}:") and f"jobs[0].{field}" in message, message
    assert "\n" not in message


def test_the_jobs_file_cases_cover_every_field():
    from broker_jobs.scheduling.config import JobEntry

    assert {name for name, _ in JOB_CASES} == set(JobEntry.model_fields)
