"""his billing: bills and their items, payment and refund write-backs, deposit accounts and entries

Revision ID: c4f1b2a9d7e3
Revises: 9e0f1a2b3c4d
Create Date: 2026-11-30 06:10:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import datasources.store.types

revision: str = 'c4f1b2a9d7e3'
down_revision: str | None = '9e0f1a2b3c4d'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('his_deposit_account',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_key', sqlmodel.sql.sqltypes.AutoString(length=96), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('admission_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('balance_fen', sa.Integer(), nullable=False),
    sa.Column('arrears_fen', sa.Integer(), nullable=False),
    sa.Column('created_at', datasources.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['patient_id'], ['his_patient.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('account_key', name='uq_his_deposit_account_key')
    )
    with op.batch_alter_table('his_deposit_account', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_his_deposit_account_patient_id'), ['patient_id'], unique=False)

    op.create_table('his_deposit_entry',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('reference', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('amount_fen', sa.Integer(), nullable=False),
    sa.Column('arrears_cleared_fen', sa.Integer(), nullable=False),
    sa.Column('balance_after_fen', sa.Integer(), nullable=False),
    sa.Column('arrears_after_fen', sa.Integer(), nullable=False),
    sa.Column('at', datasources.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['his_deposit_account.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('his_deposit_entry', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_his_deposit_entry_account_id'), ['account_id'], unique=False)

    op.create_table('his_bill',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('card_no', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('registration_id', sa.Integer(), nullable=True),
    sa.Column('department_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('doctor_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('category', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('title', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('total_fen', sa.Integer(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('created_at', datasources.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('paid_at', datasources.store.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('payment_reference', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('executed', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['patient_id'], ['his_patient.id'], ),
    sa.ForeignKeyConstraint(['registration_id'], ['his_registration.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('his_bill', schema=None) as batch_op:
        batch_op.create_index('ix_his_bill_patient_status', ['patient_id', 'status'], unique=False)
        batch_op.create_index(batch_op.f('ix_his_bill_payment_reference'), ['payment_reference'], unique=False)

    op.create_table('his_payment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('reference', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('fingerprint', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('bill_ids', sa.Text(), nullable=False),
    sa.Column('registration_id', sa.Integer(), nullable=True),
    sa.Column('deposit_account_id', sa.Integer(), nullable=True),
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('total_fen', sa.Integer(), nullable=False),
    sa.Column('self_pay_fen', sa.Integer(), nullable=False),
    sa.Column('fund_fen', sa.Integer(), nullable=False),
    sa.Column('personal_account_fen', sa.Integer(), nullable=False),
    sa.Column('family_account_fen', sa.Integer(), nullable=False),
    sa.Column('deposit_fen', sa.Integer(), nullable=False),
    sa.Column('channel_trade_no', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('insurance_settlement_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('refunded_fen', sa.Integer(), nullable=False),
    sa.Column('paid_at', datasources.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('recorded_at', datasources.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('receipt_no', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('balance_after_fen', sa.Integer(), nullable=True),
    sa.Column('arrears_after_fen', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['deposit_account_id'], ['his_deposit_account.id'], ),
    sa.ForeignKeyConstraint(['patient_id'], ['his_patient.id'], ),
    sa.ForeignKeyConstraint(['registration_id'], ['his_registration.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('reference', name='uq_his_payment_reference')
    )
    with op.batch_alter_table('his_payment', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_his_payment_patient_id'), ['patient_id'], unique=False)
        batch_op.create_index('ix_his_payment_recorded_at', ['recorded_at'], unique=False)

    op.create_table('his_bill_item',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('bill_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('spec', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('unit', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('quantity', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('unit_price_fen', sa.Integer(), nullable=False),
    sa.Column('amount_fen', sa.Integer(), nullable=False),
    sa.Column('insurance_code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('insurance_class', sqlmodel.sql.sqltypes.AutoString(length=2), nullable=False),
    sa.ForeignKeyConstraint(['bill_id'], ['his_bill.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('his_bill_item', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_his_bill_item_bill_id'), ['bill_id'], unique=False)

    op.create_table('his_refund',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('reference', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('fingerprint', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('payment_id', sa.Integer(), nullable=False),
    sa.Column('payment_reference', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('amount_fen', sa.Integer(), nullable=False),
    sa.Column('self_pay_fen', sa.Integer(), nullable=False),
    sa.Column('insurance_fen', sa.Integer(), nullable=False),
    sa.Column('deposit_fen', sa.Integer(), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('bill_ids', sa.Text(), nullable=False),
    sa.Column('refunded_at', datasources.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('recorded_at', datasources.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('receipt_no', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('balance_after_fen', sa.Integer(), nullable=True),
    sa.Column('arrears_after_fen', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['payment_id'], ['his_payment.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('reference', name='uq_his_refund_reference')
    )
    with op.batch_alter_table('his_refund', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_his_refund_payment_id'), ['payment_id'], unique=False)
        batch_op.create_index('ix_his_refund_recorded_at', ['recorded_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('his_refund', schema=None) as batch_op:
        batch_op.drop_index('ix_his_refund_recorded_at')
        batch_op.drop_index(batch_op.f('ix_his_refund_payment_id'))

    op.drop_table('his_refund')
    with op.batch_alter_table('his_bill_item', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_his_bill_item_bill_id'))

    op.drop_table('his_bill_item')
    with op.batch_alter_table('his_payment', schema=None) as batch_op:
        batch_op.drop_index('ix_his_payment_recorded_at')
        batch_op.drop_index(batch_op.f('ix_his_payment_patient_id'))

    op.drop_table('his_payment')
    with op.batch_alter_table('his_bill', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_his_bill_payment_reference'))
        batch_op.drop_index('ix_his_bill_patient_status')

    op.drop_table('his_bill')
    with op.batch_alter_table('his_deposit_entry', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_his_deposit_entry_account_id'))

    op.drop_table('his_deposit_entry')
    with op.batch_alter_table('his_deposit_account', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_his_deposit_account_patient_id'))

    op.drop_table('his_deposit_account')
