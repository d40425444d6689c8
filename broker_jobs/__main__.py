"""``python -m broker_jobs`` is the ``broker-jobs`` command."""

from .cli import main

main()
