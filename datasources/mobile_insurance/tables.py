"""The mobile insurance sandbox's own tables (prefixed ``mipay_``): the platform's state as it keeps it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from datasources.store.types import UTCDateTime


def _at(nullable: bool = False) -> Column[datetime]:
    return Column(UTCDateTime(), nullable=nullable)


class MipayInsuredPerson(SQLModel, table=True):
    """An insured person with the balances of the personal account and of the family (mutual aid) account."""

    __tablename__ = "mipay_insured_person"
    id: int | None = Field(default=None, primary_key=True)
    id_no: str = Field(max_length=32, unique=True)
    name: str = Field(max_length=64)
    insurance_area: str = Field(max_length=16)
    personal_balance_fen: int = 0
    family_balance_fen: int = 0


class MipayAuthorization(SQLModel, table=True):
    """One authorization: the ``authCode`` of the redirect and the single-use ``payAuthNo`` it gives."""

    __tablename__ = "mipay_authorization"
    id: int | None = Field(default=None, primary_key=True)
    auth_code: str = Field(max_length=64, unique=True)
    pay_auth_no: str = Field(max_length=64, unique=True)
    person_id: int = Field(foreign_key="mipay_insured_person.id", index=True)
    created_at: datetime = Field(sa_column=_at())
    expires_at: datetime = Field(sa_column=_at())
    used_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))


class MipayUpload(SQLModel, table=True):
    """A fee upload (6201) and, once placed (6202), its order: the split is fixed at upload."""

    __tablename__ = "mipay_upload"
    __table_args__ = (UniqueConstraint("org_code", "med_org_ord", name="uq_mipay_upload_org_ord"),)
    id: int | None = Field(default=None, primary_key=True)
    pay_ord_id: str = Field(max_length=40, unique=True)
    pay_token: str = Field(max_length=64)
    pay_auth_no: str = Field(max_length=64)
    person_id: int = Field(foreign_key="mipay_insured_person.id", index=True)
    org_code: str = Field(max_length=32)
    med_org_ord: str = Field(max_length=64)
    status: str = Field(max_length=16)
    total_fen: int
    fund_fen: int
    personal_fen: int
    family_fen: int
    own_pay_fen: int
    created_at: datetime = Field(sa_column=_at())
    paid_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    cancelled_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))


class MipayFeeItem(SQLModel, table=True):
    __tablename__ = "mipay_fee_item"
    __table_args__ = (UniqueConstraint("upload_id", "seq", name="uq_mipay_fee_item_seq"),)
    id: int | None = Field(default=None, primary_key=True)
    upload_id: int = Field(foreign_key="mipay_upload.id", index=True)
    seq: str = Field(max_length=32)
    code: str = Field(max_length=64)
    name: str = Field(max_length=128)
    category: str = Field(max_length=8)
    amount_fen: int


class MipayRefund(SQLModel, table=True):
    """The refund of an order's insurance part: one per order (the unique upload id refuses a second)."""

    __tablename__ = "mipay_refund"
    id: int | None = Field(default=None, primary_key=True)
    upload_id: int = Field(foreign_key="mipay_upload.id", unique=True)
    refund_sn: str = Field(max_length=64)
    reason: str = Field(default="", max_length=255)
    fund_fen: int
    personal_fen: int
    family_fen: int
    created_at: datetime = Field(sa_column=_at())
