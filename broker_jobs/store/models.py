"""SQLAlchemy models of the framework's durable state: runs, dead letters, claims, the scheduler's state.

Every table lives on :class:`Base`; the schema is created and changed only by the
Alembic revisions in :mod:`broker_jobs.store.migrations`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, Index, Integer, String, Text
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


class ArchivedLetter(Base):
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


class JobState(Base):
    """The last slot the leader handled for one job."""

    __tablename__ = "sched_job_state"
    job_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    last_slot: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_outcome: Mapped[str | None] = mapped_column(String(32))
    last_fire_id: Mapped[str | None] = mapped_column(String(300))
    last_message_id: Mapped[str | None] = mapped_column(String(64))
    last_fired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    token: Mapped[int] = mapped_column(BigInteger, default=0)


class SlotAudit(Base):
    """What happened to one slot (or a run of missed slots, summarized)."""

    __tablename__ = "sched_audit"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(200))
    slot: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str] = mapped_column(String(32))
    fire_id: Mapped[str | None] = mapped_column(String(300))
    message_id: Mapped[str | None] = mapped_column(String(64))
    lag_ms: Mapped[float | None] = mapped_column(Float)
    detail: Mapped[str | None] = mapped_column(Text)
    token: Mapped[int | None] = mapped_column(BigInteger)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    __table_args__ = (Index("ix_sched_audit_job", "job_id", "id"),)


class OpenFire(Base):
    """A message the scheduler published whose run has not been seen finished."""

    __tablename__ = "sched_open_fires"
    fire_id: Mapped[str] = mapped_column(String(300), primary_key=True)
    job_id: Mapped[str] = mapped_column(String(200), index=True)
    message_id: Mapped[str] = mapped_column(String(64))
    published_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class JobControl(Base):
    """An operator's pause (with a note) on one job."""

    __tablename__ = "sched_controls"
    job_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    note: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RuntimeJob(Base):
    """A job added with ``jobs add``: its entry as written."""

    __tablename__ = "sched_runtime_jobs"
    job_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Fence(Base):
    """The highest fencing token any leader has shown; lower tokens cannot write."""

    __tablename__ = "sched_fence"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    token: Mapped[int] = mapped_column(BigInteger, default=0)


class LeaseRow(Base):
    """The database lease (when ``REDIS_URL`` is not set)."""

    __tablename__ = "sched_leases"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(String(200))
    token: Mapped[int] = mapped_column(BigInteger, default=0)
    expires_at: Mapped[float] = mapped_column(Float)


class Instance(Base):
    """A scheduler process's heartbeat."""

    __tablename__ = "sched_instances"
    instance_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    leader: Mapped[bool] = mapped_column(Boolean, default=False)
    token: Mapped[int | None] = mapped_column(BigInteger)
    errors: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
