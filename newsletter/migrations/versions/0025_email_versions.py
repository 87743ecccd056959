"""email versions: an issue's or a sequence step's email in another language; posts' language and
the post they translate; the language a batch (and a test email) carried; which version a tracked
link belongs to

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

import subscribers.db

revision = '0025'
down_revision = '0024'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'email_versions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('issue_id', sa.Integer(), nullable=True),
        sa.Column('step_id', sa.Integer(), nullable=True),
        sa.Column('language', sa.String(length=8), nullable=False),
        sa.Column('post_id', sa.Integer(), nullable=True),
        sa.Column('subject', sa.String(length=300), nullable=False),
        sa.Column('preheader', sa.String(length=300), nullable=False),
        sa.Column('html', sa.Text(), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('compiled_at', subscribers.db.UTCDateTime(), nullable=False),
        sa.Column('created_at', subscribers.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['issue_id'], ['issues.id'], name=op.f('fk_email_versions_issue_id_issues'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['step_id'], ['sequence_steps.id'],
                                name=op.f('fk_email_versions_step_id_sequence_steps'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['post_id'], ['posts.id'], name=op.f('fk_email_versions_post_id_posts'),
                                ondelete='RESTRICT'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_email_versions')),
        sa.UniqueConstraint('issue_id', 'language', name='uq_email_versions_issue_language'),
        sa.UniqueConstraint('step_id', 'language', name='uq_email_versions_step_language'),
    )
    op.create_index('ix_email_versions_post_id', 'email_versions', ['post_id'])
    # Not batch mode: on SQLite it would rebuild ``posts``, which issues reference. The link to the
    # original is a plain column (posts are never deleted while an issue uses them; see the model).
    op.add_column('posts', sa.Column('language', sa.String(length=8), nullable=True))
    op.add_column('posts', sa.Column('translation_of_id', sa.Integer(), nullable=True))
    op.create_index('ix_posts_translation_of_id', 'posts', ['translation_of_id'])
    op.add_column('send_batches', sa.Column('language', sa.String(length=8), nullable=True))
    op.add_column('test_emails', sa.Column('language', sa.String(length=8), nullable=True))
    # A version's links keep their email's issue_id or step_id (clicks count for it) and are numbered
    # after its other links, so the unique positions stand. A plain column: a foreign key would rebuild
    # ``links`` on SQLite, whose drop would set every event's link_id to NULL.
    op.add_column('links', sa.Column('version_id', sa.Integer(), nullable=True))
    op.create_index('ix_links_version_id', 'links', ['version_id'])


def downgrade() -> None:
    op.execute("DELETE FROM links WHERE version_id IS NOT NULL")  # they go with the versions
    op.drop_index('ix_links_version_id', table_name='links')
    op.execute("ALTER TABLE links DROP COLUMN version_id")
    op.drop_column('test_emails', 'language')
    op.drop_column('send_batches', 'language')
    op.drop_index('ix_posts_translation_of_id', table_name='posts')
    op.execute("ALTER TABLE posts DROP COLUMN translation_of_id")  # in place on both (SQLite from 3.35)
    op.execute("ALTER TABLE posts DROP COLUMN language")
    op.drop_index('ix_email_versions_post_id', table_name='email_versions')
    op.drop_table('email_versions')
