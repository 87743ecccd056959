"""the public archive: when staff published an issue in it

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

import subscribers.db


revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None

PUBLISHED = sa.text("archive_published_at IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table('issues') as batch:
        batch.add_column(sa.Column('archive_published_at', subscribers.db.UTCDateTime(timezone=True), nullable=True))
    op.create_index('ix_issues_archive', 'issues', ['enqueued_at', 'id'], sqlite_where=PUBLISHED,
                    postgresql_where=PUBLISHED)


def downgrade() -> None:
    op.drop_index('ix_issues_archive', table_name='issues')
    with op.batch_alter_table('issues') as batch:
        batch.drop_column('archive_published_at')
