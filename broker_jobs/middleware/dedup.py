"""Drops a second message carrying the same schedule fire id.

The scheduler stamps each slot's message with ``fire_id = job_id@slot``.  If two
messages with one fire id ever exist (a publish retried after a lost confirm,
two schedulers during a lease hand-over), only the first message id to be
claimed runs; a redelivery of that same message still runs (at-least-once).
While the claims store (Redis or the database) is unreachable the message runs
without the check, with one warning line: the scheduler cannot fire during
such an outage (its lease lives in the same store), so duplicates cannot arise.
"""

from __future__ import annotations

import logging

import dramatiq
from dramatiq.broker import MessageProxy

from ..coordination import Claims, get_claims
from ..errors import SkipJob
from ..protocol import BJ_ERROR, FIRE_ID

logger = logging.getLogger(__name__)


class FireDedup(dramatiq.Middleware):
    """Claims ``fire:<fire_id>`` for the message id before the job runs.

    Parameters:
      claims: Where claims live (default: Redis or the database).
      ttl: Seconds a fire id stays claimed.
    """

    def __init__(self, claims: Claims | None = None, ttl: float = 7 * 86400) -> None:
        self._claims = claims
        self.ttl = ttl

    @property
    def claims(self) -> Claims:
        return self._claims or get_claims()

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        fire_id = message.options.get(FIRE_ID)
        if not fire_id or message.failed:
            return
        try:
            holder = self.claims.claim("fire:" + fire_id, message.message_id, self.ttl)
        except Exception as exc:  # noqa: BLE001 - Redis or the database down: run, say so in one line
            logger.warning("[worker] job %s message %s runs without fire-id dedup (claims unavailable: %s)",
                           message.actor_name, message.message_id, str(exc).splitlines()[0] if str(exc) else exc)
            return
        if holder != message.message_id:
            reason = f"duplicate fire {fire_id} (already run as message {holder})"
            if holder.startswith("superseded by "):  # the scheduler's overlap policy "replace"
                reason = f"fire {fire_id} {holder}"
            logger.info("[worker] job %s message %s dropped: %s", message.actor_name, message.message_id, reason)
            message.options[BJ_ERROR] = reason
            raise SkipJob(reason)
