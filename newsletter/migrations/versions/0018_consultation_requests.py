"""consultation requests: how a lead's consent to be contacted was given on the form (form, wording,
IP and agent when kept), how they heard of us, and the queue of emails about a request
(acknowledgement to the lead, notification to the intake address)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07
"""
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op
from sqlalchemy.exc import SAWarning

import subscribers.db


revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None

QUEUED = sa.text("status = 'queued'")
LEAD_COLUMNS = ('contact_consent_form_id', 'contact_consent_text_hash', 'contact_consent_text_version',
                'contact_consent_ip', 'contact_consent_agent', 'heard_from')


@contextmanager
def _quiet_reflection() -> Iterator[None]:
    """SQLite rebuilds ``leads`` to add its foreign key, reflecting the tables it refers to; the
    expression indexes of ``contacts`` (0014) cannot be reflected and SQLAlchemy says so on stderr of
    every command that creates a database. ``contacts`` is not rebuilt, so its indexes stay."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based index", SAWarning)
        yield


def upgrade() -> None:
    with _quiet_reflection(), op.batch_alter_table('leads', schema=None) as batch_op:
        batch_op.add_column(sa.Column('contact_consent_form_id', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('contact_consent_text_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('contact_consent_text_version', sa.String(length=50), nullable=True))
        batch_op.add_column(sa.Column('contact_consent_ip', sa.String(length=45), nullable=True))
        batch_op.add_column(sa.Column('contact_consent_agent', sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column('heard_from', sa.String(length=30), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_leads_contact_consent_text_hash_consent_texts'),
                                    'consent_texts', ['contact_consent_text_hash'], ['hash'])
    op.create_table('consultation_emails',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('lead_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('due_at', subscribers.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('claimed_by', sa.String(length=100), nullable=True),
    sa.Column('lease_expires_at', subscribers.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('provider_message_id', sa.String(length=200), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', subscribers.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('sent_at', subscribers.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], name=op.f('fk_consultation_emails_lead_id_leads'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consultation_emails'))
    )
    with op.batch_alter_table('consultation_emails', schema=None) as batch_op:
        batch_op.create_index('ix_consultation_emails_queued', ['due_at', 'id'], unique=False,
                              sqlite_where=QUEUED, postgresql_where=QUEUED)
        batch_op.create_index('ix_consultation_emails_lead', ['lead_id', 'kind', 'created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('consultation_emails', schema=None) as batch_op:
        batch_op.drop_index('ix_consultation_emails_lead')
        batch_op.drop_index('ix_consultation_emails_queued')
    op.drop_table('consultation_emails')
    with _quiet_reflection(), op.batch_alter_table('leads', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_leads_contact_consent_text_hash_consent_texts'), type_='foreignkey')
        for column in reversed(LEAD_COLUMNS):
            batch_op.drop_column(column)
