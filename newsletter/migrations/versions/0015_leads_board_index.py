"""leads index for the staff leads board

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06

The board shows each stage's newest enquiries first and pages on with a keyset (requested_at, id):
with (stage, requested_at, id) a column is a short walk down the index, never a sort of the stage.
"""
from alembic import op


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_leads_stage_requested', 'leads', ['stage', 'requested_at', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_leads_stage_requested', table_name='leads')
