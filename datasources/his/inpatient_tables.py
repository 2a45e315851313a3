"""The HIS sandbox's inpatient tables (prefixed ``his_``): wards and beds, admission notices, stays,
their charges and settlements, the writes' references, and the faults a test asked for.

The races are settled here: a bed's ``admission_id`` is taken by a conditional update (one stay
wins it), a notice admits one stay (``his_admission.notice_id`` is unique), and every reference of
every write is one row of ``his_inpatient_write`` (unique), holding the first answer that a repeat
returns. A bed and the stay holding it point at each other; the bed's side is a plain column, so
neither table has to exist before the other.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from datasources.store.types import UTCDateTime


def _at(nullable: bool = False) -> Column[datetime]:
    return Column(UTCDateTime(), nullable=nullable)


class HisWard(SQLModel, table=True):
    __tablename__ = "his_ward"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64)
    department_id: int = Field(foreign_key="his_department.id", index=True)


class HisBed(SQLModel, table=True):
    __tablename__ = "his_bed"
    __table_args__ = (UniqueConstraint("ward_id", "bed_no", name="uq_his_bed_ward_no"),)
    id: int | None = Field(default=None, primary_key=True)
    ward_id: int = Field(foreign_key="his_ward.id")
    bed_no: str = Field(max_length=16)
    room: str = Field(default="", max_length=16)
    daily_fee_fen: int
    admission_id: int | None = None  # the stay holding it (his_admission.id), None when free


class HisAdmissionNotice(SQLModel, table=True):
    """入院通知单: ``code`` is what its QR code carries."""

    __tablename__ = "his_admission_notice"
    __table_args__ = (UniqueConstraint("code", name="uq_his_admission_notice_code"),)
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=32)
    patient_id: int = Field(foreign_key="his_patient.id", index=True)
    ward_id: int = Field(foreign_key="his_ward.id")
    doctor_id: str = Field(default="", max_length=32)
    doctor_name: str = Field(default="", max_length=32)
    diagnosis_code: str = Field(default="", max_length=32)
    diagnosis: str = Field(max_length=255)
    issued_at: datetime = Field(sa_column=_at())
    valid_until: datetime = Field(sa_column=_at())


class HisAdmission(SQLModel, table=True):
    """A stay; its inpatient number (住院号) is derived from ``id``."""

    __tablename__ = "his_admission"
    __table_args__ = (UniqueConstraint("notice_id", name="uq_his_admission_notice"),)
    id: int | None = Field(default=None, primary_key=True)
    notice_id: int = Field(foreign_key="his_admission_notice.id")
    patient_id: int = Field(foreign_key="his_patient.id", index=True)
    ward_id: int = Field(foreign_key="his_ward.id")
    bed_id: int = Field(foreign_key="his_bed.id")
    admission_type: str = Field(max_length=16)
    insurance_visit_id: str | None = Field(default=None, max_length=64)
    status: str = Field(max_length=24)
    admitted_at: datetime = Field(sa_column=_at())
    discharged_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    discharge_diagnosis: str = Field(default="", max_length=255)


class HisInpatientCharge(SQLModel, table=True):
    """One line of a stay's daily list (日清单)."""

    __tablename__ = "his_inpatient_charge"
    __table_args__ = (Index("ix_his_inpatient_charge_admission", "admission_id", "charged_at"),)
    id: int | None = Field(default=None, primary_key=True)
    admission_id: int = Field(foreign_key="his_admission.id")
    charged_at: datetime = Field(sa_column=_at())
    day: date
    category: str = Field(max_length=2)
    code: str = Field(max_length=32)
    name: str = Field(max_length=128)
    spec: str = Field(default="", max_length=64)
    unit: str = Field(max_length=16)
    quantity: str = Field(max_length=16)
    unit_price_fen: int
    amount_fen: int
    insurance_code: str = Field(default="", max_length=32)
    insurance_class: str = Field(default="", max_length=2)
    department_id: str = Field(max_length=32)
    department_name: str = Field(max_length=64)
    doctor_id: str = Field(default="", max_length=32)
    doctor_name: str = Field(default="", max_length=32)


class HisInpatientSettlement(SQLModel, table=True):
    """A discharge settlement written back, in force or cancelled."""

    __tablename__ = "his_inpatient_settlement"
    __table_args__ = (UniqueConstraint("reference", name="uq_his_inpatient_settlement_reference"),)
    id: int | None = Field(default=None, primary_key=True)
    reference: str = Field(max_length=64)
    admission_id: int = Field(foreign_key="his_admission.id", index=True)
    patient_id: int = Field(foreign_key="his_patient.id")
    status: str = Field(max_length=16)
    total_fen: int
    fund_fen: int
    personal_account_fen: int
    family_account_fen: int
    deposit_used_fen: int
    self_pay_fen: int
    surplus_fen: int
    insurance_settlement_id: str = Field(max_length=64)
    self_pay_channel: str = Field(max_length=16)
    channel_trade_no: str = Field(max_length=64)
    # The stay's inpatient deposit account (his_deposit_account.id): a plain column, so this branch of
    # migrations does not depend on billing's.
    deposit_account_id: int | None = None
    settled_at: datetime = Field(sa_column=_at())
    recorded_at: datetime = Field(sa_column=_at())
    receipt_no: str = Field(max_length=32)
    cancelled_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    cancel_reference: str | None = Field(default=None, max_length=64)


class HisInpatientWrite(SQLModel, table=True):
    """Every write's reference, claimed once whatever the method, with the answer a repeat gets."""

    __tablename__ = "his_inpatient_write"
    __table_args__ = (UniqueConstraint("reference", name="uq_his_inpatient_write_reference"),)
    id: int | None = Field(default=None, primary_key=True)
    reference: str = Field(max_length=64)
    fingerprint: str = Field(max_length=64)
    method: str = Field(max_length=32)
    admission_id: int | None = Field(default=None, foreign_key="his_admission.id", index=True)
    answer: str = Field(sa_column=Column(Text, nullable=False))  # the answer in the wire format, JSON
    recorded_at: datetime = Field(sa_column=_at())


class HisInpatientFault(SQLModel, table=True):
    """A failure a test asked for: the next call of ``method`` is unavailable, before its work or
    after committing it (the answer lost). In the database, so a sandbox served over HTTP obeys it."""

    __tablename__ = "his_inpatient_fault"
    id: int | None = Field(default=None, primary_key=True)
    method: str = Field(max_length=32, index=True)
    after_commit: bool = False
    created_at: datetime = Field(sa_column=_at())
