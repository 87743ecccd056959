"""issue figures: each recent issue's report figures as last computed, for pages that list issues

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import subscribers.db


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'issue_figures',
        sa.Column('issue_id', sa.Integer(), nullable=False),
        sa.Column('computed_at', subscribers.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('figures', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
        sa.ForeignKeyConstraint(['issue_id'], ['issues.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('issue_id'),
    )


def downgrade() -> None:
    op.drop_table('issue_figures')
