"""api tokens: bearer tokens of the REST API (/api/v1), stored as SHA-256 hashes

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

import subscribers.db


revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'api_tokens',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('hint', sa.String(length=16), nullable=False),
        sa.Column('scopes', sa.String(length=300), nullable=False),
        sa.Column('created_by', sa.String(length=320), nullable=False),
        sa.Column('created_at', subscribers.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('last_used_at', subscribers.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('revoked_at', subscribers.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
        sa.UniqueConstraint('token_hash', name=op.f('uq_api_tokens_token_hash')),
    )


def downgrade() -> None:
    op.drop_table('api_tokens')
