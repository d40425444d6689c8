"""A delayed message hops through the delay queue in pieces no longer than the hold limit
and is released exactly when its real due time (``bj_eta``) has come, never before."""

from __future__ import annotations

from typing import Any

import dramatiq
import pytest

from broker_jobs import broker as broker_module
from broker_jobs.broker import JobsBroker
from broker_jobs.protocol import BJ_ETA

NOW, HOLD = 1_000_000, 2_500


class RecordingBroker(JobsBroker):
    """Records what enqueue would publish instead of talking to RabbitMQ."""

    def __init__(self) -> None:
        super().__init__(url="amqp://guest:guest@127.0.0.1:1/", middleware=[], max_hold_ms=HOLD)
        self.published: list[tuple[Any, int | None]] = []

    def _publish(self, message: Any, delay: int | None) -> Any:
        self.published.append((message, delay))
        return message


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> RecordingBroker:
    monkeypatch.setattr(broker_module, "current_millis", lambda: NOW)
    return RecordingBroker()


def message(**options: Any) -> dramatiq.Message[Any]:
    return dramatiq.Message(queue_name="default", actor_name="work", args=(), kwargs={}, options=options)


@pytest.mark.parametrize(("remaining_ms", "published_delay", "keeps_bj_eta"), [
    (-1_000, None, False),   # overdue: runs now, the hop marker dropped
    (0, None, False),        # due this very millisecond: runs now
    (1, 1, True),            # a millisecond early is still early
    (50, 50, True),
    (2_499, 2_499, True),
    (2_500, 2_500, True),
    (9_000, HOLD, True),     # longer than the hold limit: one more hop
])
def test_a_returning_hop_is_delayed_by_what_remains_up_to_the_hold_limit(
        broker, remaining_ms, published_delay, keeps_bj_eta):
    broker.enqueue(message(**{BJ_ETA: NOW + remaining_ms}))
    [(sent, delay)] = broker.published
    assert delay == published_delay
    assert (BJ_ETA in sent.options) == keeps_bj_eta


@pytest.mark.parametrize(("delay_ms", "published_delay", "bj_eta"), [
    (1_000, 1_000, None),
    (HOLD, HOLD, None),
    (HOLD + 1, HOLD, NOW + HOLD + 1),
    (60_000, HOLD, NOW + 60_000),
])
def test_a_new_delay_longer_than_the_hold_limit_is_split_and_carries_its_due_time(
        broker, delay_ms, published_delay, bj_eta):
    broker.enqueue(message(), delay=delay_ms)
    [(sent, delay)] = broker.published
    assert delay == published_delay
    assert sent.options.get(BJ_ETA) == bj_eta
