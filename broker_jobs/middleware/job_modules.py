"""Imports the jobs file's ``modules:`` when a worker process boots.

The scheduler and ``broker-jobs`` import them to name the user's jobs; a worker
must import them too, or a message for a user job is dead-lettered as an unknown
actor.  With this, ``dramatiq broker_jobs.actors`` alone runs every job the jobs
file (``JOBS_CONFIG``) brings in, however the worker is started (Procfile,
compose, Kubernetes, systemd).

Dramatiq's worker process emits ``process_boot`` after importing the broker
module and before it imports the modules of its command line and starts its
worker threads, so the user's actors (and their queues) exist before the
consumers and :class:`~broker_jobs.broker.TopologyGuard` look at the queues.
"""

from __future__ import annotations

import logging
import sys

import dramatiq

from ..errors import ConfigError

logger = logging.getLogger(__name__)


class JobModules(dramatiq.Middleware):
    """Imports ``modules:`` of the jobs file at process boot; a bad one stops the process with one line."""

    def after_process_boot(self, broker: dramatiq.Broker) -> None:
        from ..scheduling.jobs_file import import_modules  # deferred: read at process boot only
        from ..settings import get_settings  # deferred: pydantic-settings, only when this runs

        try:
            names = import_modules(get_settings().jobs_config)
        except ConfigError as exc:  # a user mistake: one line, exit 2, no traceback
            print(f"broker-jobs: {exc}", file=sys.stderr, flush=True)
            raise SystemExit(exc.exit_code) from None
        if names:
            logger.info("Imported the jobs file's modules: %s", ", ".join(names))
