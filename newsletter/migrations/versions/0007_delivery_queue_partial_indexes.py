"""delivery queue: partial indexes for the rows still to claim and the rows claimed now; indexes
of nullable columns only where set; no foreign key on batch_id (checked row by row in each claim)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""
import sqlalchemy as sa
from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

QUEUED = sa.text("status = 'queued'")
CLAIMED = sa.text("status = 'claimed'")
WHERE_SET = {column: sa.text(f"{column} IS NOT NULL") for column in ("batch_id", "submitted_at", "step_id")}


def upgrade() -> None:
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_deliveries_status_due')
        batch_op.drop_index(batch_op.f('ix_deliveries_issue_id'))  # uq_deliveries_issue_contact starts with it
        batch_op.create_index('ix_deliveries_queued_issue', ['issue_id', 'due_at', 'id'], unique=False,
                              sqlite_where=QUEUED, postgresql_where=QUEUED)
        batch_op.create_index('ix_deliveries_queued_step', ['step_id', 'due_at', 'id'], unique=False,
                              sqlite_where=QUEUED, postgresql_where=QUEUED)
        batch_op.create_index('ix_deliveries_claimed', ['issue_id', 'lease_expires_at'], unique=False,
                              sqlite_where=CLAIMED, postgresql_where=CLAIMED)
        batch_op.drop_constraint(batch_op.f('fk_deliveries_batch_id_send_batches'), type_='foreignkey')
        batch_op.drop_index('ix_deliveries_batch')
        batch_op.drop_index('ix_deliveries_submitted_at')
        batch_op.drop_index(batch_op.f('ix_deliveries_step_id'))
        for name, column in (('ix_deliveries_batch', 'batch_id'), ('ix_deliveries_submitted_at', 'submitted_at'),
                             ('ix_deliveries_step_id', 'step_id')):
            batch_op.create_index(name, [column], unique=False,
                                  sqlite_where=WHERE_SET[column], postgresql_where=WHERE_SET[column])


def downgrade() -> None:
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        for name in ('ix_deliveries_step_id', 'ix_deliveries_submitted_at', 'ix_deliveries_batch'):
            batch_op.drop_index(name)
        batch_op.create_index(batch_op.f('ix_deliveries_step_id'), ['step_id'], unique=False)
        batch_op.create_index('ix_deliveries_submitted_at', ['submitted_at'], unique=False)
        batch_op.create_index('ix_deliveries_batch', ['batch_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_deliveries_batch_id_send_batches'), 'send_batches', ['batch_id'],
                                    ['id'], ondelete='SET NULL')
        batch_op.drop_index('ix_deliveries_claimed')
        batch_op.drop_index('ix_deliveries_queued_step')
        batch_op.drop_index('ix_deliveries_queued_issue')
        batch_op.create_index(batch_op.f('ix_deliveries_issue_id'), ['issue_id'], unique=False)
        batch_op.create_index('ix_deliveries_status_due', ['status', 'due_at'], unique=False)
