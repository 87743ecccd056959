"""delivery ledger and scheduling

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""
from alembic import op
import sqlalchemy as sa
import subscribers.db


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('leases',
    sa.Column('name', sa.String(length=50), nullable=False),
    sa.Column('holder', sa.String(length=100), nullable=False),
    sa.Column('expires_at', subscribers.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_leases'))
    )
    op.create_table('send_batches',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('transport', sa.String(length=20), nullable=False),
    sa.Column('worker', sa.String(length=100), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('provider_message_id', sa.String(length=200), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', subscribers.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', subscribers.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_send_batches'))
    )
    op.create_table('deliveries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('issue_id', sa.Integer(), nullable=True),
    sa.Column('contact_id', sa.Integer(), nullable=True),
    sa.Column('list_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('due_at', subscribers.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('batch_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('claimed_by', sa.String(length=100), nullable=True),
    sa.Column('lease_expires_at', subscribers.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('provider_message_id', sa.String(length=200), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', subscribers.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('submitted_at', subscribers.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['batch_id'], ['send_batches.id'], name=op.f('fk_deliveries_batch_id_send_batches'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_deliveries_contact_id_contacts'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['issue_id'], ['issues.id'], name=op.f('fk_deliveries_issue_id_issues'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['list_id'], ['lists.id'], name=op.f('fk_deliveries_list_id_lists'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deliveries')),
    sa.UniqueConstraint('issue_id', 'contact_id', name='uq_deliveries_issue_contact')
    )
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_deliveries_batch', ['batch_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_deliveries_contact_id'), ['contact_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_deliveries_issue_id'), ['issue_id'], unique=False)
        batch_op.create_index('ix_deliveries_status_due', ['status', 'due_at'], unique=False)
        batch_op.create_index('ix_deliveries_submitted_at', ['submitted_at'], unique=False)

    op.create_table('send_pauses',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('issue_id', sa.Integer(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', subscribers.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['issue_id'], ['issues.id'], name=op.f('fk_send_pauses_issue_id_issues'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_send_pauses'))
    )
    with op.batch_alter_table('issues', schema=None) as batch_op:
        batch_op.add_column(sa.Column('list_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('segment_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('scheduled_at', subscribers.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('local_send_time', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('schedule_timezone', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('enqueued_at', subscribers.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('finished_at', subscribers.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('paused_reason', sa.Text(), nullable=True))
        batch_op.create_index(batch_op.f('ix_issues_status'), ['status'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_issues_list_id_lists'), 'lists', ['list_id'], ['id'], ondelete='RESTRICT')
        batch_op.create_foreign_key(batch_op.f('fk_issues_segment_id_segments'), 'segments', ['segment_id'], ['id'], ondelete='RESTRICT')



def downgrade() -> None:
    with op.batch_alter_table('issues', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_issues_segment_id_segments'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_issues_list_id_lists'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_issues_status'))
        batch_op.drop_column('paused_reason')
        batch_op.drop_column('finished_at')
        batch_op.drop_column('enqueued_at')
        batch_op.drop_column('schedule_timezone')
        batch_op.drop_column('local_send_time')
        batch_op.drop_column('scheduled_at')
        batch_op.drop_column('segment_id')
        batch_op.drop_column('list_id')

    op.drop_table('send_pauses')
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_deliveries_submitted_at')
        batch_op.drop_index('ix_deliveries_status_due')
        batch_op.drop_index(batch_op.f('ix_deliveries_issue_id'))
        batch_op.drop_index(batch_op.f('ix_deliveries_contact_id'))
        batch_op.drop_index('ix_deliveries_batch')

    op.drop_table('deliveries')
    op.drop_table('send_batches')
    op.drop_table('leases')
