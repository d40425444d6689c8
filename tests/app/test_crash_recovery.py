"""Ingest jobs interrupted mid-run finish on the next run with nothing lost and nothing duplicated."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from broker_jobs.app.settings import get_app_settings
from broker_jobs.app.tables import CompanyRecord, Document, GithubRepository
from broker_jobs.settings import get_settings
from tests.support import FakeApis

from .conftest import JobsEnv, snapshot_db


def count(model: Any) -> int:
    from broker_jobs.store.db import get_engine

    with Session(get_engine()) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def crash_on_call(monkeypatch: pytest.MonkeyPatch, target: str, n: int) -> None:
    """Make the ``n``-th call of ``target`` raise, as if the worker died there (once)."""
    module_name, attr = target.rsplit(".", 1)
    import importlib

    module = importlib.import_module(module_name)
    real, calls = getattr(module, attr), {"n": 0}

    def crashing(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == n:
            raise RuntimeError("worker killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(module, attr, crashing)  # restored after the test; later runs go through


def test_vault_sync_killed_in_its_second_batch_finishes_on_the_next_run(jobs_env: JobsEnv,
                                                                        monkeypatch: pytest.MonkeyPatch):
    from broker_jobs.app.jobs.vault import run_vault_sync

    crash_on_call(monkeypatch, "broker_jobs.app.connectors.vault.parse_note", 5)  # batch 2 of 3 files each
    with pytest.raises(RuntimeError):
        run_vault_sync()
    assert count(Document) == 3  # the first batch committed, the second rolled back whole
    report = run_vault_sync()
    assert (report["inserted"], report["skipped"]) == (5, 3)
    assert count(Document) == 8


def test_csv_import_killed_mid_company_finishes_on_the_next_run(jobs_env: JobsEnv, settings_env,
                                                                 monkeypatch: pytest.MonkeyPatch):
    from broker_jobs.app.connectors.csv_import import import_all
    from broker_jobs.store.db import get_engine

    settings_env.setenv("CSV_MAX_CONCURRENT", "1")  # one company at a time: the crash lands in Acme
    get_settings.cache_clear()
    crash_on_call(monkeypatch, "broker_jobs.app.connectors.csv_import.utc_now", 4)  # inside Acme's second batch
    first = import_all(get_app_settings(), get_engine()).asdict()
    assert first["failed"] == 1 and list(first["errors"]) == ["Acme Robotics"]  # the others imported
    assert count(CompanyRecord) == 3 + 3 + 3  # Acme's first batch, Globex and Initech
    second = import_all(get_app_settings(), get_engine()).asdict()
    assert second["failed"] == 0
    assert count(CompanyRecord) == 11  # nothing lost, nothing twice
    assert import_all(get_app_settings(), get_engine()).asdict()["inserted"] == 0


def test_github_ingest_killed_after_its_first_page_finishes_on_the_next_run(jobs_env: JobsEnv, apis: FakeApis,
                                                                           monkeypatch: pytest.MonkeyPatch):
    from broker_jobs.app.connectors import github
    from broker_jobs.store.db import get_engine

    crash_on_call(monkeypatch, "broker_jobs.app.connectors.github.repository_fields", 3)  # on page 2
    with pytest.raises(RuntimeError):
        github.ingest(get_app_settings(), get_engine())
    assert count(GithubRepository) == 2
    report = github.ingest(get_app_settings(), get_engine()).asdict()
    assert count(GithubRepository) == 5 and report["not_modified_pages"] == 1 and report["inserted"] == 3
    before = snapshot_db()
    github.ingest(get_app_settings(), get_engine())
    assert snapshot_db() == before
