"""The ``broker-jobs`` group: the framework's commands (an application adds its own, see ``broker_jobs.app.main``)."""

from __future__ import annotations

import click

from broker_jobs.api.commands import COMMANDS as API_COMMANDS
from broker_jobs.cli.completion import completion
from broker_jobs.cli.dlq import dlq
from broker_jobs.cli.history import history
from broker_jobs.cli.migrate import migrate
from broker_jobs.cli.queues import check_config, queues, setup
from broker_jobs.cli.send import send
from broker_jobs.scheduling.commands import COMMANDS as SCHEDULING_COMMANDS


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="broker-jobs")
def main() -> None:
    """Scheduled and on-demand background jobs over RabbitMQ with Dramatiq."""
    # Settings and logging are set up by each command as it runs (``guarded``), so `<command> --help` stays light.


for _command in (send, history, queues, dlq, setup, check_config, migrate, completion, *SCHEDULING_COMMANDS,
                 *API_COMMANDS):
    main.add_command(_command)
