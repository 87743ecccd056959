"""events index for engagement by week (the staff home page)

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30

Human opens and clicks per week are ranges of (type, machine, occurred_at) with the delivery read
from the index itself: bench/dashboard.py measured the 12-week figure at 280 ms on SQLite without it
(every event in the range looked up for its machine flag and delivery), 60 ms with it.
"""
from alembic import op


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_events_kind_time', 'events', ['type', 'machine', 'occurred_at', 'delivery_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_events_kind_time', table_name='events')
