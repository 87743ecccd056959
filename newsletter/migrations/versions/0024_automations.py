"""automations: feed and digest automations, what each made, and a feed's run of failed polls

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

from subscribers.db import UTCDateTime


revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('feeds') as batch:
        batch.add_column(sa.Column('failing_since', UTCDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('consecutive_failures', sa.Integer(), server_default='0', nullable=False))
    op.create_table(
        'automations',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=10), nullable=False),
        sa.Column('feed_id', sa.Integer(), nullable=True),
        sa.Column('mode', sa.String(length=10), nullable=False),
        sa.Column('every', sa.String(length=10), nullable=False),
        sa.Column('slot_days', sa.String(length=30), nullable=False),
        sa.Column('slot_time', sa.String(length=5), nullable=False),
        sa.Column('layout', sa.String(length=10), nullable=False),
        sa.Column('list_id', sa.Integer(), nullable=True),
        sa.Column('segment_id', sa.Integer(), nullable=True),
        sa.Column('subject_template', sa.String(length=300), nullable=True),
        sa.Column('preheader_template', sa.String(length=300), nullable=True),
        sa.Column('starts_at', UTCDateTime(timezone=True), nullable=False),
        sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
        sa.Column('updated_at', UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['feed_id'], ['feeds.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['list_id'], ['lists.id'], ondelete='RESTRICT'),
        sa.ForeignKeyConstraint(['segment_id'], ['segments.id'], ondelete='RESTRICT'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('feed_id', 'kind', name='uq_automations_feed_kind'),
    )
    op.create_table(
        'automation_issues',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('automation_id', sa.Integer(), nullable=False),
        sa.Column('post_id', sa.Integer(), nullable=True),
        sa.Column('period', sa.String(length=10), nullable=True),
        sa.Column('issue_id', sa.Integer(), nullable=True),
        sa.Column('missed_slots', sa.Integer(), server_default='0', nullable=False),
        sa.Column('note', sa.Text(), nullable=True),
        sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['automation_id'], ['automations.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['post_id'], ['posts.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['issue_id'], ['issues.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('automation_id', 'post_id', name='uq_automation_issues_post'),
        sa.UniqueConstraint('automation_id', 'period', name='uq_automation_issues_period'),
    )
    op.create_index('ix_automation_issues_issue_id', 'automation_issues', ['issue_id'])


def downgrade() -> None:
    op.drop_index('ix_automation_issues_issue_id', table_name='automation_issues')
    op.drop_table('automation_issues')
    op.drop_table('automations')
    with op.batch_alter_table('feeds') as batch:
        batch.drop_column('consecutive_failures')
        batch.drop_column('failing_since')
