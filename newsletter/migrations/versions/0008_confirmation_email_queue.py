"""confirmation email queue: double opt-in emails are queued with the sign-up and sent by the
dispatchers (exactly once per row, under a lease), never inside a web request

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""
import sqlalchemy as sa
from alembic import op

import subscribers.db


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

QUEUED = sa.text("status = 'queued'")
SENDING = sa.text("status = 'sending'")


def upgrade() -> None:
    op.create_table('confirmation_emails',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('subscription_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('due_at', subscribers.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('claimed_by', sa.String(length=100), nullable=True),
    sa.Column('lease_expires_at', subscribers.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('provider_message_id', sa.String(length=200), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', subscribers.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('sent_at', subscribers.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['subscription_id'], ['subscriptions.id'],
                            name=op.f('fk_confirmation_emails_subscription_id_subscriptions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_confirmation_emails'))
    )
    with op.batch_alter_table('confirmation_emails', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_confirmation_emails_subscription_id'), ['subscription_id'], unique=False)
        batch_op.create_index('ix_confirmation_emails_queued', ['due_at', 'id'], unique=False,
                              sqlite_where=QUEUED, postgresql_where=QUEUED)
        batch_op.create_index('ix_confirmation_emails_sending', ['lease_expires_at'], unique=False,
                              sqlite_where=SENDING, postgresql_where=SENDING)


def downgrade() -> None:
    with op.batch_alter_table('confirmation_emails', schema=None) as batch_op:
        batch_op.drop_index('ix_confirmation_emails_sending')
        batch_op.drop_index('ix_confirmation_emails_queued')
        batch_op.drop_index(batch_op.f('ix_confirmation_emails_subscription_id'))
    op.drop_table('confirmation_emails')
