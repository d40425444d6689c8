"""The entity registry: declare a table, a text template and payload fields, nothing else.

>>> register_entity(Entity(kind="notes", table="my_notes", text="{title}\\n{content}",
...                        payload=("title", "author")))

or, without code, in ``ENTITIES_CONFIG`` (``config/entities.yaml``)::

    entities:
      - kind: notes
        table: my_notes
        text: "{title}\\n{content}"
        payload: [title, author]

The table needs an id column, an ``updated_at`` timestamp set on every change
and optionally a boolean ``deleted`` flag (rows flagged deleted lose their
vectors); the names are configurable per entity.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from broker_jobs.errors import ConfigError, NotFoundError


@dataclass(frozen=True)
class Entity:
    """One kind of row embedded into one vector collection.

    Parameters:
      kind: The collection (alias) name, unique.
      table: The table the rows come from.
      text: A ``str.format`` template over the row's columns.
      payload: Columns copied into each vector's payload.
      id_column: The row's natural key.
      updated_column: A timestamp that moves whenever the row changes.
      deleted_column: A boolean soft-delete flag, or None when rows are only hard-deleted.
    """

    kind: str
    table: str
    text: str
    payload: tuple[str, ...] = ()
    id_column: str = "id"
    updated_column: str = "updated_at"
    deleted_column: str | None = "deleted"
    columns: tuple[str, ...] = field(default=(), compare=False)

    def template_fields(self) -> list[str]:
        """The column names the text template reads."""
        return [name for _, name, _, _ in string.Formatter().parse(self.text) if name]


_BUILTIN = (
    Entity("vault_documents", "documents", "{title}\n\n{body}", ("path", "title", "tags")),
    Entity("github_repositories", "github_repositories", "{full_name}: {description}\nlanguage: {language}\n"
           "topics: {topics}", ("full_name", "owner", "language", "stars", "html_url")),
    Entity("spotify_tracks", "spotify_tracks", "{name} by {artists} on {album}",
           ("name", "artists", "album", "popularity")),
    Entity("spotify_artists", "spotify_artists", "{name}\ngenres: {genres}", ("name", "genres", "popularity")),
    Entity("spotify_playlists", "spotify_playlists", "{name}\n{description}", ("name", "owner", "tracks_total")),
    Entity("spotify_albums", "spotify_albums", "{name} by {artists} ({release_date})",
           ("name", "artists", "release_date")),
    Entity("company_records", "company_records", "{text}", ("company_id", "data")),
    Entity("service_logs", "service_logs", "[{level}] {message}", ("service_id", "level", "logged_at")),
)

_registered: dict[str, Entity] = {e.kind: e for e in _BUILTIN}


def register_entity(entity: Entity) -> Entity:
    """Add (or replace) an entity; ``etl_sync`` picks it up on its next run."""
    if not entity.kind.replace("_", "").isalnum():
        raise ConfigError(f"entity kind {entity.kind!r} must be letters, digits and underscores")
    _registered[entity.kind] = entity
    return entity


def _from_file(path: Path) -> list[Entity]:
    if not path.is_file():
        return []
    try:
        data = yaml.safe_load(path.read_text()) or {}
        entries = data.get("entities") or []
        found = []
        for entry in entries:
            entry = dict(entry)
            entry["payload"] = tuple(entry.get("payload") or ())
            found.append(Entity(**entry))
        return found
    except (yaml.YAMLError, TypeError, AttributeError) as exc:
        raise ConfigError(f"invalid ENTITIES_CONFIG {path}: {exc}") from None


def all_entities(config: Path | None = None) -> list[Entity]:
    """The built-in, registered and ``ENTITIES_CONFIG`` entities, sorted by kind."""
    if config is None:
        from broker_jobs.app.settings import get_app_settings  # deferred: pydantic-settings, only when this runs

        config = get_app_settings().entities_config
    merged = dict(_registered)
    for entity in _from_file(config):
        merged[entity.kind] = entity
    return [merged[k] for k in sorted(merged)]


def get_entity(kind: str, config: Path | None = None) -> Entity:
    """The entity called ``kind``.

    Raises:
      NotFoundError: naming the known kinds.
    """
    entities = {e.kind: e for e in all_entities(config)}
    try:
        return entities[kind]
    except KeyError:
        raise NotFoundError(f"unknown entity {kind!r} (known: {', '.join(sorted(entities))})") from None


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return ""


def _plain(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items())
    return value


def render_text(entity: Entity, row: dict[str, Any]) -> str:
    """The text embedded for ``row``: the template with lists joined and NULLs blank."""
    return entity.text.format_map(_Blank({k: _plain(v) for k, v in row.items()})).strip()
