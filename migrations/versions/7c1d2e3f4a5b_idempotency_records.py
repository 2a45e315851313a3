"""idempotency records for money-moving requests

Revision ID: 7c1d2e3f4a5b
Revises: e917f9d82b03
Create Date: 2026-11-30 05:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import datasources.store.types

revision: str = '7c1d2e3f4a5b'
down_revision: str | None = 'e917f9d82b03'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('idempotency_record',
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('scope', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('fingerprint', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('result', sa.Text(), nullable=True),
    sa.Column('created_at', datasources.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', datasources.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', datasources.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('account_id', 'scope', 'key')
    )


def downgrade() -> None:
    op.drop_table('idempotency_record')
