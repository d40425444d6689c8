"""Queue arguments and the degraded state, without a broker: parsing RabbitMQ's 406, the arguments we want,
and what /health makes of a degraded queue or of a check that did not answer."""

from __future__ import annotations

import pytest

from broker_jobs.api.health import build_report
from broker_jobs.health import Check
from broker_jobs.topology import QueueConflict, conflict_from, family, wanted_arguments


class Closed(Exception):
    """What pika raises when RabbitMQ closes a channel: reply code and text."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(code, text)
        self.reply_code, self.reply_text = code, text


def test_a_406_about_an_argument_names_the_queue_the_argument_and_the_repair_command():
    text = ("PRECONDITION_FAILED - inequivalent arg 'x-max-priority' for queue 'sync.DQ' in vhost '/': "
            "received the value '10' of type 'signedint' but current is none")
    conflict = conflict_from(Closed(406, text), "sync")
    assert conflict == QueueConflict("sync.DQ", "x-max-priority", text.split(" - ", 1)[1])
    assert conflict.canonical == "sync"
    assert "broker-jobs queues repair sync" in conflict.warning()


@pytest.mark.parametrize("error", [Closed(404, "NOT_FOUND - no queue 'x'"), Closed(406, "PRECONDITION_FAILED - "
                                   "queue 'x' in vhost '/' not empty"), ValueError("no reply code")])
def test_other_channel_errors_are_not_taken_for_a_conflict(error):
    assert conflict_from(error, "x") is None


@pytest.mark.parametrize("queue", ["etl", "etl.DQ", "etl.XQ"])
def test_the_wanted_arguments_are_those_dramatiq_declares_with_our_max_priority(queue):
    from dramatiq.brokers.rabbitmq import DEAD_MESSAGE_TTL

    from broker_jobs.broker import JobsBroker
    from broker_jobs.priorities import MAX_PRIORITY

    broker = JobsBroker(url="amqp://127.0.0.1:1/%2F", max_priority=MAX_PRIORITY, middleware=[])
    dramatiq_declares = ({"x-message-ttl": DEAD_MESSAGE_TTL} if queue.endswith(".XQ")
                         else broker._build_queue_arguments("etl"))
    assert wanted_arguments(queue) == dramatiq_declares
    assert family("etl") == ("etl", "etl.DQ", "etl.XQ")


def report(queues: object) -> dict:
    ok = Check("x", True, 1.0, "fine")
    one_scheduler_alive = {"jobs": [], "scheduler": {"instances": [{"id": "s1"}], "alive": 1}}
    return build_report({"broker": ok, "database": ok, "jobs": one_scheduler_alive, "queues": queues}, 1.0)


def test_a_degraded_queue_makes_health_degraded_and_says_how_to_repair_it():
    body = report({"sync": "queue 'sync' exists ... broker-jobs queues repair sync"})
    assert (body["status"], body["healthy"]) == ("degraded", False)
    assert body["queues"] == {"degraded": {"sync": "queue 'sync' exists ... broker-jobs queues repair sync"},
                              "checked": True}
    assert report({})["status"] == "healthy"


def test_a_queue_check_that_did_not_answer_is_marked_unchecked_not_reported_as_fine():
    body = report(Check("queues", False, 1000.0, "timed out"))
    assert body["queues"] == {"degraded": {}, "checked": False}
