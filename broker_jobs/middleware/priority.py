"""Tags every message with an AMQP priority from its job's level."""

from __future__ import annotations

from typing import Any

import dramatiq

from ..priorities import amqp_priority, parse_priority
from ..protocol import BROKER_PRIORITY, PRIORITY


class PriorityTagging(dramatiq.Middleware):
    """Sets ``broker_priority`` on enqueue.

    The level comes from the message's ``priority`` option (per send), then the
    actor's ``job_priority`` option, then ``medium``.  ``broker_priority`` cannot
    be an actor option in Dramatiq, hence this middleware.
    """

    @property
    def actor_options(self) -> set[str]:
        return {"job_priority"}

    def before_enqueue(self, broker: dramatiq.Broker, message: dramatiq.Message[Any], delay: int | None) -> None:
        options = message.options
        if BROKER_PRIORITY in options and PRIORITY not in options:
            return
        level = options.get(PRIORITY)
        if level is None:
            actor = broker.actors.get(message.actor_name)
            level = actor.options.get("job_priority", "medium") if actor else "medium"
        parsed = parse_priority(level)
        options[PRIORITY] = parsed.label
        options[BROKER_PRIORITY] = amqp_priority(parsed)
