"""The message protocol: every name a message carries, in one place.

A message is a Dramatiq message whose ``options`` carry what our middleware,
the scheduler and foreign senders agree on.  The keys, the fire id's form
(``job_id@slot``), how many attempts a dead message had and the names of run
statuses and outcomes are spelled here once; every module reads them from
here, so a key cannot drift between the sender and the reader.  The values
are plain strings on the wire: foreign senders depend on them byte for byte.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

# --- Option keys (``message.options``) -------------------------------------------------

#: The job level a sender asked for (``high``/``medium``/``low`` or 1-3).
PRIORITY: Final = "priority"
#: The AMQP priority the message is published with (Dramatiq's option).
BROKER_PRIORITY: Final = "broker_priority"
#: A schedule slot's id, ``job_id@slot``: the workers run one message per fire id.
FIRE_ID: Final = "fire_id"
#: The schedule that fired the message.
JOB_ID: Final = "job_id"
#: The slot's time (ISO, ``Z``), for scheduled fires.
SLOT: Final = "slot"
#: The real due time (epoch ms) of a delay longer than one hop.
BJ_ETA: Final = "bj_eta"
#: The dead letter a replayed message copies.
REPLAY_OF: Final = "replay_of"
#: Dramatiq's: the delay queue's due time, the retry count, a retry's traceback.
ETA: Final = "eta"
RETRIES: Final = "retries"
TRACEBACK: Final = "traceback"
REQUEUE_TIMESTAMP: Final = "requeue_timestamp"
#: How often a rate limit deferred the message.
DEFERRALS: Final = "deferrals"
#: What a worker notes while it handles a message: the error, the outcome, the job's report.
BJ_ERROR: Final = "bj_error"
BJ_OUTCOME: Final = "bj_outcome"
BJ_REPORT: Final = "bj_report"

#: Noted by a worker while it handles a message: never meaningful on arrival (a dead
#: letter re-sent by other tools still carries them), so dropped there.
IN_PROCESS_OPTIONS: Final = (BJ_ERROR, BJ_OUTCOME, BJ_REPORT)
#: Options that describe a past delivery: a replay or a deferral does not carry them on.
DELIVERY_OPTIONS: Final = (RETRIES, TRACEBACK, REQUEUE_TIMESTAMP, ETA, *IN_PROCESS_OPTIONS, DEFERRALS)
#: What a rate-limit deferral drops before it sends the message again.
DEFERRAL_DROPS: Final = (ETA, BJ_ERROR, BJ_OUTCOME)


# --- Statuses and outcomes --------------------------------------------------------------

class RunStatus(StrEnum):
    """A ``job_runs`` row's status (``failed``: the row of a run that ended without a dead letter)."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    RETRYING = "retrying"
    DEAD = "dead"
    SKIPPED = "skipped"


#: Statuses after which a run does nothing more.
TERMINAL_STATUSES: Final = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.DEAD, RunStatus.SKIPPED)


class DeliveryOutcome(StrEnum):
    """``bj_outcome``: why a delivery was acknowledged without running the job."""

    DEFERRED = "deferred"  # rate limited: runs later under the same message id
    SKIPPED = "skipped"  # duplicate fire or SkipJob


class SlotOutcome(StrEnum):
    """What the scheduler did with one slot of one job (audit rows, metrics)."""

    FIRED = "fired"
    CAUGHT_UP = "caught_up"
    BACKFILLED = "backfilled"
    MANUAL = "manual"
    MISSED = "missed"
    SKIPPED_STALE = "skipped_stale"
    SKIPPED_OVERLAP = "skipped_overlap"
    SUPERSEDED = "superseded"
    PAUSED = "paused"


class PublishOutcome(StrEnum):
    """The slot outcomes that publish a message (a subset of :class:`SlotOutcome`)."""

    FIRED = SlotOutcome.FIRED.value
    CAUGHT_UP = SlotOutcome.CAUGHT_UP.value
    BACKFILLED = SlotOutcome.BACKFILLED.value
    MANUAL = SlotOutcome.MANUAL.value


# --- Fire ids ---------------------------------------------------------------------------

_MANUAL_PREFIX: Final = "manual:"


def iso_slot(slot: datetime) -> str:
    """A slot as it appears in fire ids: UTC, ``Z``, microseconds only when present."""
    text = slot.strftime("%Y-%m-%dT%H:%M:%S")
    if slot.microsecond:
        text += f".{slot.microsecond:06d}"
    return text + "Z"


@dataclass(frozen=True)
class Flight:
    """A run of a job still in the fleet: ``queued`` (published, not started) or running (the overlap policy's
    input; the scheduler's store finds them, :mod:`broker_jobs.scheduling.simulate` models them)."""

    fire_id: str
    queued: bool


@dataclass(frozen=True, slots=True)
class FireId:
    """The id of one fire of one schedule: ``job_id@slotISO`` (``job_id@manual:ISO`` for run-now).

    Attributes:
      job_id: The schedule's id (everything before the first ``@``).
      slot: What follows the ``@`` (``None`` when a foreign sender's id has none).
    """

    job_id: str
    slot: str | None

    @classmethod
    def make(cls, job_id: str, slot: datetime) -> FireId:
        """The fire id of ``job_id``'s slot at ``slot``."""
        return cls(job_id, iso_slot(slot))

    @classmethod
    def manual(cls, job_id: str, at: datetime) -> FireId:
        """The fire id of a run-now of ``job_id`` at ``at``."""
        return cls(job_id, _MANUAL_PREFIX + iso_slot(at))

    @classmethod
    def parse(cls, text: str) -> FireId:
        """Split a fire id as the scheduler writes it (any text: the job id ends at the first ``@``)."""
        job_id, at, slot = text.partition("@")
        return cls(job_id, slot if at else None)

    @property
    def is_manual(self) -> bool:
        """Whether this is a run-now fire."""
        return self.slot is not None and self.slot.startswith(_MANUAL_PREFIX)

    def __str__(self) -> str:
        return self.job_id if self.slot is None else f"{self.job_id}@{self.slot}"


def job_id_of(fire_id: object) -> str | None:
    """The schedule id of a fire id as found in options or rows (``None`` for none)."""
    return FireId.parse(str(fire_id)).job_id if fire_id else None


# --- Attempts ---------------------------------------------------------------------------

def attempt_of(options: Mapping[str, Any]) -> int:
    """The attempt a delivery is (1 for the first): Dramatiq counts earlier ones in ``retries``."""
    return int(options.get(RETRIES, 0)) + 1


def dead_attempts(options: Mapping[str, Any]) -> int:
    """How many attempts a dead-lettered message had.

    Dramatiq's Retries counts a failure in ``retries`` before it gives up, so
    exhausted retries are already counted; a failure we dead-letter at once (a
    permanent error, an unknown actor, a refused retry: each notes ``bj_error``)
    fails before Retries counts it.
    """
    retries = int(options.get(RETRIES, 0))
    return retries + 1 if options.get(BJ_ERROR) else max(1, retries)
