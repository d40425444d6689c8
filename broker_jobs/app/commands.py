"""The built-in application's CLI commands: ``entities``, ``services``, ``search``, ``concepts``."""

from __future__ import annotations

from typing import Any

import click

from broker_jobs.cli.common import dump, guarded, table
from broker_jobs.redaction import redact


def app_settings() -> Any:
    """The built-in jobs' settings (a bad environment value ends as one line, through ``guarded``)."""
    from broker_jobs.app.settings import get_app_settings  # deferred: pydantic-settings, only when a command runs

    return get_app_settings()

@click.command("entities")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@guarded
def entities(as_json: bool) -> None:
    """List the entity kinds ETL embeds: table, template, payload, vectors stored."""
    from broker_jobs.app.entities import all_entities  # deferred: numpy and qdrant-client, only when this runs
    from broker_jobs.app.vectors import open_store  # deferred: numpy and qdrant-client, only when this runs

    with open_store(app_settings()) as store:
        counts = {kind: store.count(kind) for kind in store.kinds()}
    rows: list[dict[str, Any]] = [
        {"kind": e.kind, "table": e.table, "text": e.text, "payload": list(e.payload),
         "vectors": counts.get(e.kind, 0)} for e in all_entities()
    ]
    if as_json:
        dump(rows)
    else:
        click.echo(table(rows, ["kind", "table", "vectors", "text"]))


@click.group("services")
def services() -> None:
    """The services whose status APIs ``sync_service`` polls."""


@services.command("add")
@click.argument("name")
@click.argument("status_url")
@click.option("--inactive", is_flag=True, help="Keep it but do not poll it.")
@guarded
def services_add(name: str, status_url: str, inactive: bool) -> None:
    """Add (or update) service NAME with its STATUS_URL."""
    from broker_jobs.app.connectors.services import (
        add_service,  # deferred: another job module: declared by broker_jobs.app.jobs, used only when this job runs
    )
    from broker_jobs.store.db import get_engine  # deferred: SQLAlchemy, only when this runs

    service_id = add_service(get_engine(app_settings().database_url), name, status_url, active=not inactive)
    click.echo(f"service {name!r} has id {service_id}")


@services.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@guarded
def services_list(as_json: bool) -> None:
    """List the services."""
    from sqlalchemy import select  # deferred: SQLAlchemy, only when this runs
    from sqlalchemy.orm import Session  # deferred: SQLAlchemy, only when this runs

    from broker_jobs.app.tables import Service  # deferred: SQLAlchemy, only when this runs
    from broker_jobs.store.db import get_engine  # deferred: SQLAlchemy, only when this runs

    with Session(get_engine(app_settings().database_url)) as session:
        rows = [{"id": s.id, "name": s.name, "status_url": redact(s.status_url), "active": s.active,
                 "last_status": s.last_status, "last_synced_at": s.last_synced_at}
                for s in session.scalars(select(Service).order_by(Service.id))]
    if as_json:
        dump(rows)
    else:
        click.echo(table(rows, ["id", "name", "active", "last_status", "last_synced_at", "status_url"]))


@click.command("search")
@click.argument("query")
@click.option("--kind", default="vault_documents", show_default=True, help="The entity kind to search.")
@click.option("--limit", default=5, show_default=True, type=click.IntRange(1, 100))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@guarded
def search(query: str, kind: str, limit: int, as_json: bool) -> None:
    """Semantic search in the vector store (what the ETL keeps up to date)."""
    from broker_jobs.app.vectors import (  # deferred: numpy and qdrant-client, only when this runs
        get_embedder,
        open_store,
    )
    from broker_jobs.errors import NotFoundError  # deferred: errors.py pulls dramatiq; the CLI's --help stays light

    embedder = get_embedder()
    with open_store(app_settings()) as store:
        if store.physical(kind) is None:
            raise NotFoundError(f"no collection {kind!r} yet (known: {', '.join(store.kinds()) or 'none'})")
        hits = store.search(kind, embedder.embed([query])[0], limit)
    rows = [{"score": f"{h.score:.3f}", "row_id": (h.payload or {}).get("row_id"),
             "text": ((h.payload or {}).get("text") or "")[:80]} for h in hits]
    if as_json:
        dump(rows)
    else:
        click.echo(table(rows, ["score", "row_id", "text"]))


@click.group("concepts")
def concepts() -> None:
    """The merges concept hygiene applied: list them, undo one."""


@concepts.command("merges")
@click.option("--kind", help="Only this entity kind.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@guarded
def concepts_merges(kind: str | None, limit: int, as_json: bool) -> None:
    """The newest merges: id, kind, the source kept, the duplicate merged into it, score, when, undone."""
    from broker_jobs.app.vectors.hygiene import list_merges  # deferred: numpy and qdrant-client, only when this runs
    from broker_jobs.store.db import get_engine  # deferred: SQLAlchemy, only when this runs

    rows = list_merges(get_engine(app_settings().database_url), kind, limit)
    if as_json:
        dump(rows)
    else:
        click.echo(table(rows, ["id", "kind", "source_id", "duplicate_id", "score", "merged_at", "undone_at"]))


@concepts.command("undo")
@click.argument("merge_id", type=int)
@guarded
def concepts_undo(merge_id: int) -> None:
    """Undo merge MERGE_ID: the duplicate's vector goes back, and hygiene never merges that pair by itself again."""
    from broker_jobs.app.vectors import open_store  # deferred: numpy and qdrant-client, only when this runs
    from broker_jobs.app.vectors.hygiene import undo_merge  # deferred: numpy and qdrant-client, only when this runs
    from broker_jobs.store.db import get_engine  # deferred: SQLAlchemy, only when this runs

    settings = app_settings()
    with open_store(settings) as store:
        done = undo_merge(get_engine(settings.database_url), store, merge_id)
    click.echo(f"undid merge {merge_id}: {done['kind']} {done['duplicate_id']} is back beside {done['source_id']}")


COMMANDS = [entities, services, search, concepts]
