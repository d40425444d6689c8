"""The framework's tables: runs, dead letters, claims, the scheduler's state (SQLAlchemy Core).

Every table lives on :data:`metadata` (the built-in application's tables join it through its declarative
``Base``, :mod:`broker_jobs.app.tables`); the schema is created and changed only by the Alembic revisions in
:mod:`broker_jobs.store.migrations`.  Core tables, not ORM classes: a command that reads the store (``history``,
``jobs list``) does not pay for SQLAlchemy's ORM.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Double,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)

#: Every table of the system (the framework's here, the application's added by its models).
metadata = MetaData()

#: One message's execution, updated in place as it moves through its attempts.
job_runs = Table(
    "job_runs", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("message_id", String(64), unique=True, nullable=False),
    Column("actor", String(200), nullable=False),  # indexed by ix_job_runs_actor_finished
    Column("queue", String(200), nullable=False),
    Column("priority", String(10), nullable=False, default="medium"),
    Column("status", String(16), nullable=False),
    Column("attempt", Integer, nullable=False, default=1),
    # Orders events of one message across processes: (retries, deferrals, phase).
    Column("seq", BigInteger, nullable=False, default=0),
    Column("enqueued_at", DateTime(timezone=True)),
    Column("started_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True), index=True),
    Column("duration_ms", Double),
    Column("error", Text),
    Column("worker", String(200)),
    Column("fire_id", String(300)),
    Column("report", JSON),
    # The arguments it was sent with (redacted), shown by the run's detail.
    Column("args", JSON),
    Index("ix_job_runs_actor_finished", "actor", "finished_at"),
    # History search pages newest first by id (keyset): each filter's column leads an index ending in id.
    Index("ix_job_runs_status_id", "status", "id"),
    Index("ix_job_runs_queue_id", "queue", "id"),
    Index("ix_job_runs_actor_id", "actor", "id"),
    # Text search of errors reads only the runs that have one.
    Index("ix_job_runs_error_id", "id", sqlite_where=text("error IS NOT NULL"),
          postgresql_where=text("error IS NOT NULL")),
)

#: One failed attempt of a message (the run's row keeps only the last error): its error and traceback.
run_attempts = Table(
    "run_attempts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("message_id", String(64), nullable=False, index=True),
    Column("attempt", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("error", Text),
    Column("traceback", Text),
    Column("worker", String(200)),
    Column("started_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
)

#: A worker process's heartbeat: who it is, what it consumes, what it runs now.
worker_beats = Table(
    "worker_beats", metadata,
    Column("worker_id", String(200), primary_key=True),
    Column("host", String(200), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("version", String(50), nullable=False),
    Column("queues", JSON, nullable=False),
    Column("threads", Integer, nullable=False),
    Column("current", JSON, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("heartbeat_at", DateTime(timezone=True), nullable=False),
)

#: The archive of a dead-lettered message: why it died and how to replay it.
dead_letters = Table(
    "dead_letters", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("message_id", String(64), nullable=False, index=True),
    Column("actor", String(200), nullable=False, index=True),
    Column("queue", String(200), nullable=False, index=True),
    Column("reason", Text, nullable=False),
    Column("traceback", Text),
    Column("attempts", Integer, nullable=False, default=1),
    Column("dead_at", DateTime(timezone=True), nullable=False, index=True),
    Column("state", String(16), nullable=False, default="dead"),  # dead | replayed | purged
    Column("body", Text),
)

#: A key held by one owner until it expires (dedup keys, locks) in single-host mode.
claims = Table(
    "claims", metadata,
    Column("key", String(300), primary_key=True),
    Column("owner", String(200), nullable=False),
    Column("expires_at", Double, nullable=False),
)

#: The last slot the leader handled for one job.
job_state = Table(
    "sched_job_state", metadata,
    Column("job_id", String(200), primary_key=True),
    Column("last_slot", DateTime(timezone=True)),
    Column("last_outcome", String(32)),
    Column("last_fire_id", String(300)),
    Column("last_message_id", String(64)),
    Column("last_fired_at", DateTime(timezone=True)),
    Column("token", BigInteger, nullable=False, default=0),
)

#: What happened to one slot (or a run of missed slots, summarized).
slot_audit = Table(
    "sched_audit", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", String(200), nullable=False),
    Column("slot", DateTime(timezone=True)),
    Column("outcome", String(32), nullable=False),
    Column("fire_id", String(300)),
    Column("message_id", String(64)),
    Column("lag_ms", Float),
    Column("detail", Text),
    Column("token", BigInteger),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Index("ix_sched_audit_job", "job_id", "id"),
)

#: A message the scheduler published whose run has not been seen finished.
open_fires = Table(
    "sched_open_fires", metadata,
    Column("fire_id", String(300), primary_key=True),
    Column("job_id", String(200), nullable=False, index=True),
    Column("message_id", String(64), nullable=False),
    Column("published_at", DateTime(timezone=True), nullable=False),
)

#: An operator's pause (with a note) on one job.
job_controls = Table(
    "sched_controls", metadata,
    Column("job_id", String(200), primary_key=True),
    Column("paused", Boolean, nullable=False, default=False),
    Column("note", Text),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

#: A job added with ``jobs add``: its entry as written.
runtime_jobs = Table(
    "sched_runtime_jobs", metadata,
    Column("job_id", String(200), primary_key=True),
    Column("spec", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

#: The highest fencing token any leader has shown; lower tokens cannot write.
fences = Table(
    "sched_fence", metadata,
    Column("name", String(64), primary_key=True),
    Column("token", BigInteger, nullable=False, default=0),
)

#: The database lease (when ``REDIS_URL`` is not set).
leases = Table(
    "sched_leases", metadata,
    Column("name", String(64), primary_key=True),
    Column("owner", String(200), nullable=False),
    Column("token", BigInteger, nullable=False, default=0),
    Column("expires_at", Float, nullable=False),
)

#: A scheduler process's heartbeat.
instances = Table(
    "sched_instances", metadata,
    Column("instance_id", String(200), primary_key=True),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("heartbeat_at", DateTime(timezone=True), nullable=False),
    Column("leader", Boolean, nullable=False, default=False),
    Column("token", BigInteger),
    Column("errors", Integer, nullable=False, default=0),
    Column("last_error", Text),
)
