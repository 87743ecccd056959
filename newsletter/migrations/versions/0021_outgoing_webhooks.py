"""outgoing webhooks: CRM endpoints, events captured once, deliveries, capture cursors

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import subscribers.db


revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    op.create_table(
        'webhook_endpoints',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('url', sa.String(length=2000), nullable=False),
        sa.Column('event_types', _JSON, nullable=False),
        sa.Column('sealed_secret', sa.Text(), nullable=False),
        sa.Column('state', sa.String(length=10), nullable=False),
        sa.Column('disabled_reason', sa.Text(), nullable=True),
        sa.Column('disabled_at', subscribers.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('failing_since', subscribers.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('last_success_at', subscribers.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('last_failure_at', subscribers.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('created_at', subscribers.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('enabled_at', subscribers.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_endpoints')),
    )
    op.create_table(
        'webhook_events',
        sa.Column('id', _ID, autoincrement=True, nullable=False),
        sa.Column('event_id', sa.String(length=40), nullable=False),
        sa.Column('type', sa.String(length=40), nullable=False),
        sa.Column('source', sa.String(length=30), nullable=False),
        sa.Column('source_id', sa.BigInteger(), nullable=True),
        sa.Column('occurred_at', subscribers.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('data', _JSON, nullable=False),
        sa.Column('created_at', subscribers.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_events')),
        sa.UniqueConstraint('event_id', name=op.f('uq_webhook_events_event_id')),
        sa.UniqueConstraint('source', 'source_id', name='uq_webhook_events_source_row'),
    )
    op.create_table(
        'webhook_deliveries',
        sa.Column('id', _ID, autoincrement=True, nullable=False),
        sa.Column('event_id', _ID, nullable=False),
        sa.Column('endpoint_id', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=10), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', subscribers.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('give_up_at', subscribers.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('claimed_by', sa.String(length=100), nullable=True),
        sa.Column('lease_expires_at', subscribers.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('last_status_code', sa.Integer(), nullable=True),
        sa.Column('last_error', sa.String(length=500), nullable=True),
        sa.Column('last_attempt_at', subscribers.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('delivered_at', subscribers.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('created_at', subscribers.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['endpoint_id'], ['webhook_endpoints.id'], ondelete='CASCADE',
                                name=op.f('fk_webhook_deliveries_endpoint_id_webhook_endpoints')),
        sa.ForeignKeyConstraint(['event_id'], ['webhook_events.id'], ondelete='CASCADE',
                                name=op.f('fk_webhook_deliveries_event_id_webhook_events')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_deliveries')),
        sa.UniqueConstraint('event_id', 'endpoint_id', name='uq_webhook_deliveries_event_endpoint'),
    )
    op.create_index('ix_webhook_deliveries_due', 'webhook_deliveries', ['status', 'next_attempt_at'])
    op.create_index('ix_webhook_deliveries_endpoint', 'webhook_deliveries', ['endpoint_id', 'id'])
    op.create_table(
        'webhook_cursors',
        sa.Column('source', sa.String(length=30), nullable=False),
        sa.Column('last_id', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('source', name=op.f('pk_webhook_cursors')),
    )


def downgrade() -> None:
    op.drop_table('webhook_cursors')
    op.drop_index('ix_webhook_deliveries_endpoint', table_name='webhook_deliveries')
    op.drop_index('ix_webhook_deliveries_due', table_name='webhook_deliveries')
    op.drop_table('webhook_deliveries')
    op.drop_table('webhook_events')
    op.drop_table('webhook_endpoints')
