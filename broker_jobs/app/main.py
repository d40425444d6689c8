"""The ``broker-jobs`` console script: the framework's CLI, the built-in application's commands and jobs.

Importing this module registers the built-in jobs' loader with the framework's registry
(:func:`broker_jobs.registry.add_loader`): the framework loads them wherever it needs the jobs
(``send``, the jobs file, the scheduler, periodiq) without naming the application.
"""

from __future__ import annotations

import atexit
import gc

from broker_jobs import registry
from broker_jobs.app.commands import COMMANDS
from broker_jobs.cli.main import main as cli


def load_builtin_jobs() -> None:
    """Declare every built-in job (idempotent: a module is imported once)."""
    import broker_jobs.app.jobs  # noqa: F401  # deferred: the jobs pull dramatiq, SQLAlchemy, numpy, qdrant-client


registry.add_loader(load_builtin_jobs)
# Jobs written APScheduler's way (`job_id`, `type`, `config`) run the ETL pipeline with their `config`.
registry.set_pipeline("etl_pipeline")
for _command in COMMANDS:
    cli.add_command(_command)


def main() -> None:
    """Run the ``broker-jobs`` command (named so also as ``python -m broker_jobs``: usage lines, completion)."""
    # The interpreter's last garbage collection walks every object the imports made (SQLAlchemy's,
    # pydantic's): about 100 ms of a 450 ms `jobs list`. Frozen as the command exits, they are not
    # walked; the command's own resources are closed by then (with-blocks, logging's own atexit flush).
    atexit.register(gc.freeze)
    cli(prog_name="broker-jobs")


__all__ = ["cli", "load_builtin_jobs", "main"]
