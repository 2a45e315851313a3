"""The insurance platform sandbox's own tables (prefixed ``insur_``): what the platform would keep."""

from __future__ import annotations

from datetime import date, datetime

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
    family_balance_fen: int = 0  # the family mutual-aid account (共济) the person may draw on


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
    """An outpatient registration (2201, kind OTP) or an inpatient stay (2401, kind IPT); REVERSED
    ones no longer exist for any transaction. A stay keeps its ipt_no in ``ipt_otp_no``, its
    attending doctor in ``atddr_no``/``dr_name`` and its department in ``dept_code``/``dept_name``.
    ``details`` (JSON) is what 2203, 2401 or 2403 said last; ``discharge`` what 2402 said."""

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
    status: str = Field(max_length=12)  # ACTIVE, CANCELLED, REVERSED; a stay also DISCHARGED
    msgid: str = Field(max_length=30)
    kind: str = Field(default="OTP", max_length=3)
    med_type: str | None = Field(default=None, max_length=6)
    details: str | None = Field(default=None, sa_column=Column(Text(), nullable=True))
    endtime: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    discharge: str | None = Field(default=None, sa_column=Column(Text(), nullable=True))


class InsurMessage(SQLModel, table=True):
    """Every message the platform processed, with its first answer: a repeated msgid gets it again.

    ``reversed_by`` is the 2601 message that reversed this one; ``effect`` (JSON) is what a
    settlement-era write did, so that a reversal can undo exactly that.
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
    effect: str | None = Field(default=None, sa_column=Column(Text(), nullable=True))


class InsurFee(SQLModel, table=True):
    """One uploaded fee line (2204, 2301) with the class the platform gave it.

    ``status`` ACTIVE, CANCELLED (2205, 2302) or REVERSED (its upload reversed); ``setl_id`` the
    settlement it is in, if any."""

    __tablename__ = "insur_fee"
    id: int | None = Field(default=None, primary_key=True)
    mdtrt_id: str = Field(foreign_key="insur_visit.mdtrt_id", index=True, max_length=30)
    feedetl_sn: str = Field(max_length=30)
    chrg_bchno: str = Field(max_length=30)
    fee_ocur_time: datetime = Field(sa_column=_at())
    med_list_codg: str = Field(max_length=50)
    medins_list_codg: str = Field(max_length=50)
    cnt: str = Field(max_length=20)  # a decimal, as text
    pric_fen: int
    amount_fen: int
    chrgitm_lv: str = Field(max_length=3)
    selfpay_prop: str = Field(max_length=10)
    fulamt_ownpay_fen: int
    preselfpay_fen: int
    inscp_scp_fen: int
    status: str = Field(max_length=12)
    setl_id: str | None = Field(default=None, max_length=30)
    msgid: str = Field(max_length=30)


class InsurPreSettlement(SQLModel, table=True):
    """A pre-settlement (2206, 2303): of which fees exactly (``fees``, their ids), so that the
    settlement can tell whether they changed since."""

    __tablename__ = "insur_pre_settlement"
    id: int | None = Field(default=None, primary_key=True)
    mdtrt_id: str = Field(foreign_key="insur_visit.mdtrt_id", index=True, max_length=30)
    chrg_bchno: str = Field(max_length=30)
    fees: str = Field(sa_column=Column(Text(), nullable=False))
    medfee_sumamt_fen: int
    msgid: str = Field(max_length=30)
    at: datetime = Field(sa_column=_at())


class InsurSettlement(SQLModel, table=True):
    """A settlement (2207, 2304), its amounts in fen. SETTLED or CANCELLED (by 2208/2305, whose
    own record is ``cancel_setl_id``, or by the reversal of the 2207/2304 itself)."""

    __tablename__ = "insur_settlement"
    setl_id: str = Field(primary_key=True, max_length=30)
    mdtrt_id: str = Field(foreign_key="insur_visit.mdtrt_id", index=True, max_length=30)
    psn_no: str = Field(foreign_key="insur_person.psn_no", index=True, max_length=30)
    fixmedins_code: str = Field(max_length=12)
    insutype: str = Field(max_length=6)
    med_type: str = Field(max_length=6)
    clr_type: str = Field(max_length=3)
    setl_optins: str = Field(max_length=6)
    chrg_bchno: str = Field(max_length=30)
    setl_time: datetime = Field(sa_column=_at())
    medfee_sumamt_fen: int
    fulamt_ownpay_amt_fen: int
    preselfpay_amt_fen: int
    inscp_scp_amt_fen: int
    act_pay_dedc_fen: int
    hifp_pay_fen: int
    acct_pay_fen: int
    acct_mulaid_pay_fen: int
    psn_cash_pay_fen: int
    balc_fen: int
    status: str = Field(max_length=12)
    msgid: str = Field(max_length=30)
    cancel_setl_id: str | None = Field(default=None, max_length=30)
    cancelled_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))


class InsurChronicDisease(SQLModel, table=True):
    """A chronic or special disease filed for a person (5301)."""

    __tablename__ = "insur_chronic_disease"
    id: int | None = Field(default=None, primary_key=True)
    psn_no: str = Field(foreign_key="insur_person.psn_no", index=True, max_length=30)
    opsp_dise_code: str = Field(max_length=30)
    opsp_dise_name: str = Field(max_length=100)
    begndate: date
    enddate: date | None = None


class InsurRules(SQLModel, table=True):
    """The settlement rules (``rules.SettlementRules`` as JSON) per insutype, set by the admin."""

    __tablename__ = "insur_rules"
    insutype: str = Field(primary_key=True, max_length=6)
    rules: str = Field(sa_column=Column(Text(), nullable=False))
