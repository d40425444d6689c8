"""Bounded metric labels: only declared actors and queues become Prometheus label values.

A message can name any actor and arrive on any queue (a foreign sender, a typo,
an attacker).  Each distinct label value is a new time series kept for the
life of the process and of the multiprocess directory, so names nobody
declared are folded into one value, :data:`UNKNOWN`.
"""

from __future__ import annotations

import weakref
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


#: Per broker, the (queue, actor) pairs found declared: a worker asks three times per message, and a
#: broker copies its set of queues to answer.  Only declared pairs are kept (a few); brokers never
#: undeclare, so a kept pair stays right, and an undeclared one is looked up again each time.
_declared: weakref.WeakKeyDictionary[Any, set[tuple[str, str]]] = weakref.WeakKeyDictionary()


def labels(broker: Any, message: Any) -> tuple[str, str]:
    """The (queue, actor) label values of ``message``."""
    pair = (message.queue_name, message.actor_name)
    known = _declared.setdefault(broker, set())
    if pair in known:
        return pair
    found = queue_label(broker, pair[0]), actor_label(broker, pair[1])
    if found == pair:
        known.add(pair)
    return found
