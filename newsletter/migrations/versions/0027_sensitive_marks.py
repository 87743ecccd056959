"""sensitive marks: custom fields, tags and segments staff marked as revealing health information

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

import subscribers.db

revision = '0027'
down_revision = '0026'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'sensitive_marks',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=10), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=True),
        sa.Column('segment_id', sa.Integer(), nullable=True),
        sa.Column('marked_by', sa.String(length=320), nullable=False),
        sa.Column('marked_at', subscribers.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['segment_id'], ['segments.id'], name=op.f('fk_sensitive_marks_segment_id_segments'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_sensitive_marks')),
        sa.UniqueConstraint('kind', 'name', name='uq_sensitive_marks_kind_name'),
        sa.UniqueConstraint('segment_id', name='uq_sensitive_marks_segment'),
    )


def downgrade() -> None:
    op.drop_table('sensitive_marks')
