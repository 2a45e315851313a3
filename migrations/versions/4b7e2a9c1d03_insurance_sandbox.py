"""insurance sandbox

Revision ID: 4b7e2a9c1d03
Revises: e917f9d82b03
Create Date: 2026-11-30 05:05:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import datasources.store.types

revision: str = '4b7e2a9c1d03'
down_revision: str | None = 'e917f9d82b03'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('insur_message',
    sa.Column('msgid', sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
    sa.Column('infno', sqlmodel.sql.sqltypes.AutoString(length=4), nullable=False),
    sa.Column('fixmedins_code', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('fingerprint', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('infcode', sa.Integer(), nullable=False),
    sa.Column('answer', sa.Text(), nullable=False),
    sa.Column('received_at', datasources.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('mdtrt_id', sqlmodel.sql.sqltypes.AutoString(length=30), nullable=True),
    sa.Column('reversed_by', sqlmodel.sql.sqltypes.AutoString(length=30), nullable=True),
    sa.PrimaryKeyConstraint('msgid')
    )
    op.create_table('insur_person',
    sa.Column('psn_no', sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
    sa.Column('psn_name', sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
    sa.Column('psn_cert_type', sqlmodel.sql.sqltypes.AutoString(length=6), nullable=False),
    sa.Column('certno', sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
    sa.Column('gend', sqlmodel.sql.sqltypes.AutoString(length=6), nullable=False),
    sa.PrimaryKeyConstraint('psn_no'),
    sa.UniqueConstraint('certno')
    )
    op.create_table('insur_sign_in',
    sa.Column('sign_no', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('fixmedins_code', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('opter_no', sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
    sa.Column('mac', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('ip', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('signed_in_at', datasources.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', datasources.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('sign_no')
    )
    op.create_table('insur_insurance',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('psn_no', sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
    sa.Column('insutype', sqlmodel.sql.sqltypes.AutoString(length=6), nullable=False),
    sa.Column('psn_type', sqlmodel.sql.sqltypes.AutoString(length=6), nullable=False),
    sa.Column('balance_fen', sa.Integer(), nullable=False),
    sa.Column('insuplc_admdvs', sqlmodel.sql.sqltypes.AutoString(length=6), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['psn_no'], ['insur_person.psn_no'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_insur_insurance_psn_no'), 'insur_insurance', ['psn_no'], unique=False)
    op.create_table('insur_visit',
    sa.Column('mdtrt_id', sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
    sa.Column('psn_no', sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
    sa.Column('fixmedins_code', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('insutype', sqlmodel.sql.sqltypes.AutoString(length=6), nullable=False),
    sa.Column('begntime', datasources.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('mdtrt_cert_type', sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
    sa.Column('mdtrt_cert_no', sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
    sa.Column('ipt_otp_no', sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
    sa.Column('atddr_no', sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
    sa.Column('dr_name', sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
    sa.Column('dept_code', sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
    sa.Column('dept_name', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('caty', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('msgid', sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
    sa.ForeignKeyConstraint(['psn_no'], ['insur_person.psn_no'], ),
    sa.PrimaryKeyConstraint('mdtrt_id')
    )
    op.create_index(op.f('ix_insur_visit_psn_no'), 'insur_visit', ['psn_no'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_insur_visit_psn_no'), table_name='insur_visit')
    op.drop_table('insur_visit')
    op.drop_index(op.f('ix_insur_insurance_psn_no'), table_name='insur_insurance')
    op.drop_table('insur_insurance')
    op.drop_table('insur_sign_in')
    op.drop_table('insur_person')
    op.drop_table('insur_message')
