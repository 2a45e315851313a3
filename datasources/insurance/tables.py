"""The insurance platform sandbox's own tables (prefixed ``insur_``): what the platform would keep."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Text
from sqlmodel import Field, SQLModel

from datasources.store.types import UTCDateTime


def _at(nullable: bool = False) -> Column[datetime]:
    return Column(UTCDateTime(), nullable=nullable)


class InsurPerson(SQLModel, table=True):
    __tablename__ = "insur_person"
    psn_no: str = Field(primary_key=True, max_length=30)
    psn_name: str = Field(max_length=50)
    psn_cert_type: str = Field(max_length=6)
    certno: str = Field(max_length=50, unique=True)
    gend: str = Field(max_length=6)


class InsurInsurance(SQLModel, table=True):
    """One insurance type of a person, with its personal account balance in fen."""

    __tablename__ = "insur_insurance"
    id: int | None = Field(default=None, primary_key=True)
    psn_no: str = Field(foreign_key="insur_person.psn_no", index=True, max_length=30)
    insutype: str = Field(max_length=6)
    psn_type: str = Field(max_length=6)
    balance_fen: int
    insuplc_admdvs: str = Field(max_length=6)
    active: bool = True


class InsurSignIn(SQLModel, table=True):
    __tablename__ = "insur_sign_in"
    sign_no: str = Field(primary_key=True, max_length=32)
    fixmedins_code: str = Field(max_length=12)
    opter_no: str = Field(max_length=30)
    mac: str = Field(max_length=32)
    ip: str = Field(max_length=64)
    signed_in_at: datetime = Field(sa_column=_at())
    expires_at: datetime = Field(sa_column=_at())


class InsurVisit(SQLModel, table=True):
    """A registration (2201); REVERSED ones no longer exist for any transaction."""

    __tablename__ = "insur_visit"
    mdtrt_id: str = Field(primary_key=True, max_length=30)
    psn_no: str = Field(foreign_key="insur_person.psn_no", index=True, max_length=30)
    fixmedins_code: str = Field(max_length=12)
    insutype: str = Field(max_length=6)
    begntime: datetime = Field(sa_column=_at())
    mdtrt_cert_type: str = Field(max_length=3)
    mdtrt_cert_no: str = Field(max_length=50)
    ipt_otp_no: str = Field(max_length=30)
    atddr_no: str = Field(max_length=30)
    dr_name: str = Field(max_length=50)
    dept_code: str = Field(max_length=30)
    dept_name: str = Field(max_length=100)
    caty: str = Field(max_length=10)
    status: str = Field(max_length=12)  # ACTIVE, CANCELLED, REVERSED
    msgid: str = Field(max_length=30)


class InsurMessage(SQLModel, table=True):
    """Every message the platform processed, with its first answer: a repeated msgid gets it again.

    ``reversed_by`` is the 2601 message that reversed this one.
    """

    __tablename__ = "insur_message"
    msgid: str = Field(primary_key=True, max_length=30)
    infno: str = Field(max_length=4)
    fixmedins_code: str = Field(max_length=12)
    fingerprint: str = Field(max_length=64)
    infcode: int
    answer: str = Field(sa_column=Column(Text(), nullable=False))
    received_at: datetime = Field(sa_column=_at())
    mdtrt_id: str | None = Field(default=None, max_length=30)  # the visit a 2201 or 2202 touched
    reversed_by: str | None = Field(default=None, max_length=30)
