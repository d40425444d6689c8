"""SQLAlchemy models of broker_jobs' durable state."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """Declarative base of every table."""


class JobRun(Base):
    """One message's execution, updated in place as it moves through its attempts."""

    __tablename__ = "job_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(String(64), unique=True)
    actor: Mapped[str] = mapped_column(String(200))  # indexed by ix_job_runs_actor_finished
    queue: Mapped[str] = mapped_column(String(200))
    priority: Mapped[str] = mapped_column(String(10), default="medium")
    status: Mapped[str] = mapped_column(String(16), index=True)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    # Orders events of one message across processes: (retries, deferrals, phase).
    seq: Mapped[int] = mapped_column(BigInteger, default=0)
    enqueued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    duration_ms: Mapped[float | None]
    error: Mapped[str | None] = mapped_column(Text)
    worker: Mapped[str | None] = mapped_column(String(200))
    fire_id: Mapped[str | None] = mapped_column(String(300))
    report: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    __table_args__ = (Index("ix_job_runs_actor_finished", "actor", "finished_at"),)


class DeadLetter(Base):
    """The archive of a dead-lettered message: why it died and how to replay it."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(String(64), index=True)
    actor: Mapped[str] = mapped_column(String(200), index=True)
    queue: Mapped[str] = mapped_column(String(200), index=True)
    reason: Mapped[str] = mapped_column(Text)
    traceback: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    dead_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    state: Mapped[str] = mapped_column(String(16), default="dead")  # dead | replayed | purged
    body: Mapped[str | None] = mapped_column(Text)


class Claim(Base):
    """A key held by one owner until it expires (dedup keys, locks) in single-host mode."""

    __tablename__ = "claims"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    owner: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[float] = mapped_column()
