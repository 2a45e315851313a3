"""QR-code payments in the sandboxes: WeChat Pay Native orders (trade_type, code_url, no payer until paid),
Alipay precreated trades (product_code, qr_code)

Revision ID: c73751e29522
Revises: 9e0f1a2b3c4d
Create Date: 2026-11-30 06:45:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = 'c73751e29522'
down_revision: str | None = '9e0f1a2b3c4d'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('wxpay_order') as batch:
        batch.add_column(sa.Column(
            'trade_type', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False, server_default='JSAPI'
        ))
        batch.add_column(sa.Column('code_url', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch.alter_column(
            'payer_openid', existing_type=sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True
        )
        batch.create_index(batch.f('ix_wxpay_order_code_url'), ['code_url'], unique=False)
    with op.batch_alter_table('alipay_trade') as batch:
        batch.add_column(sa.Column(
            'product_code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False, server_default='JSAPI_PAY'
        ))
        batch.add_column(sa.Column('qr_code', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True))
        batch.create_index(batch.f('ix_alipay_trade_qr_code'), ['qr_code'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('alipay_trade') as batch:
        batch.drop_index(batch.f('ix_alipay_trade_qr_code'))
        batch.drop_column('qr_code')
        batch.drop_column('product_code')
    op.execute("UPDATE wxpay_order SET payer_openid = '' WHERE payer_openid IS NULL")  # Native orders never paid
    with op.batch_alter_table('wxpay_order') as batch:
        batch.drop_index(batch.f('ix_wxpay_order_code_url'))
        batch.alter_column(
            'payer_openid', existing_type=sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False
        )
        batch.drop_column('code_url')
        batch.drop_column('trade_type')
