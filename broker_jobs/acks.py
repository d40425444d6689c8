"""Settling deliveries in batches: which acks and nacks one channel sends, and when.

Dramatiq's RabbitMQ consumer sends one ``basic.ack`` per message, each through its own
wake-up of the connection's thread (a pipe write, a loop turn, a socket write).  Under
load, many worker threads finish between two turns of that loop.  :class:`Settlements`
lets them record what they finished and wake the loop once; the loop then sends:

1. every ``basic.nack`` (dead-lettering is never folded into anything);
2. one ``basic.ack`` with ``multiple`` for the finished messages older than the oldest
   delivery still open (AMQP: "up to and including" this tag; the nacks and earlier
   acks already sent are no longer outstanding, so it covers only these);
3. a plain ``basic.ack`` for each finished message younger than that oldest open one,
   which must not be covered by a ``multiple`` (a job still running there would be
   acknowledged and lost if the worker died).

Nothing is held back: every flush settles everything recorded before it, so the
prefetch window never fills with finished messages.  Pure bookkeeping, no I/O: the
consumer (:mod:`broker_jobs.consumer`) sends the frames.
"""

from __future__ import annotations

import threading
from typing import NamedTuple


class Frame(NamedTuple):
    """One settlement to send on the channel."""

    ack: bool
    tag: int
    multiple: bool = False


class Settlements:
    """The open deliveries of one channel and the settlements waiting to be sent.

    :meth:`delivered` and :meth:`frames` run in the connection's thread; :meth:`settle`
    in any thread.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: Delivered and not yet settled, oldest first (a dict keeps insertion order).
        self._open: dict[int, None] = {}
        self._waiting: list[tuple[int, bool]] = []
        self._flush_due = False

    def delivered(self, tag: int) -> None:
        """A delivery arrived on the channel (tags only grow)."""
        self._open[tag] = None

    def settle(self, tag: int, ack: bool) -> bool:
        """Record that delivery ``tag`` is to be acked (or nacked); True when the caller must
        schedule a flush (none is due yet)."""
        with self._lock:
            self._waiting.append((tag, ack))
            if self._flush_due:
                return False
            self._flush_due = True
            return True

    def frames(self) -> list[Frame]:
        """Everything recorded so far, as the frames to send, in order."""
        with self._lock:
            waiting, self._waiting = self._waiting, []
            self._flush_due = False
        if not waiting:
            return []
        for tag, _ack in waiting:
            self._open.pop(tag, None)
        oldest_open = next(iter(self._open), None)
        nacks = [Frame(False, tag) for tag, ack in waiting if not ack]
        covered = [tag for tag, ack in waiting if ack and (oldest_open is None or tag < oldest_open)]
        alone = sorted(tag for tag, ack in waiting if ack and oldest_open is not None and tag > oldest_open)
        acks = [Frame(True, max(covered), multiple=len(covered) > 1)] if covered else []
        return nacks + acks + [Frame(True, tag) for tag in alone]

    @property
    def open_count(self) -> int:
        """Deliveries not settled yet (for tests and diagnostics)."""
        return len(self._open)
