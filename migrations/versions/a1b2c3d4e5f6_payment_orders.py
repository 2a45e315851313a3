"""payment orders, refunds and channel notices

Revision ID: a1b2c3d4e5f6
Revises: 9e0f1a2b3c4d
Create Date: 2026-11-30 06:40:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import datasources.store.types

revision: str = 'a1b2c3d4e5f6'
down_revision: str | None = '9e0f1a2b3c4d'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = sqlmodel.sql.sqltypes.AutoString
AT = datasources.store.types.UTCDateTime


def upgrade() -> None:
    op.create_table(
        'payment_order',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('order_no', S(length=32), nullable=False),
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('patient_id', sa.Integer(), nullable=False),
        sa.Column('his_patient_id', S(length=32), nullable=False),
        sa.Column('purpose', S(length=16), nullable=False),
        sa.Column('subject', sa.Text(), nullable=False),
        sa.Column('open_subject', S(length=160), nullable=True),
        sa.Column('channel', S(length=16), nullable=False),
        sa.Column('description', S(length=128), nullable=False),
        sa.Column('total_fen', sa.Integer(), nullable=False),
        sa.Column('self_pay_fen', sa.Integer(), nullable=False),
        sa.Column('insurance_fen', sa.Integer(), nullable=False),
        sa.Column('refunded_fen', sa.Integer(), nullable=False),
        sa.Column('status', S(length=12), nullable=False),
        sa.Column('channel_ref', S(length=64), nullable=True),
        sa.Column('channel_trade_no', S(length=64), nullable=True),
        sa.Column('his_receipt_no', S(length=64), nullable=True),
        sa.Column('invoice_url', S(length=512), nullable=True),
        sa.Column('problem', S(length=64), nullable=True),
        sa.Column('write_back_attempts', sa.Integer(), nullable=False),
        sa.Column('created_at', AT(), nullable=False),
        sa.Column('expires_at', AT(), nullable=False),
        sa.Column('paid_at', AT(), nullable=True),
        sa.Column('settled_at', AT(), nullable=True),
        sa.Column('closed_at', AT(), nullable=True),
        sa.Column('updated_at', AT(), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['account.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('order_no'),
        sa.UniqueConstraint('open_subject', name='uq_payment_order_open_subject'),
    )
    op.create_index('ix_payment_order_status', 'payment_order', ['status', 'expires_at'])
    op.create_index('ix_payment_order_account', 'payment_order', ['account_id', 'created_at'])
    op.create_table(
        'payment_refund',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('refund_no', S(length=32), nullable=False),
        sa.Column('order_no', S(length=32), nullable=False),
        sa.Column('amount_fen', sa.Integer(), nullable=False),
        sa.Column('self_pay_fen', sa.Integer(), nullable=False),
        sa.Column('insurance_fen', sa.Integer(), nullable=False),
        sa.Column('reason', S(length=128), nullable=False),
        sa.Column('cause', S(length=24), nullable=False),
        sa.Column('bill_ids', sa.Text(), nullable=False),
        sa.Column('status', S(length=16), nullable=False),
        sa.Column('requested_by', sa.Integer(), nullable=True),
        sa.Column('approved_by', sa.Integer(), nullable=True),
        sa.Column('channel_refund_id', S(length=64), nullable=True),
        sa.Column('failure', S(length=256), nullable=True),
        sa.Column('his_written_back_at', AT(), nullable=True),
        sa.Column('created_at', AT(), nullable=False),
        sa.Column('updated_at', AT(), nullable=False),
        sa.Column('succeeded_at', AT(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('refund_no'),
    )
    op.create_index('ix_payment_refund_status', 'payment_refund', ['status'])
    op.create_index(op.f('ix_payment_refund_order_no'), 'payment_refund', ['order_no'])
    op.create_table(
        'payment_notice',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('channel', S(length=16), nullable=False),
        sa.Column('notice_id', S(length=64), nullable=False),
        sa.Column('order_no', S(length=64), nullable=False),
        sa.Column('event', S(length=32), nullable=False),
        sa.Column('received_at', AT(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('channel', 'notice_id', name='uq_payment_notice'),
    )
    op.create_index(op.f('ix_payment_notice_order_no'), 'payment_notice', ['order_no'])


def downgrade() -> None:
    op.drop_table('payment_notice')
    op.drop_table('payment_refund')
    op.drop_table('payment_order')
