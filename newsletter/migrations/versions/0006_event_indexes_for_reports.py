"""event indexes for reports

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""
from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_events_contact_type_time'))
        batch_op.drop_index(batch_op.f('ix_events_issue_id'))
        batch_op.drop_index(batch_op.f('ix_events_step_id'))
        batch_op.create_index('ix_events_contact_kind_time', ['contact_id', 'type', 'machine', 'occurred_at'], unique=False)
        batch_op.create_index('ix_events_issue_kind', ['issue_id', 'type', 'machine', 'delivery_id'], unique=False)
        batch_op.create_index('ix_events_step_kind', ['step_id', 'type', 'machine', 'delivery_id'], unique=False)
        batch_op.create_index('ix_events_type_time', ['type', 'occurred_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_type_time')
        batch_op.drop_index('ix_events_step_kind')
        batch_op.drop_index('ix_events_issue_kind')
        batch_op.drop_index('ix_events_contact_kind_time')
        batch_op.create_index(batch_op.f('ix_events_step_id'), ['step_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_events_issue_id'), ['issue_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_events_contact_type_time'), ['contact_id', 'type', 'occurred_at'], unique=False)

