"""tracking links attribution

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""
from alembic import op
import sqlalchemy as sa
import subscribers.db


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('links',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('issue_id', sa.Integer(), nullable=True),
    sa.Column('step_id', sa.Integer(), nullable=True),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('url', sa.String(length=2000), nullable=False),
    sa.Column('label', sa.String(length=300), nullable=False),
    sa.Column('is_booking', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['issue_id'], ['issues.id'], name=op.f('fk_links_issue_id_issues'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['step_id'], ['sequence_steps.id'], name=op.f('fk_links_step_id_sequence_steps'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_links')),
    sa.UniqueConstraint('issue_id', 'position', name='uq_links_issue_position'),
    sa.UniqueConstraint('step_id', 'position', name='uq_links_step_position')
    )
    op.create_table('attributions',
    sa.Column('booking_id', sa.Integer(), nullable=False),
    sa.Column('delivery_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('issue_id', sa.Integer(), nullable=True),
    sa.Column('step_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('event_at', subscribers.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['booking_id'], ['bookings.id'], name=op.f('fk_attributions_booking_id_bookings'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['delivery_id'], ['deliveries.id'], name=op.f('fk_attributions_delivery_id_deliveries'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['issue_id'], ['issues.id'], name=op.f('fk_attributions_issue_id_issues'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['step_id'], ['sequence_steps.id'], name=op.f('fk_attributions_step_id_sequence_steps'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('booking_id', name=op.f('pk_attributions'))
    )
    with op.batch_alter_table('attributions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_attributions_issue_id'), ['issue_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_attributions_step_id'), ['step_id'], unique=False)

    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('issue_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('step_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('link_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_events_issue_id'), ['issue_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_events_step_id'), ['step_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_events_issue_id_issues'), 'issues', ['issue_id'], ['id'], ondelete='CASCADE')
        batch_op.create_foreign_key(batch_op.f('fk_events_step_id_sequence_steps'), 'sequence_steps', ['step_id'], ['id'], ondelete='SET NULL')
        batch_op.create_foreign_key(batch_op.f('fk_events_link_id_links'), 'links', ['link_id'], ['id'], ondelete='SET NULL')

    with op.batch_alter_table('issues', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tracking', sa.String(length=10), nullable=False, server_default='full'))

    with op.batch_alter_table('sequences', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tracking', sa.String(length=10), nullable=False, server_default='full'))



def downgrade() -> None:
    with op.batch_alter_table('sequences', schema=None) as batch_op:
        batch_op.drop_column('tracking')

    with op.batch_alter_table('issues', schema=None) as batch_op:
        batch_op.drop_column('tracking')

    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_events_link_id_links'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_events_step_id_sequence_steps'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_events_issue_id_issues'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_events_step_id'))
        batch_op.drop_index(batch_op.f('ix_events_issue_id'))
        batch_op.drop_column('link_id')
        batch_op.drop_column('step_id')
        batch_op.drop_column('issue_id')

    with op.batch_alter_table('attributions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_attributions_step_id'))
        batch_op.drop_index(batch_op.f('ix_attributions_issue_id'))

    op.drop_table('attributions')
    op.drop_table('links')
