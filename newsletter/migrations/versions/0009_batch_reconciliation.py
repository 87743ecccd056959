"""batch reconciliation: each request's marker (sent with it, so the provider's records of it can be
found), when it began, how a batch held as unknown was settled and when staff were told; partial
indexes over the few rows and batches held as unknown

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

import subscribers.db


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

UNKNOWN = sa.text("status = 'unknown'")


def upgrade() -> None:
    with op.batch_alter_table('send_batches', schema=None) as batch_op:
        batch_op.add_column(sa.Column('marker', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('began_at', subscribers.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('evidence', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('checked_at', subscribers.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('notified_at', subscribers.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_send_batches_unknown', ['id'], unique=False,
                              sqlite_where=UNKNOWN, postgresql_where=UNKNOWN)
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_deliveries_unknown', ['batch_id'], unique=False,
                              sqlite_where=UNKNOWN, postgresql_where=UNKNOWN)


def downgrade() -> None:
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_deliveries_unknown')
    with op.batch_alter_table('send_batches', schema=None) as batch_op:
        batch_op.drop_index('ix_send_batches_unknown')
        for column in ('notified_at', 'checked_at', 'evidence', 'began_at', 'marker'):
            batch_op.drop_column(column)
