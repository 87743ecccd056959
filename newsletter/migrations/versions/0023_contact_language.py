"""contact language: the language a contact reads (None: the newsletter's own)

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op


revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('contacts', sa.Column('language', sa.String(length=8), nullable=True))


def downgrade() -> None:
    # Not batch mode: on SQLite it would rebuild ``contacts`` and lose its expression indexes (0014),
    # which it cannot reflect. Both databases drop a column in place (SQLite from 3.35).
    op.execute("ALTER TABLE contacts DROP COLUMN language")
