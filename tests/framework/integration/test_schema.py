"""The schema is defined once: the Alembic revisions build exactly the tables the models describe."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, inspect

import broker_jobs.app.tables  # noqa: F401  (the built-in jobs' tables, on the framework's metadata)
from broker_jobs.store import models
from broker_jobs.store.migrations import HERE, config, current, differences, upgrade
from tests.support import TEST_POSTGRES_URL, database, port_open, unavailable

HEAD = "0004_concept_merges"


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An engine on a database nobody has touched: a new SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        engine = create_engine(f"sqlite:///{tmp_path}/fresh.sqlite3")
        yield engine
        engine.dispose()
        return
    if not port_open(TEST_POSTGRES_URL, 5432):
        unavailable(f"PostgreSQL at {TEST_POSTGRES_URL}")
    with database(TEST_POSTGRES_URL, "bj_schema") as url:
        engine = create_engine(url)
        yield engine
        engine.dispose()


def test_the_migrations_build_exactly_the_tables_the_models_describe(fresh_engine: Engine):
    assert inspect(fresh_engine).get_table_names() == []
    upgrade(fresh_engine)
    assert current(fresh_engine) == HEAD
    assert differences(fresh_engine, models.metadata) == []
    tables = set(inspect(fresh_engine).get_table_names()) - {"alembic_version"}
    assert tables == set(models.metadata.tables)


def test_a_model_changed_without_a_migration_is_reported(fresh_engine: Engine):
    from sqlalchemy import Column, MetaData, String

    upgrade(fresh_engine)
    changed = MetaData()
    for table in models.metadata.sorted_tables:
        table.to_metadata(changed)
    changed.tables["claims"].append_column(Column("note", String(50)))
    found = differences(fresh_engine, changed)
    assert [(d[0], d[3].name) for d in found if d[0] == "add_column"] == [("add_column", "note")]


def test_downgrading_to_nothing_drops_every_table_and_upgrading_again_matches(fresh_engine: Engine):
    from alembic import command

    upgrade(fresh_engine)
    with fresh_engine.begin() as conn:
        command.downgrade(config(conn), "base")  # type: ignore[arg-type]
    assert set(inspect(fresh_engine).get_table_names()) <= {"alembic_version"}
    upgrade(fresh_engine)
    assert differences(fresh_engine, models.metadata) == []


def test_no_revision_imports_a_model_so_each_keeps_the_schema_it_shipped():
    for script in sorted((HERE / "versions").glob("*.py")):
        tree = ast.parse(script.read_text(encoding="utf-8"))
        imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert not {name for name in imported if name.startswith(("broker_jobs", "."))}, script.name
