"""sequences and events

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""
from alembic import op
import sqlalchemy as sa
import subscribers.db
from sqlalchemy.dialects import postgresql

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('sequences',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('trigger_type', sa.String(length=20), nullable=False),
    sa.Column('trigger_value', sa.String(length=100), nullable=True),
    sa.Column('definition', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', subscribers.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', subscribers.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('triggers_since', subscribers.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sequences')),
    sa.UniqueConstraint('name', name=op.f('uq_sequences_name'))
    )
    op.create_table('sequence_steps',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sequence_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=100), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('delay_seconds', sa.Integer(), nullable=False),
    sa.Column('subject', sa.String(length=300), nullable=False),
    sa.Column('preheader', sa.String(length=300), nullable=False),
    sa.Column('condition', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('html', sa.Text(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('compiled_at', subscribers.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['sequence_id'], ['sequences.id'], name=op.f('fk_sequence_steps_sequence_id_sequences'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sequence_steps')),
    sa.UniqueConstraint('sequence_id', 'key', name='uq_sequence_steps_key')
    )
    with op.batch_alter_table('sequence_steps', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sequence_steps_sequence_id'), ['sequence_id'], unique=False)

    op.create_table('enrollments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sequence_id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('next_step_id', sa.Integer(), nullable=True),
    sa.Column('next_due_at', subscribers.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_step_id', sa.Integer(), nullable=True),
    sa.Column('last_sent_at', subscribers.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('enrolled_at', subscribers.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', subscribers.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('exit_reason', sa.String(length=100), nullable=True),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_enrollments_contact_id_contacts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['last_step_id'], ['sequence_steps.id'], name=op.f('fk_enrollments_last_step_id_sequence_steps'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['next_step_id'], ['sequence_steps.id'], name=op.f('fk_enrollments_next_step_id_sequence_steps'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['sequence_id'], ['sequences.id'], name=op.f('fk_enrollments_sequence_id_sequences'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_enrollments')),
    sa.UniqueConstraint('sequence_id', 'contact_id', 'generation', name='uq_enrollments_generation')
    )
    with op.batch_alter_table('enrollments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_enrollments_contact_id'), ['contact_id'], unique=False)
        batch_op.create_index('ix_enrollments_due', ['state', 'next_due_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_enrollments_sequence_id'), ['sequence_id'], unique=False)

    op.create_table('events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('provider_event_id', sa.String(length=100), nullable=True),
    sa.Column('delivery_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('contact_id', sa.Integer(), nullable=True),
    sa.Column('type', sa.String(length=20), nullable=False),
    sa.Column('machine', sa.Boolean(), nullable=False),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('url', sa.String(length=2000), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('occurred_at', subscribers.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('recorded_at', subscribers.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_events_contact_id_contacts'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['delivery_id'], ['deliveries.id'], name=op.f('fk_events_delivery_id_deliveries'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_events')),
    sa.UniqueConstraint('provider_event_id', name=op.f('uq_events_provider_event_id'))
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index('ix_events_contact_type_time', ['contact_id', 'type', 'occurred_at'], unique=False)
        batch_op.create_index('ix_events_delivery_type', ['delivery_id', 'type'], unique=False)

    with op.batch_alter_table('contact_tags', schema=None) as batch_op:
        batch_op.add_column(sa.Column('added_at', subscribers.db.UTCDateTime(timezone=True), nullable=False, server_default=sa.text('CURRENT_TIMESTAMP')))

    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('enrollment_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('step_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_deliveries_step_id'), ['step_id'], unique=False)
        batch_op.create_unique_constraint('uq_deliveries_enrollment_step', ['enrollment_id', 'step_id'])
        batch_op.create_foreign_key(batch_op.f('fk_deliveries_step_id_sequence_steps'), 'sequence_steps', ['step_id'], ['id'], ondelete='SET NULL')
        batch_op.create_foreign_key(batch_op.f('fk_deliveries_enrollment_id_enrollments'), 'enrollments', ['enrollment_id'], ['id'], ondelete='SET NULL')



def downgrade() -> None:
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_deliveries_enrollment_id_enrollments'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_deliveries_step_id_sequence_steps'), type_='foreignkey')
        batch_op.drop_constraint('uq_deliveries_enrollment_step', type_='unique')
        batch_op.drop_index(batch_op.f('ix_deliveries_step_id'))
        batch_op.drop_column('step_id')
        batch_op.drop_column('enrollment_id')

    with op.batch_alter_table('contact_tags', schema=None) as batch_op:
        batch_op.drop_column('added_at')

    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_delivery_type')
        batch_op.drop_index('ix_events_contact_type_time')

    op.drop_table('events')
    with op.batch_alter_table('enrollments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_enrollments_sequence_id'))
        batch_op.drop_index('ix_enrollments_due')
        batch_op.drop_index(batch_op.f('ix_enrollments_contact_id'))

    op.drop_table('enrollments')
    with op.batch_alter_table('sequence_steps', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sequence_steps_sequence_id'))

    op.drop_table('sequence_steps')
    op.drop_table('sequences')
