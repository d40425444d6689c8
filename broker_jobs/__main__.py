"""``python -m broker_jobs`` is the ``broker-jobs`` command (the framework's CLI with the built-in application)."""

from broker_jobs.app.main import main

main()
