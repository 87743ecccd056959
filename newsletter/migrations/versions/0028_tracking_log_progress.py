"""tracking log progress: how far each web process's click/open log has been drained into events

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

import subscribers.db

revision = '0028'
down_revision = '0027'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'tracking_log_progress',
        sa.Column('log', sa.String(length=100), nullable=False),
        sa.Column('offset', sa.BigInteger(), nullable=False),
        sa.Column('updated_at', subscribers.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('log', name=op.f('pk_tracking_log_progress')),
    )


def downgrade() -> None:
    op.drop_table('tracking_log_progress')
