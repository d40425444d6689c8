"""Drop ``ix_job_runs_actor``: the ``(actor, finished_at)`` index serves every query by actor.

Every history row updated each index of ``job_runs``; this one only duplicated the
leading column of ``ix_job_runs_actor_finished`` (benchmarks/README.md, "Where the
time goes").  Databases created after this change never had it, hence ``IF EXISTS``.

Revision ID: 0002_drop_actor_index
Revises: 0001_initial
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0002_drop_actor_index"
down_revision = "0001_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_job_runs_actor")


def downgrade() -> None:
    op.create_index("ix_job_runs_actor", "job_runs", ["actor"])
