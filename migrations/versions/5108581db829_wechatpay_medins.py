"""wechatpay medical-insurance orders and the insurance refunds told (wxpay_med_ins_ only)

Revision ID: 5108581db829
Revises: 9e0f1a2b3c4d
Create Date: 2026-11-30 06:10:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import datasources.store.types

revision: str = '5108581db829'
down_revision: str | None = '9e0f1a2b3c4d'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('wxpay_med_ins_order',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('mix_trade_no', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('out_trade_no', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('fingerprint', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('mix_pay_type', sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
    sa.Column('order_type', sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
    sa.Column('appid', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('openid', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('serial_no', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('pay_order_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('prepay_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('total_fee', sa.Integer(), nullable=False),
    sa.Column('med_ins_gov_fee', sa.Integer(), nullable=False),
    sa.Column('med_ins_self_fee', sa.Integer(), nullable=False),
    sa.Column('med_ins_other_fee', sa.Integer(), nullable=False),
    sa.Column('med_ins_cash_fee', sa.Integer(), nullable=False),
    sa.Column('wechat_pay_cash_fee', sa.Integer(), nullable=False),
    sa.Column('callback_url', sqlmodel.sql.sqltypes.AutoString(length=256), nullable=False),
    sa.Column('attach', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
    sa.Column('med_ins_test_env', sa.Boolean(), nullable=False),
    sa.Column('mix_pay_status', sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
    sa.Column('self_pay_status', sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
    sa.Column('med_ins_pay_status', sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
    sa.Column('created_at', datasources.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('paid_time', datasources.store.types.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('mix_trade_no'),
    sa.UniqueConstraint('out_trade_no')
    )
    with op.batch_alter_table('wxpay_med_ins_order', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_wxpay_med_ins_order_prepay_id'), ['prepay_id'], unique=False)

    op.create_table('wxpay_med_ins_refund',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('out_refund_no', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('mix_trade_no', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('med_refund_total_fee', sa.Integer(), nullable=False),
    sa.Column('med_refund_gov_fee', sa.Integer(), nullable=False),
    sa.Column('med_refund_self_fee', sa.Integer(), nullable=False),
    sa.Column('med_refund_other_fee', sa.Integer(), nullable=False),
    sa.Column('refund_time', datasources.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_at', datasources.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('out_refund_no')
    )
    with op.batch_alter_table('wxpay_med_ins_refund', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_wxpay_med_ins_refund_mix_trade_no'), ['mix_trade_no'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('wxpay_med_ins_refund', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_wxpay_med_ins_refund_mix_trade_no'))
    op.drop_table('wxpay_med_ins_refund')
    with op.batch_alter_table('wxpay_med_ins_order', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_wxpay_med_ins_order_prepay_id'))
    op.drop_table('wxpay_med_ins_order')
