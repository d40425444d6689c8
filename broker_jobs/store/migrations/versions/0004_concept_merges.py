"""``concept_merges``: the merges concept hygiene applied, with the duplicate's vector, so each can be undone.

Revision ID: 0004_concept_merges
Revises: 0003_console
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_concept_merges"
down_revision = "0003_console"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "concept_merges",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("proposal_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=200), nullable=False),
        sa.Column("source_id", sa.String(length=200), nullable=False),
        sa.Column("duplicate_id", sa.String(length=200), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("point_id", sa.String(length=64), nullable=False),
        sa.Column("vector", sa.JSON(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("merged_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("undone_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_concept_merges_proposal_id"), "concept_merges", ["proposal_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_concept_merges_proposal_id"), table_name="concept_merges")
    op.drop_table("concept_merges")
