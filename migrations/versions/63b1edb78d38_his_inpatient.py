"""his inpatient: wards and beds, admission notices, stays, their charges and settlements, write references, faults

Revision ID: 63b1edb78d38
Revises: 9e0f1a2b3c4d
Create Date: 2026-11-30 06:27:07
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import datasources.store.types

revision: str = '63b1edb78d38'
down_revision: str | None = '9e0f1a2b3c4d'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('his_inpatient_fault',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('method', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('after_commit', sa.Boolean(), nullable=False),
    sa.Column('created_at', datasources.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('his_inpatient_fault', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_his_inpatient_fault_method'), ['method'], unique=False)

    op.create_table('his_ward',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['department_id'], ['his_department.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('his_ward', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_his_ward_department_id'), ['department_id'], unique=False)

    op.create_table('his_admission_notice',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('ward_id', sa.Integer(), nullable=False),
    sa.Column('doctor_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('doctor_name', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('diagnosis_code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('diagnosis', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('issued_at', datasources.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('valid_until', datasources.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['patient_id'], ['his_patient.id'], ),
    sa.ForeignKeyConstraint(['ward_id'], ['his_ward.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code', name='uq_his_admission_notice_code')
    )
    with op.batch_alter_table('his_admission_notice', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_his_admission_notice_patient_id'), ['patient_id'], unique=False)

    op.create_table('his_bed',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ward_id', sa.Integer(), nullable=False),
    sa.Column('bed_no', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('room', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('daily_fee_fen', sa.Integer(), nullable=False),
    sa.Column('admission_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['ward_id'], ['his_ward.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('ward_id', 'bed_no', name='uq_his_bed_ward_no')
    )
    op.create_table('his_admission',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('notice_id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('ward_id', sa.Integer(), nullable=False),
    sa.Column('bed_id', sa.Integer(), nullable=False),
    sa.Column('admission_type', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('insurance_visit_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
    sa.Column('admitted_at', datasources.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('discharged_at', datasources.store.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('discharge_diagnosis', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.ForeignKeyConstraint(['bed_id'], ['his_bed.id'], ),
    sa.ForeignKeyConstraint(['notice_id'], ['his_admission_notice.id'], ),
    sa.ForeignKeyConstraint(['patient_id'], ['his_patient.id'], ),
    sa.ForeignKeyConstraint(['ward_id'], ['his_ward.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('notice_id', name='uq_his_admission_notice')
    )
    with op.batch_alter_table('his_admission', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_his_admission_patient_id'), ['patient_id'], unique=False)

    op.create_table('his_inpatient_charge',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('admission_id', sa.Integer(), nullable=False),
    sa.Column('charged_at', datasources.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('category', sqlmodel.sql.sqltypes.AutoString(length=2), nullable=False),
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('spec', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('unit', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('quantity', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('unit_price_fen', sa.Integer(), nullable=False),
    sa.Column('amount_fen', sa.Integer(), nullable=False),
    sa.Column('insurance_code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('insurance_class', sqlmodel.sql.sqltypes.AutoString(length=2), nullable=False),
    sa.Column('department_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('department_name', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('doctor_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('doctor_name', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.ForeignKeyConstraint(['admission_id'], ['his_admission.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('his_inpatient_charge', schema=None) as batch_op:
        batch_op.create_index('ix_his_inpatient_charge_admission', ['admission_id', 'charged_at'], unique=False)

    op.create_table('his_inpatient_settlement',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('reference', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('admission_id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('total_fen', sa.Integer(), nullable=False),
    sa.Column('fund_fen', sa.Integer(), nullable=False),
    sa.Column('personal_account_fen', sa.Integer(), nullable=False),
    sa.Column('family_account_fen', sa.Integer(), nullable=False),
    sa.Column('deposit_used_fen', sa.Integer(), nullable=False),
    sa.Column('self_pay_fen', sa.Integer(), nullable=False),
    sa.Column('surplus_fen', sa.Integer(), nullable=False),
    sa.Column('insurance_settlement_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('self_pay_channel', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('channel_trade_no', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('deposit_account_id', sa.Integer(), nullable=True),
    sa.Column('settled_at', datasources.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('recorded_at', datasources.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('receipt_no', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('cancelled_at', datasources.store.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('cancel_reference', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.ForeignKeyConstraint(['admission_id'], ['his_admission.id'], ),
    sa.ForeignKeyConstraint(['patient_id'], ['his_patient.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('reference', name='uq_his_inpatient_settlement_reference')
    )
    with op.batch_alter_table('his_inpatient_settlement', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_his_inpatient_settlement_admission_id'), ['admission_id'], unique=False)

    op.create_table('his_inpatient_write',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('reference', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('fingerprint', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('method', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('admission_id', sa.Integer(), nullable=True),
    sa.Column('answer', sa.Text(), nullable=False),
    sa.Column('recorded_at', datasources.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['admission_id'], ['his_admission.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('reference', name='uq_his_inpatient_write_reference')
    )
    with op.batch_alter_table('his_inpatient_write', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_his_inpatient_write_admission_id'), ['admission_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('his_inpatient_write', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_his_inpatient_write_admission_id'))

    op.drop_table('his_inpatient_write')
    with op.batch_alter_table('his_inpatient_settlement', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_his_inpatient_settlement_admission_id'))

    op.drop_table('his_inpatient_settlement')
    with op.batch_alter_table('his_inpatient_charge', schema=None) as batch_op:
        batch_op.drop_index('ix_his_inpatient_charge_admission')

    op.drop_table('his_inpatient_charge')
    with op.batch_alter_table('his_admission', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_his_admission_patient_id'))

    op.drop_table('his_admission')
    op.drop_table('his_bed')
    with op.batch_alter_table('his_admission_notice', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_his_admission_notice_patient_id'))

    op.drop_table('his_admission_notice')
    with op.batch_alter_table('his_ward', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_his_ward_department_id'))

    op.drop_table('his_ward')
    with op.batch_alter_table('his_inpatient_fault', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_his_inpatient_fault_method'))

    op.drop_table('his_inpatient_fault')
