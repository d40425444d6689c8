"""Tables of the data the jobs keep in sync: ingested rows, watermarks, proposals.

Every ingested table has a natural key (unique), an ``updated_at`` that moves
whenever the row changes and a ``deleted`` flag: ETL reads changes by
``(updated_at, id)`` and removes the vectors of rows flagged deleted.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from broker_jobs.clock import utc_now
from broker_jobs.store.models import metadata


class Base(DeclarativeBase):
    """Declarative base of the built-in jobs' tables, on the framework's :data:`~broker_jobs.store.models.metadata`."""

    metadata = metadata


class Document(Base):
    """One Markdown note of the vault, keyed by its path relative to ``VAULT_PATH``."""

    __tablename__ = "documents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    path: Mapped[str] = mapped_column(String(1000), unique=True)
    title: Mapped[str] = mapped_column(String(500))
    body: Mapped[str] = mapped_column(Text, default="")
    front_matter: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    tags: Mapped[list[str] | None] = mapped_column(JSON)
    links: Mapped[list[str] | None] = mapped_column(JSON)
    content_hash: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now, index=True)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)


class DocumentLink(Base):
    """A ``[[wiki link]]`` from one document; ``target_id`` is NULL when the link is broken."""

    __tablename__ = "document_links"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), index=True)
    target: Mapped[str] = mapped_column(String(500))
    target_id: Mapped[int | None] = mapped_column(Integer)
    broken: Mapped[bool] = mapped_column(Boolean, default=False, index=True)

    __table_args__ = (UniqueConstraint("source_id", "target"),)


class GithubRepository(Base):
    """A repository of one of ``GITHUB_OWNERS``, keyed by GitHub's id."""

    __tablename__ = "github_repositories"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    full_name: Mapped[str] = mapped_column(String(300), index=True)
    owner: Mapped[str] = mapped_column(String(200), index=True)
    description: Mapped[str | None] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(100))
    topics: Mapped[list[str] | None] = mapped_column(JSON)
    stars: Mapped[int] = mapped_column(Integer, default=0)
    html_url: Mapped[str | None] = mapped_column(String(500))
    pushed_at: Mapped[str | None] = mapped_column(String(40))
    content_hash: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now, index=True)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)


class _SpotifyItem:
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(500))
    content_hash: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now, index=True)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)


class SpotifyTrack(_SpotifyItem, Base):
    """A saved track of the user."""

    __tablename__ = "spotify_tracks"

    artists: Mapped[str] = mapped_column(Text, default="")
    album: Mapped[str | None] = mapped_column(String(500))
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    popularity: Mapped[int | None] = mapped_column(Integer)


class SpotifyArtist(_SpotifyItem, Base):
    """An artist the user follows."""

    __tablename__ = "spotify_artists"

    genres: Mapped[list[str] | None] = mapped_column(JSON)
    popularity: Mapped[int | None] = mapped_column(Integer)


class SpotifyPlaylist(_SpotifyItem, Base):
    """A playlist of the user."""

    __tablename__ = "spotify_playlists"

    description: Mapped[str | None] = mapped_column(Text)
    owner: Mapped[str | None] = mapped_column(String(200))
    tracks_total: Mapped[int | None] = mapped_column(Integer)


class SpotifyAlbum(_SpotifyItem, Base):
    """An album saved by the user."""

    __tablename__ = "spotify_albums"

    artists: Mapped[str] = mapped_column(Text, default="")
    release_date: Mapped[str | None] = mapped_column(String(20))
    total_tracks: Mapped[int | None] = mapped_column(Integer)


class Company(Base):
    """A company whose records come from a CSV source (a path or a URL)."""

    __tablename__ = "companies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    source: Mapped[str] = mapped_column(String(1000))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    last_imported_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)


class CompanyRecord(Base):
    """One CSV row of a company; the same row twice is stored once (content hash)."""

    __tablename__ = "company_records"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"), index=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    text: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now, index=True)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (UniqueConstraint("company_id", "content_hash"),)


class Service(Base):
    """A service whose status API is polled; ``cursor`` is the last record id seen."""

    __tablename__ = "services"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    status_url: Mapped[str] = mapped_column(String(1000))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    cursor: Mapped[str | None] = mapped_column(String(200))
    last_status: Mapped[str | None] = mapped_column(String(50))
    last_synced_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ServiceLog(Base):
    """A log record of a service, keyed by the service's own record id."""

    __tablename__ = "service_logs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"), index=True)
    external_id: Mapped[str] = mapped_column(String(200))
    level: Mapped[str | None] = mapped_column(String(20))
    message: Mapped[str] = mapped_column(Text, default="")
    logged_at: Mapped[str | None] = mapped_column(String(40))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now, index=True)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (UniqueConstraint("service_id", "external_id"),)


class Watermark(Base):
    """How far ETL got for one entity: the last ``(updated_at, id)`` embedded."""

    __tablename__ = "etl_watermarks"

    entity: Mapped[str] = mapped_column(String(200), primary_key=True)
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_id: Mapped[str | None] = mapped_column(String(200))
    generation: Mapped[int] = mapped_column(Integer, default=1)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class HttpCache(Base):
    """ETag and what a page held, so a 304 still tells which items exist."""

    __tablename__ = "http_cache"

    url: Mapped[str] = mapped_column(String(1000), primary_key=True)
    etag: Mapped[str | None] = mapped_column(String(300))
    next_url: Mapped[str | None] = mapped_column(String(1000))
    item_ids: Mapped[list[Any] | None] = mapped_column(JSON)
    fetched_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class MergeProposal(Base):
    """Two vectors of one kind closer than ``DUPLICATE_THRESHOLD``: a merge to review."""

    __tablename__ = "merge_proposals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(200), index=True)
    source_id: Mapped[str] = mapped_column(String(200))
    duplicate_id: Mapped[str] = mapped_column(String(200))
    score: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(20), default="open")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)

    __table_args__ = (UniqueConstraint("kind", "source_id", "duplicate_id"),)


class ConceptMerge(Base):
    """A merge concept hygiene applied: the duplicate's vector, kept so that ``concepts undo`` can put it back."""

    __tablename__ = "concept_merges"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    proposal_id: Mapped[int] = mapped_column(Integer, index=True)
    kind: Mapped[str] = mapped_column(String(200))
    source_id: Mapped[str] = mapped_column(String(200))
    duplicate_id: Mapped[str] = mapped_column(String(200))
    score: Mapped[float] = mapped_column(Float)
    point_id: Mapped[str] = mapped_column(String(64))
    vector: Mapped[list[float]] = mapped_column(JSON)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    merged_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    undone_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
