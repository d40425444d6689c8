"""The framework's ``broker-jobs`` command line: one module per command group.

:mod:`broker_jobs.cli.main` holds the group; :mod:`broker_jobs.cli.common` what every command shares.  Modules here
import click and each other only at module level, so ``broker-jobs --help`` starts at once; a command body defers
the heavy libraries it needs (SQLAlchemy, dramatiq, pika, pydantic), each import marked ``# deferred: <why>``.
"""
