"""step figures: each sequence step's report figures as last computed, for the sequence pages

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import subscribers.db


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'step_figures',
        sa.Column('step_id', sa.Integer(), nullable=False),
        sa.Column('computed_at', subscribers.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('figures', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
        sa.ForeignKeyConstraint(['step_id'], ['sequence_steps.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('step_id'),
    )


def downgrade() -> None:
    op.drop_table('step_figures')
