"""QUEUE_TYPE and RABBITMQ_URLS without a broker: the arguments of each queue type, the priority bands of quorum
families, the settings' parsing and one-line errors, and the order a worker runs what it holds."""

from __future__ import annotations

from queue import PriorityQueue

import pytest
from dramatiq import Message
from dramatiq.brokers.rabbitmq import DEAD_MESSAGE_TTL
from dramatiq.worker import _WorkQueueItem

from broker_jobs.broker import BandedWorkQueue, BandGate, JobsBroker
from broker_jobs.errors import ConfigError
from broker_jobs.priorities import Priority, amqp_priority
from broker_jobs.scheduling.publisher import Outgoing
from broker_jobs.settings import load_settings
from broker_jobs.topology import band_above, band_queue, bands, canonical, family, wanted_arguments

QUORUM_WORK = {"x-queue-type": "quorum", "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "etl.XQ",
               "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish", "x-delivery-limit": 7}


@pytest.mark.parametrize("queue", ["etl", "etl.HQ", "etl.LQ", "etl.DQ"])
def test_quorum_work_delay_and_band_queues_dead_letter_at_least_once_into_the_family_xq(queue):
    assert wanted_arguments(queue, queue_type="quorum", delivery_limit=7) == QUORUM_WORK


def test_a_quorum_dead_letter_queue_keeps_the_ttl_and_has_no_delivery_limit_nor_dead_lettering():
    # Listing dead letters returns them unacked: a delivery limit there would drop them after a few listings.
    assert wanted_arguments("etl.XQ", queue_type="quorum") == {"x-queue-type": "quorum",
                                                               "x-message-ttl": DEAD_MESSAGE_TTL}


def test_quorum_arguments_never_carry_what_quorum_queues_refuse():
    for queue in (*family("etl", "quorum"), "etl.repair"):
        arguments = wanted_arguments(queue, max_priority=10, queue_type="quorum")
        assert "x-max-priority" not in arguments and "x-queue-type" in arguments
        assert arguments.get("x-queue-type") == "quorum"


def test_classic_arguments_are_unchanged_by_the_new_setting():
    assert wanted_arguments("etl") == wanted_arguments("etl", queue_type="classic")
    assert family("etl") == ("etl", "etl.DQ", "etl.XQ")
    assert wanted_arguments("etl.repair") == {}


def test_a_quorum_family_is_its_three_bands_its_delay_and_dead_letter_queues():
    assert family("etl", "quorum") == ("etl", "etl.HQ", "etl.LQ", "etl.DQ", "etl.XQ")
    assert bands("etl") == ("etl.HQ", "etl", "etl.LQ")
    for queue in family("etl", "quorum"):
        assert canonical(queue, "quorum") == "etl"
    assert canonical("etl.HQ") == "etl.HQ"  # classic: a queue may be called that


@pytest.mark.parametrize(("priority", "band"), [(amqp_priority(Priority.HIGH), "etl.HQ"),
                                                (amqp_priority(Priority.MEDIUM), "etl"),
                                                (amqp_priority(Priority.LOW), "etl.LQ"),
                                                (None, "etl"), (0, "etl"), (10, "etl.HQ")])
def test_a_message_goes_to_the_band_of_its_priority_and_one_without_goes_with_medium(priority, band):
    assert band_queue("etl", priority) == band


def test_the_broker_refuses_priorities_only_on_quorum_queues():
    quorum = JobsBroker(url="amqp://127.0.0.1:1/%2F", middleware=[], queue_type="quorum", delivery_limit=7)
    assert quorum.arguments("etl") == QUORUM_WORK
    classic = JobsBroker(url="amqp://127.0.0.1:1/%2F", max_priority=10, middleware=[])
    assert classic.arguments("etl")["x-max-priority"] == 10


def test_a_quorum_broker_declares_the_bands_beside_the_family_and_no_delay_queue_for_a_band():
    broker = JobsBroker(url="amqp://127.0.0.1:1/%2F", middleware=[], queue_type="quorum")
    broker.declare_queue("etl")
    assert broker.get_declared_queues() == {"etl", "etl.HQ", "etl.LQ"}
    assert broker.delay_queues == {"etl.DQ"}
    broker.declare_queue("etl.HQ")  # a band names its family
    assert broker.get_declared_queues() == {"etl", "etl.HQ", "etl.LQ"}


