"""deliveries: the (enrollment, step) unique index only over a sequence step's rows (an issue's rows
have no enrolment; PostgreSQL wrote an entry of NULLs for each of their row versions); no foreign
keys on issue_id and list_id (checked row by row on every enqueue; issues and lists are never deleted)

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = '0026'
down_revision = '0025'
branch_labels = None
depends_on = None

HAS_ENROLLMENT = sa.text("enrollment_id IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table('deliveries') as batch:
        batch.drop_constraint('uq_deliveries_enrollment_step', type_='unique')
        batch.drop_constraint('fk_deliveries_issue_id_issues', type_='foreignkey')
        batch.drop_constraint('fk_deliveries_list_id_lists', type_='foreignkey')
    op.create_index('uq_deliveries_enrollment_step', 'deliveries', ['enrollment_id', 'step_id'], unique=True,
                    sqlite_where=HAS_ENROLLMENT, postgresql_where=HAS_ENROLLMENT)


def downgrade() -> None:
    op.drop_index('uq_deliveries_enrollment_step', table_name='deliveries')
    with op.batch_alter_table('deliveries') as batch:
        batch.create_unique_constraint('uq_deliveries_enrollment_step', ['enrollment_id', 'step_id'])
        batch.create_foreign_key('fk_deliveries_issue_id_issues', 'issues', ['issue_id'], ['id'], ondelete='CASCADE')
        batch.create_foreign_key('fk_deliveries_list_id_lists', 'lists', ['list_id'], ['id'], ondelete='SET NULL')
