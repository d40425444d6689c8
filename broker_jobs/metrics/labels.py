"""Bounded metric labels: only declared actors and queues become Prometheus label values.

A message can name any actor and arrive on any queue (a foreign sender, a typo,
an attacker).  Each distinct label value is a new time series kept for the
life of the process and of the multiprocess directory, so names nobody
declared are folded into one value, :data:`UNKNOWN`.
"""

from __future__ import annotations

from typing import Any

#: The label value of every actor or queue this process does not declare.
UNKNOWN = "unknown"

#: Suffixes of the delay and dead-letter queues Dramatiq derives from a queue.
_DERIVED = (".DQ", ".XQ")


def actor_label(broker: Any, actor: str) -> str:
    """``actor`` if ``broker`` declares it, else :data:`UNKNOWN`."""
    actors = getattr(broker, "actors", None)
    return actor if actors is not None and actor in actors else UNKNOWN


def queue_label(broker: Any, queue: str) -> str:
    """``queue`` (or its ``.DQ``/``.XQ`` twin) if ``broker`` declares it, else :data:`UNKNOWN`."""
    try:
        declared = broker.get_declared_queues()
    except AttributeError:
        return UNKNOWN
    base = queue
    for suffix in _DERIVED:
        base = base.removesuffix(suffix)
    return queue if base in declared else UNKNOWN


def labels(broker: Any, message: Any) -> tuple[str, str]:
    """The (queue, actor) label values of ``message``."""
    return queue_label(broker, message.queue_name), actor_label(broker, message.actor_name)