def test_the_scheduler_publishes_into_the_band_and_jitter_into_the_family_delay_queue():
    out = Outgoing(job_id="j", actor="a", queue="etl", args=(), kwargs={}, priority=Priority.HIGH,
                   fire_id="j@x", slot=None)
    assert out.fields(0, "quorum")["queue_name"] == "etl.HQ"
    assert out.fields(0)["queue_name"] == "etl"
    out.delay_ms = 100
    assert out.fields(0, "quorum")["queue_name"] == "etl.DQ"


def test_a_worker_runs_what_it_holds_high_band_first_then_actor_priority_then_fifo():
    held: PriorityQueue = BandedWorkQueue()
    for queue, actor_priority in [("q.LQ", 0), ("q", 10), ("q", 0), ("q.HQ", 20), ("q.LQ", 0)]:
        held.put(_WorkQueueItem(actor_priority, Message(queue_name=queue, actor_name="a", args=(), kwargs={},
                                                        options={"n": held.qsize()})))
    order = [(item.message.queue_name, item.message.options["n"]) for item in
             (held.get() for _ in range(5))]
    assert order == [("q.HQ", 3), ("q", 2), ("q", 1), ("q.LQ", 0), ("q.LQ", 4)]


@pytest.mark.parametrize(("queue", "above"), [("q.HQ", None), ("q", "q.HQ"), ("q.LQ", "q"), ("q.DQ", None),
                                              ("q.XQ", None)])
def test_each_band_waits_for_the_band_above_it_and_delay_and_dead_letter_queues_for_none(queue, above):
    assert band_above(queue) == above


def test_a_band_opens_once_the_band_above_has_answered_and_stays_open():
    gate = BandGate(max_wait=5)
    assert gate.is_open("q.HQ") and gate.is_open("q.DQ")
    assert not gate.is_open("q") and not gate.is_open("q.LQ")
    assert gate.wait("q", 0.01) is False
    gate.answered("q.HQ")
    assert gate.is_open("q") and not gate.is_open("q.LQ")
    gate.answered("q")
    assert gate.is_open("q.LQ") and gate.wait("q.LQ", 0) is True
    assert gate.is_open("other.HQ") and not gate.is_open("other")  # each family on its own


def test_only_a_quorum_broker_has_a_band_gate():
    assert JobsBroker(url="amqp://127.0.0.1:1/%2F", middleware=[], queue_type="quorum").band_gate is not None
    assert JobsBroker(url="amqp://127.0.0.1:1/%2F", middleware=[]).band_gate is None


def test_several_nodes_are_read_from_rabbitmq_urls_and_the_first_is_rabbitmq_url(settings_env):
    settings_env.setenv("RABBITMQ_URLS", "amqp://u:p@n1:5672/%2F, amqp://u:p@n2:5673/%2F;amqp://u:p@n3/%2F")
    settings_env.setenv("QUEUE_TYPE", "Quorum")
    settings = load_settings()
    assert settings.amqp_urls == ["amqp://u:p@n1:5672/%2F", "amqp://u:p@n2:5673/%2F", "amqp://u:p@n3/%2F"]
    assert settings.rabbitmq_url == "amqp://u:p@n1:5672/%2F" and settings.queue_type == "quorum"


def test_one_node_is_rabbitmq_url_alone(settings_env):
    settings_env.setenv("RABBITMQ_URL", "amqp://u:p@solo:5672/%2F")
    settings_env.delenv("RABBITMQ_URLS", raising=False)
    assert load_settings().amqp_urls == ["amqp://u:p@solo:5672/%2F"]
    assert load_settings().queue_type == "classic"


@pytest.mark.parametrize("value", ["amqp://u:secret@n1/%2F,http://u:secret@n2/", "amqp://u:secret@n1:port/%2F"])
def test_a_bad_node_in_rabbitmq_urls_is_one_line_naming_the_variable_never_the_password(settings_env, value):
    settings_env.setenv("RABBITMQ_URLS", value)
    with pytest.raises(ConfigError) as raised:
        load_settings()
    text = str(raised.value)
    assert "RABBITMQ_URLS" in text and "secret" not in text and "\n" not in text


def test_an_unknown_queue_type_is_refused_naming_the_variable(settings_env):
    settings_env.setenv("QUEUE_TYPE", "mirrored")
    with pytest.raises(ConfigError, match="QUEUE_TYPE"):
        load_settings()
