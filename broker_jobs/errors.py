"""The error tree of broker_jobs.

Every error a user can cause is a :class:`BrokerJobsError`; the CLI turns
those into one line on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

from dramatiq.middleware import MiddlewareError, SkipMessage


class BrokerJobsError(Exception):
    """Base class for every error raised by broker_jobs.

    Parameters:
      message: One line describing the problem; it names the field,
        variable, queue or job involved.
    """

    exit_code = 1


class ConfigError(BrokerJobsError):
    """A setting, an environment variable or the jobs file is invalid."""

    exit_code = 2


class ScheduleError(BrokerJobsError):
    """A schedule cannot be computed or applied."""

    exit_code = 2


class BrokerUnavailableError(BrokerJobsError):
    """RabbitMQ could not be reached or did not confirm a publish."""

    exit_code = 4


class DatabaseUnavailableError(BrokerJobsError):
    """The database (``DATABASE_URL``) could not be reached or refused the connection."""

    exit_code = 5


class MessageTooLarge(BrokerJobsError, MiddlewareError):
    """A message is larger than ``MAX_MESSAGE_BYTES``: refused before it is published.

    A ``MiddlewareError`` too: Dramatiq only lets those out of a middleware hook.
    """

    exit_code = 2


class PublishBlocked(BrokerUnavailableError):
    """RabbitMQ blocked publishing (memory or disk alarm) for longer than ``PUBLISH_TIMEOUT``."""


class JobFailedError(BrokerJobsError):
    """A job followed by ``send --wait`` ended failed or dead-lettered."""

    exit_code = 6


class WaitTimeout(BrokerJobsError):
    """A job followed by ``send --wait`` had not finished within ``--timeout``."""

    exit_code = 7


class NotFoundError(BrokerJobsError):
    """An actor, job, message or dead letter does not exist."""

    exit_code = 2


class JobError(BrokerJobsError):
    """Base class for errors raised by job bodies."""


class TransientJobError(JobError):
    """A failure worth retrying with backoff (network blip, lock timeout)."""


class PermanentJobError(JobError):
    """A failure that retrying cannot fix: dead-lettered at once."""


class ArgumentsInvalid(PermanentJobError):
    """The message's arguments do not match the job's argument model."""


class UnknownActor(PermanentJobError):
    """The message names an actor no worker declares."""


class SkipJob(SkipMessage):
    """Raised by a job (or middleware) to end the run as ``skipped``.

    Parameters:
      reason: Why the run was skipped, kept on the history entry.
    """
