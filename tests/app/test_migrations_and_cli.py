"""Alembic migrations cover every table on the metadata; the jobs' CLI commands work end to end."""

from __future__ import annotations

import json

from sqlalchemy import inspect

from broker_jobs.store.migrations import HEAD  # checked against Alembic's own head by test_schema
from tests.support import run_cli

from .conftest import JobsEnv


def test_the_schema_is_at_the_head_revision_with_every_declared_table(database_url: str):
    from broker_jobs.app import tables  # noqa: F401  (the built-in jobs' tables, on the framework's metadata)
    from broker_jobs.store.db import get_engine
    from broker_jobs.store.migrations import current, upgrade
    from broker_jobs.store.models import metadata

    engine = get_engine(database_url)
    upgrade(engine)  # a second upgrade is a no-op
    assert current(engine) == HEAD
    assert set(metadata.tables) <= set(inspect(engine).get_table_names())


def test_a_database_of_an_earlier_release_loses_the_redundant_actor_index(tmp_path):
    from alembic import command
    from sqlalchemy import create_engine

    from broker_jobs.store.migrations import config, current

    engine = create_engine(f"sqlite:///{tmp_path}/old.sqlite3")
    with engine.begin() as conn:
        # Releases before 0002 created job_runs with an index on actor alone (0001 still does).
        command.upgrade(config(conn), "0001_initial")
    before = {ix["name"] for ix in inspect(engine).get_indexes("job_runs")}
    with engine.begin() as conn:
        command.upgrade(config(conn), "0002_drop_actor_index")
    after = {ix["name"] for ix in inspect(engine).get_indexes("job_runs")}
    assert after == before - {"ix_job_runs_actor"}
    assert "ix_job_runs_actor_finished" in after
    with engine.begin() as conn:  # and on to the newest revision from there
        command.upgrade(config(conn), "head")
    assert current(engine) == HEAD
    engine.dispose()


def test_the_head_the_store_checks_cheaply_is_alembics_own_head():
    from alembic.script import ScriptDirectory

    from broker_jobs.store.migrations import HEAD as CHEAP_HEAD
    from broker_jobs.store.migrations import config

    assert ScriptDirectory.from_config(config()).get_current_head() == CHEAP_HEAD == HEAD  # type: ignore[arg-type]


def test_an_earlier_revision_is_still_upgraded_when_the_store_opens(tmp_path):
    from alembic import command
    from sqlalchemy import create_engine

    from broker_jobs.store.migrations import at_head, config, current, upgrade

    engine = create_engine(f"sqlite:///{tmp_path}/old.sqlite3")
    assert not at_head(engine)  # no alembic_version table yet
    with engine.begin() as conn:
        command.upgrade(config(conn), "0001_initial")
    assert not at_head(engine)
    upgrade(engine)
    assert at_head(engine) and current(engine) == HEAD
    assert "ix_job_runs_actor" not in {ix["name"] for ix in inspect(engine).get_indexes("job_runs")}
    engine.dispose()


def test_opening_a_database_already_at_head_does_not_import_alembic(tmp_path):
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path}/head.sqlite3"
    script = ("import sys\nfrom broker_jobs.store.db import get_engine\n"
              f"get_engine({url!r})\nprint('alembic' in sys.modules)")
    first = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    again = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert (first.returncode, again.returncode) == (0, 0), first.stderr + again.stderr
    assert first.stdout.split() == ["True"]  # a fresh file: Alembic creates the schema
    assert again.stdout.split() == ["False"]  # at head: one SELECT, Alembic never imported


def test_cli_migrates_adds_a_service_and_searches_what_etl_embedded(jobs_env: JobsEnv):
    from broker_jobs.app.jobs.etl import run_etl
    from broker_jobs.app.jobs.vault import run_vault_sync

    migrated = run_cli("migrate", "--json")
    assert migrated.returncode == 0, migrated.stderr
    assert json.loads(migrated.stdout)["revision"] == HEAD
    # The rest in-process: same commands, without a Python start-up each.
    from click.testing import CliRunner

    from broker_jobs.app.main import cli as main

    cli = CliRunner()
    added = cli.invoke(main, ["services", "add", "web", "http://127.0.0.1:1/status"])
    assert added.exit_code == 0 and "has id" in added.output
    listed = json.loads(cli.invoke(main, ["services", "list", "--json"]).output)
    assert [(s["name"], s["active"]) for s in listed] == [("web", True)]
    run_vault_sync()
    run_etl(["vault_documents"])
    found = cli.invoke(main, ["search", "dead letter queue replay", "--json"])
    assert found.exit_code == 0, found.output
    assert json.loads(found.output)[0]["text"].startswith(("Message broker", "Dead letters"))
    kinds = {e["kind"]: e["vectors"] for e in json.loads(cli.invoke(main, ["entities", "--json"]).output)}
    assert kinds["vault_documents"] == 8 and kinds["github_repositories"] == 0
    missing = cli.invoke(main, ["search", "x", "--kind", "nothing"])
    assert missing.exit_code == 2 and "no collection 'nothing'" in missing.output
