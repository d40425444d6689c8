"""Initial schema: the framework's tables and the built-in jobs' tables, spelled out.

Releases up to 0002 built this revision from the models at run time; it now
carries its DDL, the same tables, columns and indexes (``ix_job_runs_actor``
included, which 0002 drops), so it never changes when a model does.  Each
change after it gets a revision of its own; ``tests/framework/integration/test_schema.py`` fails
when the models and the revisions differ.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('claims',
    sa.Column('key', sa.String(length=300), nullable=False),
    sa.Column('owner', sa.String(length=200), nullable=False),
    sa.Column('expires_at', sa.Double(), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('companies',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('source', sa.String(length=1000), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('last_imported_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('dead_letters',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('message_id', sa.String(length=64), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('queue', sa.String(length=200), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('traceback', sa.Text(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('dead_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('body', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_dead_letters_actor'), 'dead_letters', ['actor'], unique=False)
    op.create_index(op.f('ix_dead_letters_dead_at'), 'dead_letters', ['dead_at'], unique=False)
    op.create_index(op.f('ix_dead_letters_message_id'), 'dead_letters', ['message_id'], unique=False)
    op.create_index(op.f('ix_dead_letters_queue'), 'dead_letters', ['queue'], unique=False)
    op.create_table('documents',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('path', sa.String(length=1000), nullable=False),
    sa.Column('title', sa.String(length=500), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('front_matter', sa.JSON(), nullable=True),
    sa.Column('tags', sa.JSON(), nullable=True),
    sa.Column('links', sa.JSON(), nullable=True),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('path')
    )
    op.create_index(op.f('ix_documents_updated_at'), 'documents', ['updated_at'], unique=False)
    op.create_table('etl_watermarks',
    sa.Column('entity', sa.String(length=200), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_id', sa.String(length=200), nullable=True),
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('entity')
    )
    op.create_table('github_repositories',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('full_name', sa.String(length=300), nullable=False),
    sa.Column('owner', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('language', sa.String(length=100), nullable=True),
    sa.Column('topics', sa.JSON(), nullable=True),
    sa.Column('stars', sa.Integer(), nullable=False),
    sa.Column('html_url', sa.String(length=500), nullable=True),
    sa.Column('pushed_at', sa.String(length=40), nullable=True),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_github_repositories_full_name'), 'github_repositories', ['full_name'], unique=False)
    op.create_index(op.f('ix_github_repositories_owner'), 'github_repositories', ['owner'], unique=False)
    op.create_index(op.f('ix_github_repositories_updated_at'), 'github_repositories', ['updated_at'], unique=False)
    op.create_table('http_cache',
    sa.Column('url', sa.String(length=1000), nullable=False),
    sa.Column('etag', sa.String(length=300), nullable=True),
    sa.Column('next_url', sa.String(length=1000), nullable=True),
    sa.Column('item_ids', sa.JSON(), nullable=True),
    sa.Column('fetched_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('url')
    )
    op.create_table('job_runs',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('message_id', sa.String(length=64), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('queue', sa.String(length=200), nullable=False),
    sa.Column('priority', sa.String(length=10), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('enqueued_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('duration_ms', sa.Double(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('worker', sa.String(length=200), nullable=True),
    sa.Column('fire_id', sa.String(length=300), nullable=True),
    sa.Column('report', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('message_id')
    )
    op.create_index('ix_job_runs_actor_finished', 'job_runs', ['actor', 'finished_at'], unique=False)
    op.create_index('ix_job_runs_actor', 'job_runs', ['actor'], unique=False)
    op.create_index(op.f('ix_job_runs_finished_at'), 'job_runs', ['finished_at'], unique=False)
    op.create_index(op.f('ix_job_runs_status'), 'job_runs', ['status'], unique=False)
    op.create_table('merge_proposals',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=200), nullable=False),
    sa.Column('source_id', sa.String(length=200), nullable=False),
    sa.Column('duplicate_id', sa.String(length=200), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('kind', 'source_id', 'duplicate_id')
    )
    op.create_index(op.f('ix_merge_proposals_kind'), 'merge_proposals', ['kind'], unique=False)
    op.create_table('sched_audit',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('job_id', sa.String(length=200), nullable=False),
    sa.Column('slot', sa.DateTime(timezone=True), nullable=True),
    sa.Column('outcome', sa.String(length=32), nullable=False),
    sa.Column('fire_id', sa.String(length=300), nullable=True),
    sa.Column('message_id', sa.String(length=64), nullable=True),
    sa.Column('lag_ms', sa.Float(), nullable=True),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('token', sa.BigInteger(), nullable=True),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_sched_audit_job', 'sched_audit', ['job_id', 'id'], unique=False)
    op.create_table('sched_controls',
    sa.Column('job_id', sa.String(length=200), nullable=False),
    sa.Column('paused', sa.Boolean(), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('job_id')
    )
    op.create_table('sched_fence',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('token', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('sched_instances',
    sa.Column('instance_id', sa.String(length=200), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('leader', sa.Boolean(), nullable=False),
    sa.Column('token', sa.BigInteger(), nullable=True),
    sa.Column('errors', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('instance_id')
    )
    op.create_table('sched_job_state',
    sa.Column('job_id', sa.String(length=200), nullable=False),
    sa.Column('last_slot', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_outcome', sa.String(length=32), nullable=True),
    sa.Column('last_fire_id', sa.String(length=300), nullable=True),
    sa.Column('last_message_id', sa.String(length=64), nullable=True),
    sa.Column('last_fired_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('token', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('job_id')
    )
    op.create_table('sched_leases',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('owner', sa.String(length=200), nullable=False),
    sa.Column('token', sa.BigInteger(), nullable=False),
    sa.Column('expires_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('sched_open_fires',
    sa.Column('fire_id', sa.String(length=300), nullable=False),
    sa.Column('job_id', sa.String(length=200), nullable=False),
    sa.Column('message_id', sa.String(length=64), nullable=False),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('fire_id')
    )
    op.create_index(op.f('ix_sched_open_fires_job_id'), 'sched_open_fires', ['job_id'], unique=False)
    op.create_table('sched_runtime_jobs',
    sa.Column('job_id', sa.String(length=200), nullable=False),
    sa.Column('spec', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('job_id')
    )
    op.create_table('services',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('status_url', sa.String(length=1000), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('cursor', sa.String(length=200), nullable=True),
    sa.Column('last_status', sa.String(length=50), nullable=True),
    sa.Column('last_synced_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('spotify_albums',
    sa.Column('artists', sa.Text(), nullable=False),
    sa.Column('release_date', sa.String(length=20), nullable=True),
    sa.Column('total_tracks', sa.Integer(), nullable=True),
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=500), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_spotify_albums_updated_at'), 'spotify_albums', ['updated_at'], unique=False)
    op.create_table('spotify_artists',
    sa.Column('genres', sa.JSON(), nullable=True),
    sa.Column('popularity', sa.Integer(), nullable=True),
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=500), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_spotify_artists_updated_at'), 'spotify_artists', ['updated_at'], unique=False)
    op.create_table('spotify_playlists',
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('owner', sa.String(length=200), nullable=True),
    sa.Column('tracks_total', sa.Integer(), nullable=True),
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=500), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_spotify_playlists_updated_at'), 'spotify_playlists', ['updated_at'], unique=False)
    op.create_table('spotify_tracks',
    sa.Column('artists', sa.Text(), nullable=False),
    sa.Column('album', sa.String(length=500), nullable=True),
    sa.Column('duration_ms', sa.Integer(), nullable=True),
    sa.Column('popularity', sa.Integer(), nullable=True),
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=500), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_spotify_tracks_updated_at'), 'spotify_tracks', ['updated_at'], unique=False)
    op.create_table('company_records',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('company_id', sa.Integer(), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['company_id'], ['companies.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('company_id', 'content_hash')
    )
    op.create_index(op.f('ix_company_records_company_id'), 'company_records', ['company_id'], unique=False)
    op.create_index(op.f('ix_company_records_updated_at'), 'company_records', ['updated_at'], unique=False)
    op.create_table('document_links',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('source_id', sa.Integer(), nullable=False),
    sa.Column('target', sa.String(length=500), nullable=False),
    sa.Column('target_id', sa.Integer(), nullable=True),
    sa.Column('broken', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['source_id'], ['documents.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('source_id', 'target')
    )
    op.create_index(op.f('ix_document_links_broken'), 'document_links', ['broken'], unique=False)
    op.create_index(op.f('ix_document_links_source_id'), 'document_links', ['source_id'], unique=False)
    op.create_table('service_logs',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('service_id', sa.Integer(), nullable=False),
    sa.Column('external_id', sa.String(length=200), nullable=False),
    sa.Column('level', sa.String(length=20), nullable=True),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('logged_at', sa.String(length=40), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['service_id'], ['services.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('service_id', 'external_id')
    )
    op.create_index(op.f('ix_service_logs_service_id'), 'service_logs', ['service_id'], unique=False)
    op.create_index(op.f('ix_service_logs_updated_at'), 'service_logs', ['updated_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_service_logs_updated_at'), table_name='service_logs')
    op.drop_index(op.f('ix_service_logs_service_id'), table_name='service_logs')
    op.drop_table('service_logs')
    op.drop_index(op.f('ix_document_links_source_id'), table_name='document_links')
    op.drop_index(op.f('ix_document_links_broken'), table_name='document_links')
    op.drop_table('document_links')
    op.drop_index(op.f('ix_company_records_updated_at'), table_name='company_records')
    op.drop_index(op.f('ix_company_records_company_id'), table_name='company_records')
    op.drop_table('company_records')
    op.drop_index(op.f('ix_spotify_tracks_updated_at'), table_name='spotify_tracks')
    op.drop_table('spotify_tracks')
    op.drop_index(op.f('ix_spotify_playlists_updated_at'), table_name='spotify_playlists')
    op.drop_table('spotify_playlists')
    op.drop_index(op.f('ix_spotify_artists_updated_at'), table_name='spotify_artists')
    op.drop_table('spotify_artists')
    op.drop_index(op.f('ix_spotify_albums_updated_at'), table_name='spotify_albums')
    op.drop_table('spotify_albums')
    op.drop_table('services')
    op.drop_table('sched_runtime_jobs')
    op.drop_index(op.f('ix_sched_open_fires_job_id'), table_name='sched_open_fires')
    op.drop_table('sched_open_fires')
    op.drop_table('sched_leases')
    op.drop_table('sched_job_state')
    op.drop_table('sched_instances')
    op.drop_table('sched_fence')
    op.drop_table('sched_controls')
    op.drop_index('ix_sched_audit_job', table_name='sched_audit')
    op.drop_table('sched_audit')
    op.drop_index(op.f('ix_merge_proposals_kind'), table_name='merge_proposals')
    op.drop_table('merge_proposals')
    op.drop_index(op.f('ix_job_runs_status'), table_name='job_runs')
    op.drop_index(op.f('ix_job_runs_finished_at'), table_name='job_runs')
    op.drop_index('ix_job_runs_actor_finished', table_name='job_runs')
    op.drop_index('ix_job_runs_actor', table_name='job_runs', if_exists=True)
    op.drop_table('job_runs')
    op.drop_table('http_cache')
    op.drop_index(op.f('ix_github_repositories_updated_at'), table_name='github_repositories')
    op.drop_index(op.f('ix_github_repositories_owner'), table_name='github_repositories')
    op.drop_index(op.f('ix_github_repositories_full_name'), table_name='github_repositories')
    op.drop_table('github_repositories')
    op.drop_table('etl_watermarks')
    op.drop_index(op.f('ix_documents_updated_at'), table_name='documents')
    op.drop_table('documents')
    op.drop_index(op.f('ix_dead_letters_queue'), table_name='dead_letters')
    op.drop_index(op.f('ix_dead_letters_message_id'), table_name='dead_letters')
    op.drop_index(op.f('ix_dead_letters_dead_at'), table_name='dead_letters')
    op.drop_index(op.f('ix_dead_letters_actor'), table_name='dead_letters')
    op.drop_table('dead_letters')
    op.drop_table('companies')
    op.drop_table('claims')
