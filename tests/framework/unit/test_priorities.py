import pytest

from broker_jobs.priorities import Priority, actor_priority, amqp_priority, from_amqp, parse_priority


@pytest.mark.parametrize(
    ("given", "expected"),
    [("high", Priority.HIGH), ("HIGH", Priority.HIGH), (" medium ", Priority.MEDIUM), ("low", Priority.LOW),
     (1, Priority.HIGH), (2, Priority.MEDIUM), (3, Priority.LOW), ("1", Priority.HIGH), (Priority.LOW, Priority.LOW)],
)
def test_priority_is_read_from_names_and_numbers(given, expected):
    assert parse_priority(given) is expected


@pytest.mark.parametrize("given", ["urgent", 0, 4, "", None, 1.5, True])
def test_unknown_priority_is_rejected_with_the_accepted_values(given):
    with pytest.raises(ValueError, match="high, medium, low"):
        parse_priority(given)


def test_high_wins_on_both_rabbitmq_and_dramatiq_orderings():
    # RabbitMQ serves higher AMQP priorities first; Dramatiq runs lower actor priorities first.
    assert amqp_priority(Priority.HIGH) > amqp_priority(Priority.MEDIUM) > amqp_priority(Priority.LOW) > 0
    assert actor_priority(Priority.HIGH) < actor_priority(Priority.MEDIUM) < actor_priority(Priority.LOW)
    assert amqp_priority(Priority.HIGH) <= 10


@pytest.mark.parametrize("level", list(Priority))
def test_amqp_priority_maps_back_to_its_level(level):
    assert from_amqp(amqp_priority(level)) is level


@pytest.mark.parametrize(("delivered", "recorded"),
                         [(None, "none"), (0, "none"), (1, "low"), (2, "low"), (5, "medium"), (9, "high"),
                          (10, "high")])
def test_the_history_names_the_priority_a_delivery_really_carried(delivered, recorded):
    from broker_jobs.priorities import delivered_label

    assert delivered_label(delivered) == recorded


def test_the_history_names_every_octet_as_the_nearest_level_does():
    from broker_jobs.priorities import delivered_label

    for value in range(1, 300):
        assert delivered_label(value) == from_amqp(value).label
