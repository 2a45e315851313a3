"""reconciliation runs and their discrepancies

Revision ID: d7a3c9e1f2b4
Revises: a1b2c3d4e5f6
Create Date: 2026-11-30 06:40:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import datasources.store.types

revision: str = 'd7a3c9e1f2b4'
down_revision: str | None = 'a1b2c3d4e5f6'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = sqlmodel.sql.sqltypes.AutoString
AT = datasources.store.types.UTCDateTime


def upgrade() -> None:
    op.create_table(
        'reconciliation_run',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('channel', S(length=16), nullable=False),
        sa.Column('status', S(length=16), nullable=False),
        sa.Column('started_by', S(length=32), nullable=False),
        sa.Column('started_by_account_id', sa.Integer(), nullable=True),
        sa.Column('schedule_key', S(length=48), nullable=True),
        sa.Column('totals', sa.Text(), nullable=False),
        sa.Column('failure', S(length=256), nullable=True),
        sa.Column('started_at', AT(), nullable=False),
        sa.Column('finished_at', AT(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('schedule_key'),
    )
    op.create_index('ix_reconciliation_run_day', 'reconciliation_run', ['day', 'channel'])
    op.create_table(
        'reconciliation_item',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('run_id', sa.Integer(), nullable=False),
        sa.Column('kind', S(length=24), nullable=False),
        sa.Column('entry', S(length=8), nullable=False),
        sa.Column('reference', S(length=64), nullable=False),
        sa.Column('order_no', S(length=64), nullable=False),
        sa.Column('channel_fen', sa.Integer(), nullable=True),
        sa.Column('his_fen', sa.Integer(), nullable=True),
        sa.Column('bff_fen', sa.Integer(), nullable=True),
        sa.Column('channel_status', S(length=16), nullable=True),
        sa.Column('his_status', S(length=16), nullable=True),
        sa.Column('bff_status', S(length=16), nullable=True),
        sa.Column('reason', S(length=256), nullable=False),
        sa.Column('action', S(length=24), nullable=False),
        sa.Column('refund_no', S(length=32), nullable=True),
        sa.Column('resolved_at', AT(), nullable=True),
        sa.Column('resolved_by', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['run_id'], ['reconciliation_run.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index(op.f('ix_reconciliation_item_run_id'), 'reconciliation_item', ['run_id'])
    op.create_index(op.f('ix_reconciliation_item_refund_no'), 'reconciliation_item', ['refund_no'])


def downgrade() -> None:
    op.drop_index(op.f('ix_reconciliation_item_refund_no'), table_name='reconciliation_item')
    op.drop_index(op.f('ix_reconciliation_item_run_id'), table_name='reconciliation_item')
    op.drop_table('reconciliation_item')
    op.drop_index('ix_reconciliation_run_day', table_name='reconciliation_run')
    op.drop_table('reconciliation_run')
