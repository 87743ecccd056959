"""contact search: indexes on the lower-cased address and name, for prefix search on staff pages

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # PostgreSQL: text_pattern_ops, so that LIKE 'prefix%' uses the index whatever the collation.
    ops = " text_pattern_ops" if op.get_bind().dialect.name == "postgresql" else ""
    op.execute(f"CREATE INDEX ix_contacts_email_lower ON contacts (lower(email){ops})")
    op.execute(f"CREATE INDEX ix_contacts_name_lower ON contacts (lower(name){ops})")


def downgrade() -> None:
    op.execute("DROP INDEX ix_contacts_name_lower")
    op.execute("DROP INDEX ix_contacts_email_lower")
