"""issue layouts: full, teaser or digest; a hero image; a digest's posts in order

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op


revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('issues') as batch:
        batch.add_column(sa.Column('layout', sa.String(length=10), server_default='full', nullable=False))
        batch.add_column(sa.Column('hero', sa.String(length=2000), nullable=True))
        batch.add_column(sa.Column('hero_alt', sa.String(length=300), nullable=True))
    op.create_table(
        'issue_posts',
        sa.Column('issue_id', sa.Integer(), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.Column('post_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['issue_id'], ['issues.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['post_id'], ['posts.id'], ondelete='RESTRICT'),
        sa.PrimaryKeyConstraint('issue_id', 'position'),
        sa.UniqueConstraint('issue_id', 'post_id', name='uq_issue_posts_post'),
    )
    op.create_index('ix_issue_posts_post_id', 'issue_posts', ['post_id'])


def downgrade() -> None:
    op.drop_index('ix_issue_posts_post_id', table_name='issue_posts')
    op.drop_table('issue_posts')
    with op.batch_alter_table('issues') as batch:
        batch.drop_column('hero_alt')
        batch.drop_column('hero')
        batch.drop_column('layout')
