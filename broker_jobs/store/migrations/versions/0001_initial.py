"""Initial schema: every table the package declares.

Creating from the metadata (rather than spelling out each table) keeps this
first revision exact for every component's tables; each change after it gets
a revision of its own with explicit operations.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    from broker_jobs.store.migrations import import_models
    from broker_jobs.store.models import Base

    import_models()
    Base.metadata.create_all(op.get_bind())


def downgrade() -> None:
    from broker_jobs.store.models import Base

    Base.metadata.drop_all(op.get_bind())
