"""deliveries: no foreign key on contact_id (PostgreSQL checked it row by row on every enqueue, a
locking lookup of the contact for each row; erasure clears the column itself, newsletter.erasure)

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-07
"""
from alembic import op

revision = '0029'
down_revision = '0028'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('deliveries') as batch:
        batch.drop_constraint('fk_deliveries_contact_id_contacts', type_='foreignkey')


def downgrade() -> None:
    # A row whose contact is gone would break the constraint: erasure cleared such rows' contact_id,
    # so any left point at nothing and are cleared the same way first.
    op.execute("UPDATE deliveries SET contact_id = NULL WHERE contact_id IS NOT NULL "
               "AND NOT EXISTS (SELECT 1 FROM contacts WHERE contacts.id = deliveries.contact_id)")
    with op.batch_alter_table('deliveries') as batch:
        batch.create_foreign_key('fk_deliveries_contact_id_contacts', 'contacts', ['contact_id'], ['id'],
                                 ondelete='SET NULL')
