"""sagas: multi-system flows persisted step by step

Revision ID: 8d2e3f4a5b6c
Revises: 7c1d2e3f4a5b
Create Date: 2026-11-30 05:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import datasources.store.types

revision: str = '8d2e3f4a5b6c'
down_revision: str | None = '7c1d2e3f4a5b'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('saga',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=48), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('data', sa.Text(), nullable=False),
    sa.Column('done_steps', sa.Integer(), nullable=False),
    sa.Column('compensated_steps', sa.Integer(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', datasources.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', datasources.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('saga', schema=None) as batch_op:
        batch_op.create_index('ix_saga_state', ['state'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('saga', schema=None) as batch_op:
        batch_op.drop_index('ix_saga_state')
    op.drop_table('saga')
