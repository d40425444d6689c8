"""The console: run arguments, failed attempts, worker heartbeats, and the indexes of history search.

* ``job_runs.args``: the arguments a run was sent with (redacted), for its detail page;
* ``run_attempts``: each failed attempt's error and traceback (the run's row keeps the last error only);
* ``worker_beats``: each worker process's heartbeat (host, pid, queues, threads, current jobs, version);
* history search pages newest first by id: ``(status, id)`` replaces ``(status)``, ``(queue, id)`` and
  ``(actor, id)`` serve the other filters, and a partial index on ``id`` over the runs with an error
  serves the error-text search (benchmarks/history_search.py measures a page of 50 of 1,000,000 rows).

Revision ID: 0003_console
Revises: 0002_drop_actor_index
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_console"
down_revision = "0002_drop_actor_index"
branch_labels = None
depends_on = None

_HAS_ERROR = sa.text("error IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table("job_runs") as batch:
        batch.add_column(sa.Column("args", sa.JSON(), nullable=True))
    op.drop_index("ix_job_runs_status", table_name="job_runs")
    op.create_index("ix_job_runs_status_id", "job_runs", ["status", "id"])
    op.create_index("ix_job_runs_queue_id", "job_runs", ["queue", "id"])
    op.create_index("ix_job_runs_actor_id", "job_runs", ["actor", "id"])
    op.create_index("ix_job_runs_error_id", "job_runs", ["id"], sqlite_where=_HAS_ERROR,
                    postgresql_where=_HAS_ERROR)
    op.create_table(
        "run_attempts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("traceback", sa.Text(), nullable=True),
        sa.Column("worker", sa.String(length=200), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_run_attempts_message_id"), "run_attempts", ["message_id"])
    op.create_table(
        "worker_beats",
        sa.Column("worker_id", sa.String(length=200), nullable=False),
        sa.Column("host", sa.String(length=200), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=50), nullable=False),
        sa.Column("queues", sa.JSON(), nullable=False),
        sa.Column("threads", sa.Integer(), nullable=False),
        sa.Column("current", sa.JSON(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("worker_id"),
    )


def downgrade() -> None:
    op.drop_table("worker_beats")
    op.drop_index(op.f("ix_run_attempts_message_id"), table_name="run_attempts")
    op.drop_table("run_attempts")
    op.drop_index("ix_job_runs_error_id", table_name="job_runs")
    op.drop_index("ix_job_runs_actor_id", table_name="job_runs")
    op.drop_index("ix_job_runs_queue_id", table_name="job_runs")
    op.drop_index("ix_job_runs_status_id", table_name="job_runs")
    op.create_index("ix_job_runs_status", "job_runs", ["status"])
    with op.batch_alter_table("job_runs") as batch:
        batch.drop_column("args")
