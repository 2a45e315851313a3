"""insurance settlement: fee lines, pre-settlements, settlements, chronic diseases, rules

Revision ID: b5d2e8f1c6a7
Revises: 9e0f1a2b3c4d
Create Date: 2026-11-30 06:05:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import datasources.store.types

revision: str = 'b5d2e8f1c6a7'
down_revision: str | None = '9e0f1a2b3c4d'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('insur_insurance', sa.Column('family_balance_fen', sa.Integer(), nullable=False, server_default='0'))
    op.add_column('insur_visit', sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False,
                                           server_default='OTP'))
    op.add_column('insur_visit', sa.Column('med_type', sqlmodel.sql.sqltypes.AutoString(length=6), nullable=True))
    op.add_column('insur_visit', sa.Column('details', sa.Text(), nullable=True))
    op.add_column('insur_visit', sa.Column('endtime', datasources.store.types.UTCDateTime(timezone=True),
                                           nullable=True))
    op.add_column('insur_visit', sa.Column('discharge', sa.Text(), nullable=True))
    op.add_column('insur_message', sa.Column('effect', sa.Text(), nullable=True))
    op.create_table('insur_rules',
    sa.Column('insutype', sqlmodel.sql.sqltypes.AutoString(length=6), nullable=False),
    sa.Column('rules', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('insutype')
    )
    op.create_table('insur_chronic_disease',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('psn_no', sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
    sa.Column('opsp_dise_code', sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
    sa.Column('opsp_dise_name', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('begndate', sa.Date(), nullable=False),
    sa.Column('enddate', sa.Date(), nullable=True),
    sa.ForeignKeyConstraint(['psn_no'], ['insur_person.psn_no'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_insur_chronic_disease_psn_no'), 'insur_chronic_disease', ['psn_no'], unique=False)
    op.create_table('insur_fee',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('mdtrt_id', sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
    sa.Column('feedetl_sn', sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
    sa.Column('chrg_bchno', sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
    sa.Column('fee_ocur_time', datasources.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('med_list_codg', sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
    sa.Column('medins_list_codg', sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
    sa.Column('cnt', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('pric_fen', sa.Integer(), nullable=False),
    sa.Column('amount_fen', sa.Integer(), nullable=False),
    sa.Column('chrgitm_lv', sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
    sa.Column('selfpay_prop', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('fulamt_ownpay_fen', sa.Integer(), nullable=False),
    sa.Column('preselfpay_fen', sa.Integer(), nullable=False),
    sa.Column('inscp_scp_fen', sa.Integer(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('setl_id', sqlmodel.sql.sqltypes.AutoString(length=30), nullable=True),
    sa.Column('msgid', sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
    sa.ForeignKeyConstraint(['mdtrt_id'], ['insur_visit.mdtrt_id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_insur_fee_mdtrt_id'), 'insur_fee', ['mdtrt_id'], unique=False)
    op.create_table('insur_pre_settlement',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('mdtrt_id', sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
    sa.Column('chrg_bchno', sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
    sa.Column('fees', sa.Text(), nullable=False),
    sa.Column('medfee_sumamt_fen', sa.Integer(), nullable=False),
    sa.Column('msgid', sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
    sa.Column('at', datasources.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['mdtrt_id'], ['insur_visit.mdtrt_id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_insur_pre_settlement_mdtrt_id'), 'insur_pre_settlement', ['mdtrt_id'], unique=False)
    op.create_table('insur_settlement',
    sa.Column('setl_id', sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
    sa.Column('mdtrt_id', sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
    sa.Column('psn_no', sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
    sa.Column('fixmedins_code', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('insutype', sqlmodel.sql.sqltypes.AutoString(length=6), nullable=False),
    sa.Column('med_type', sqlmodel.sql.sqltypes.AutoString(length=6), nullable=False),
    sa.Column('clr_type', sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
    sa.Column('setl_optins', sqlmodel.sql.sqltypes.AutoString(length=6), nullable=False),
    sa.Column('chrg_bchno', sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
    sa.Column('setl_time', datasources.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('medfee_sumamt_fen', sa.Integer(), nullable=False),
    sa.Column('fulamt_ownpay_amt_fen', sa.Integer(), nullable=False),
    sa.Column('preselfpay_amt_fen', sa.Integer(), nullable=False),
    sa.Column('inscp_scp_amt_fen', sa.Integer(), nullable=False),
    sa.Column('act_pay_dedc_fen', sa.Integer(), nullable=False),
    sa.Column('hifp_pay_fen', sa.Integer(), nullable=False),
    sa.Column('acct_pay_fen', sa.Integer(), nullable=False),
    sa.Column('acct_mulaid_pay_fen', sa.Integer(), nullable=False),
    sa.Column('psn_cash_pay_fen', sa.Integer(), nullable=False),
    sa.Column('balc_fen', sa.Integer(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('msgid', sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
    sa.Column('cancel_setl_id', sqlmodel.sql.sqltypes.AutoString(length=30), nullable=True),
    sa.Column('cancelled_at', datasources.store.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['mdtrt_id'], ['insur_visit.mdtrt_id'], ),
    sa.ForeignKeyConstraint(['psn_no'], ['insur_person.psn_no'], ),
    sa.PrimaryKeyConstraint('setl_id')
    )
    op.create_index(op.f('ix_insur_settlement_mdtrt_id'), 'insur_settlement', ['mdtrt_id'], unique=False)
    op.create_index(op.f('ix_insur_settlement_psn_no'), 'insur_settlement', ['psn_no'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_insur_settlement_psn_no'), table_name='insur_settlement')
    op.drop_index(op.f('ix_insur_settlement_mdtrt_id'), table_name='insur_settlement')
    op.drop_table('insur_settlement')
    op.drop_index(op.f('ix_insur_pre_settlement_mdtrt_id'), table_name='insur_pre_settlement')
    op.drop_table('insur_pre_settlement')
    op.drop_index(op.f('ix_insur_fee_mdtrt_id'), table_name='insur_fee')
    op.drop_table('insur_fee')
    op.drop_index(op.f('ix_insur_chronic_disease_psn_no'), table_name='insur_chronic_disease')
    op.drop_table('insur_chronic_disease')
    op.drop_table('insur_rules')
    with op.batch_alter_table('insur_message') as batch:
        batch.drop_column('effect')
    with op.batch_alter_table('insur_visit') as batch:
        for column in ('discharge', 'endtime', 'details', 'med_type', 'kind'):
            batch.drop_column(column)
    with op.batch_alter_table('insur_insurance') as batch:
        batch.drop_column('family_balance_fen')
