"""payment orders: the insurance part (shares, platform order, sealed pay token, status); a longer channel_ref

Revision ID: e8b4c2d6a0f1
Revises: a1b2c3d4e5f6
Create Date: 2026-11-30 06:20:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = 'e8b4c2d6a0f1'
down_revision: str | None = 'a1b2c3d4e5f6'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('payment_order') as batch:
        batch.add_column(sa.Column('fund_fen', sa.Integer(), nullable=False, server_default='0'))
        batch.add_column(sa.Column('personal_account_fen', sa.Integer(), nullable=False, server_default='0'))
        batch.add_column(sa.Column('family_account_fen', sa.Integer(), nullable=False, server_default='0'))
        batch.add_column(sa.Column('insurance_order', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch.add_column(sa.Column('insurance_token_enc', sa.Text(), nullable=True))
        batch.add_column(sa.Column('insurance_status', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=True))
        batch.alter_column(
            'channel_ref', type_=sqlmodel.sql.sqltypes.AutoString(length=160),
            existing_type=sqlmodel.sql.sqltypes.AutoString(length=64), existing_nullable=True,
        )


def downgrade() -> None:
    with op.batch_alter_table('payment_order') as batch:
        batch.alter_column(
            'channel_ref', type_=sqlmodel.sql.sqltypes.AutoString(length=64),
            existing_type=sqlmodel.sql.sqltypes.AutoString(length=160), existing_nullable=True,
        )
        for name in ('insurance_status', 'insurance_token_enc', 'insurance_order', 'family_account_fen',
                     'personal_account_fen', 'fund_fen'):
            batch.drop_column(name)
