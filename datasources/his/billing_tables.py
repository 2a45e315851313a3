"""The HIS sandbox's billing tables (prefixed ``his_``): bills, the write-backs of payments and refunds,
deposit accounts and their entries, as a hospital's HIS keeps its fee ledger.

Idempotency lives in the tables: a payment's and a refund's ``reference`` are unique, so two
write-backs of one reference can never both be recorded, whatever the race; ``fingerprint`` is what
tells a repeat of the same content from a reference reused for other content.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from datasources.store.types import UTCDateTime


def _at(nullable: bool = False) -> Column[datetime]:
    return Column(UTCDateTime(), nullable=nullable)


class HisBill(SQLModel, table=True):
    """A bill ordered at a visit (处方 / 检验 / 检查 / 治疗); its total is the sum of its items."""

    __tablename__ = "his_bill"
    __table_args__ = (Index("ix_his_bill_patient_status", "patient_id", "status"),)
    id: int | None = Field(default=None, primary_key=True)
    patient_id: int = Field(foreign_key="his_patient.id")
    card_no: str = Field(max_length=32)
    registration_id: int | None = Field(default=None, foreign_key="his_registration.id")
    department_id: str = Field(max_length=32)
    doctor_id: str = Field(max_length=32)
    category: str = Field(max_length=16)
    title: str = Field(max_length=128)
    total_fen: int
    status: str = Field(max_length=16)
    created_at: datetime = Field(sa_column=_at())
    paid_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    payment_reference: str | None = Field(default=None, max_length=64, index=True)
    executed: bool = False


class HisBillItem(SQLModel, table=True):
    __tablename__ = "his_bill_item"
    id: int | None = Field(default=None, primary_key=True)
    bill_id: int = Field(foreign_key="his_bill.id", index=True)
    position: int
    code: str = Field(max_length=32)
    name: str = Field(max_length=128)
    spec: str = Field(default="", max_length=64)
    unit: str = Field(max_length=16)
    quantity: str = Field(max_length=16)
    unit_price_fen: int
    amount_fen: int
    insurance_code: str = Field(default="", max_length=32)
    insurance_class: str = Field(default="", max_length=2)


class HisDepositAccount(SQLModel, table=True):
    """``account_key`` makes one account per patient and kind (and stay, for inpatients) on every
    database: a unique constraint over a nullable admission id would not."""

    __tablename__ = "his_deposit_account"
    __table_args__ = (UniqueConstraint("account_key", name="uq_his_deposit_account_key"),)
    id: int | None = Field(default=None, primary_key=True)
    account_key: str = Field(max_length=96)
    patient_id: int = Field(foreign_key="his_patient.id", index=True)
    kind: str = Field(max_length=16)
    admission_id: str | None = Field(default=None, max_length=32)
    balance_fen: int = 0
    arrears_fen: int = 0
    created_at: datetime = Field(sa_column=_at())


class HisPayment(SQLModel, table=True):
    """A payment written back by the BFF: for bills, a registration fee, or a deposit top-up."""

    __tablename__ = "his_payment"
    __table_args__ = (
        UniqueConstraint("reference", name="uq_his_payment_reference"),
        Index("ix_his_payment_recorded_at", "recorded_at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    reference: str = Field(max_length=64)
    fingerprint: str = Field(max_length=64)
    kind: str = Field(max_length=16)  # BILLS, REGISTRATION or DEPOSIT
    patient_id: int = Field(foreign_key="his_patient.id", index=True)
    bill_ids: str = Field(default="", sa_column=Column(Text, nullable=False))  # "3,5,8"
    registration_id: int | None = Field(default=None, foreign_key="his_registration.id")
    deposit_account_id: int | None = Field(default=None, foreign_key="his_deposit_account.id")
    channel: str = Field(max_length=16)
    total_fen: int
    self_pay_fen: int
    fund_fen: int
    personal_account_fen: int
    family_account_fen: int
    deposit_fen: int
    channel_trade_no: str = Field(max_length=64)
    insurance_settlement_id: str = Field(max_length=64)
    refunded_fen: int = 0
    paid_at: datetime = Field(sa_column=_at())
    recorded_at: datetime = Field(sa_column=_at())
    receipt_no: str = Field(max_length=32)
    # The deposit account after a top-up, so a repeat returns the first answer.
    balance_after_fen: int | None = None
    arrears_after_fen: int | None = None


class HisRefund(SQLModel, table=True):
    """A refund written back by the BFF, of bills, a registration fee or a deposit."""

    __tablename__ = "his_refund"
    __table_args__ = (
        UniqueConstraint("reference", name="uq_his_refund_reference"),
        Index("ix_his_refund_recorded_at", "recorded_at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    reference: str = Field(max_length=64)
    fingerprint: str = Field(max_length=64)
    payment_id: int = Field(foreign_key="his_payment.id", index=True)
    payment_reference: str = Field(max_length=64)
    amount_fen: int
    self_pay_fen: int
    insurance_fen: int
    deposit_fen: int  # what went back to the deposit the payment took it from
    reason: str = Field(max_length=255)
    bill_ids: str = Field(default="", sa_column=Column(Text, nullable=False))
    refunded_at: datetime = Field(sa_column=_at())
    recorded_at: datetime = Field(sa_column=_at())
    receipt_no: str = Field(max_length=32)
    balance_after_fen: int | None = None
    arrears_after_fen: int | None = None


class HisDepositEntry(SQLModel, table=True):
    """Every movement of a deposit account, with the balance and arrears it left."""

    __tablename__ = "his_deposit_entry"
    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="his_deposit_account.id", index=True)
    kind: str = Field(max_length=16)  # TOP_UP, REFUND, PAYMENT, PAYMENT_REFUND, ARREARS
    reference: str = Field(default="", max_length=64)
    amount_fen: int
    arrears_cleared_fen: int = 0
    balance_after_fen: int
    arrears_after_fen: int
    at: datetime = Field(sa_column=_at())
