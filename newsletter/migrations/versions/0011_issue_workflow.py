"""issue workflow for the staff app: an intro note, approval (who and when), and the queue of test
emails (a test copy for staff addresses, never in the delivery ledger)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

import subscribers.db


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

QUEUED = sa.text("status = 'queued'")


def upgrade() -> None:
    with op.batch_alter_table('issues', schema=None) as batch_op:
        batch_op.add_column(sa.Column('intro', sa.Text(), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('approved_by', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('approved_at', subscribers.db.UTCDateTime(timezone=True), nullable=True))
    op.create_table(
        'test_emails',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('issue_id', sa.Integer(), nullable=False),
        sa.Column('to_email', sa.String(length=320), nullable=False),
        sa.Column('requested_by', sa.String(length=100), nullable=False),
        sa.Column('status', sa.String(length=12), nullable=False),
        sa.Column('due_at', subscribers.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('claimed_by', sa.String(length=100), nullable=True),
        sa.Column('lease_expires_at', subscribers.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('provider_message_id', sa.String(length=200), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('created_at', subscribers.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('sent_at', subscribers.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['issue_id'], ['issues.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('test_emails', schema=None) as batch_op:
        batch_op.create_index('ix_test_emails_issue_id', ['issue_id'], unique=False)
        batch_op.create_index('ix_test_emails_queued', ['due_at', 'id'], unique=False,
                              sqlite_where=QUEUED, postgresql_where=QUEUED)


def downgrade() -> None:
    op.drop_table('test_emails')
    with op.batch_alter_table('issues', schema=None) as batch_op:
        for column in ('approved_at', 'approved_by', 'intro'):
            batch_op.drop_column(column)
