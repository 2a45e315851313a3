"""The national medical insurance platform (国家医保信息平台): sign-in, person info, visits, settlement.

Every transaction after sign-in (9001) carries the operator's ``sign_no``; an implementation keeps
the current one and signs in again, with the same operator, when the platform says it is no longer
valid. A write whose answer never came (``OutcomeUnknown``) may or may not have happened: the
caller reverses it with 2601, naming its ``msgid``. The platform answers a repeated ``msgid`` with
its first answer, so a message is never applied twice.

Settlement: the hospital uploads a visit's details (2203 outpatient, 2401 admission) and its fee
lines (2204 / 2301), which the platform classifies (甲 A, 乙 B, 丙 C); a pre-settlement (2206 / 2303)
computes the split without moving money; the settlement (2207 / 2304) debits the personal account
and must follow a pre-settlement of exactly the fees now uploaded; a settlement cancel (2208 /
2305) gives the account back. How the bill is split is the platform's configuration
(``rules.SettlementRules``). 3201/3202 reconcile the hospital's books with the platform's, 5301
lists the person's filed chronic and special diseases.

Money is integer fen here; the wire carries yuan with two decimals.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Protocol

from datasources.errors import SourceUnavailable

SOURCE = "insurance"

# Stable rejection codes (SourceRejected.code).
SIGN_IN_REQUIRED = "SIGN_IN_REQUIRED"  # not signed in, or the sign_no is unknown or expired
PERSON_NOT_FOUND = "PERSON_NOT_FOUND"
NOT_INSURED = "NOT_INSURED"  # the person has no active insurance of that type
VISIT_NOT_FOUND = "VISIT_NOT_FOUND"  # includes a visit whose registration was reversed
ALREADY_CANCELLED = "ALREADY_CANCELLED"
REVERSAL_TARGET_UNKNOWN = "REVERSAL_TARGET_UNKNOWN"  # no message with that msgid and infno arrived
MSGID_REUSED = "MSGID_REUSED"  # a msgid sent again with a different transaction or input
BAD_REQUEST = "BAD_REQUEST"
LIST_ITEM_UNKNOWN = "LIST_ITEM_UNKNOWN"  # a med_list_codg not in the platform's catalogue
AMOUNT_MISMATCH = "AMOUNT_MISMATCH"  # cnt × pric ≠ det_item_fee_sumamt, or medfee_sumamt ≠ the fees' sum
DUPLICATE_FEE = "DUPLICATE_FEE"  # a feedetl_sn already uploaded (and not cancelled) for this visit
FEES_NOT_FOUND = "FEES_NOT_FOUND"  # nothing uploaded (or left) to cancel or to settle
FEES_SETTLED = "FEES_SETTLED"  # settled fees cannot be cancelled: cancel the settlement first
PRE_SETTLEMENT_REQUIRED = "PRE_SETTLEMENT_REQUIRED"  # no pre-settlement of exactly the fees now uploaded
ALREADY_SETTLED = "ALREADY_SETTLED"
SETTLEMENT_NOT_FOUND = "SETTLEMENT_NOT_FOUND"
WRONG_VISIT_KIND = "WRONG_VISIT_KIND"  # an outpatient transaction on an admission, or the reverse
NOT_DISCHARGED = "NOT_DISCHARGED"  # inpatient settlement before discharge (2402)
ALREADY_DISCHARGED = "ALREADY_DISCHARGED"
ALREADY_ADMITTED = "ALREADY_ADMITTED"  # the person is already in a stay here
VISIT_HAS_FEES = "VISIT_HAS_FEES"  # an admission with uploaded fees cannot be cancelled

# Transaction numbers (infno).
SIGN_IN = "9001"
PERSON_INFO = "1101"
REGISTER = "2201"
CANCEL_REGISTRATION = "2202"
REVERSE = "2601"
VISIT_INFO = "2203"
FEE_UPLOAD = "2204"
FEE_CANCEL = "2205"
PRE_SETTLE = "2206"
SETTLE = "2207"
CANCEL_SETTLEMENT = "2208"
INPATIENT_FEE_UPLOAD = "2301"
INPATIENT_FEE_CANCEL = "2302"
INPATIENT_PRE_SETTLE = "2303"
INPATIENT_SETTLE = "2304"
INPATIENT_CANCEL_SETTLEMENT = "2305"
ADMIT = "2401"
DISCHARGE = "2402"
CHANGE_ADMISSION = "2403"
CANCEL_ADMISSION = "2404"
CANCEL_DISCHARGE = "2405"
RECONCILE_TOTALS = "3201"
RECONCILE_DETAILS = "3202"
CHRONIC_DISEASES = "5301"
ALL_FEES = "0000"  # a 2205 chrg_bchno or 2302 feedetl_sn that cancels every unsettled line of the visit

# Fee item classes (chrgitm_lv 收费项目等级).
CLASS_A = "01"  # 甲类: wholly within the insurance scope
CLASS_B = "02"  # 乙类: the patient first pays a share (selfpay_prop), the rest is in scope
CLASS_C = "03"  # 丙类 / 自费: wholly the patient's

# Clearing types (clr_type), which the reconciliation is split by.
CLR_OUTPATIENT = "11"
CLR_INPATIENT = "21"

# Reconciliation results (stmt_rslt).
STMT_MATCH = "0"
STMT_MISMATCH = "1"

# Medical certificate types (mdtrt_cert_type).
CERT_ECERT = "01"  # the medical insurance e-certificate (医保电子凭证)
CERT_RESIDENT_ID = "02"
CERT_SOCIAL_SECURITY_CARD = "03"


class OutcomeUnknown(SourceUnavailable):
    """The platform did not answer a write: reverse ``msgid`` (of transaction ``infno``) with 2601."""

    def __init__(self, source: str, message: str, *, msgid: str, infno: str) -> None:
        super().__init__(source, message)
        self.msgid = msgid
        self.infno = infno


@dataclass(frozen=True, slots=True)
class SignIn:
    sign_no: str
    sign_time: datetime


@dataclass(frozen=True, slots=True)
class Insurance:
    insutype: str  # e.g. 310 employee basic medical insurance, 390 urban-rural resident
    psn_type: str
    balance_fen: int  # the personal account balance (balc)
    insuplc_admdvs: str  # where the person is insured; later calls about them carry it
    active: bool


@dataclass(frozen=True, slots=True)
class Person:
    psn_no: str
    psn_name: str
    psn_cert_type: str
    certno: str
    gender: str
    insurances: tuple[Insurance, ...]


@dataclass(frozen=True, slots=True)
class VisitRequest:
    """An outpatient registration (2201): who, under which insurance, with which doctor."""

    psn_no: str
    insutype: str
    insuplc_admdvs: str
    begntime: datetime
    mdtrt_cert_type: str
    mdtrt_cert_no: str
    ipt_otp_no: str  # the hospital's outpatient number for this visit
    atddr_no: str
    dr_name: str
    dept_code: str
    dept_name: str
    caty: str


@dataclass(frozen=True, slots=True)
class Visit:
    mdtrt_id: str
    psn_no: str
    ipt_otp_no: str
    msgid: str  # the 2201 message that created it, for a reversal


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """One diagnosis of a visit or a stay (diseinfo)."""

    diag_type: str  # 1 western medicine, 2 TCM main disease, 3 TCM syndrome
    diag_srt_no: int  # its order; 1 is the main one
    diag_code: str  # ICD-10 (医保版)
    diag_name: str
    diag_dept: str
    dise_dor_no: str
    dise_dor_name: str
    diag_time: datetime


@dataclass(frozen=True, slots=True)
class VisitInfo:
    """2203: what the outpatient visit was for, sent after registering and before the fees."""

    mdtrt_id: str
    psn_no: str
    insuplc_admdvs: str
    med_type: str  # 11 general outpatient, 14 chronic/special disease outpatient (门慢门特), ...
    begntime: datetime
    main_cond_dscr: str
    dise_codg: str
    dise_name: str
    diagnoses: tuple[Diagnosis, ...]


@dataclass(frozen=True, slots=True)
class FeeLine:
    """One fee line (feedetail) of 2204 or 2301; ``det_item_fee_sumamt_fen`` must be cnt × pric."""

    feedetl_sn: str  # the hospital's line number, unique within the visit
    fee_ocur_time: datetime
    med_list_codg: str  # the national catalogue code, which decides the class
    medins_list_codg: str  # the hospital's own item code
    cnt: Decimal
    pric_fen: int
    det_item_fee_sumamt_fen: int
    bilg_dept_codg: str
    bilg_dept_name: str
    bilg_dr_codg: str
    bilg_dr_name: str


@dataclass(frozen=True, slots=True)
class FeeUpload:
    mdtrt_id: str
    psn_no: str
    insuplc_admdvs: str
    lines: tuple[FeeLine, ...]
    chrg_bchno: str = ""  # outpatient: the charge batch, which 2205 cancels and 2206/2207 settle
    med_type: str = ""  # inpatient lines carry the stay's med_type


@dataclass(frozen=True, slots=True)
class FeeClassification:
    """The platform's answer for one uploaded line: how much of it insurance will consider."""

    feedetl_sn: str
    det_item_fee_sumamt_fen: int
    chrgitm_lv: str  # CLASS_A, CLASS_B, CLASS_C
    selfpay_prop: Decimal  # the share the patient pays first (B), 1 for C, 0 for A
    fulamt_ownpay_amt_fen: int  # wholly own pay (C)
    preselfpay_amt_fen: int  # paid first by the patient (B × selfpay_prop)
    inscp_scp_amt_fen: int  # within the insurance scope


@dataclass(frozen=True, slots=True)
class SettlementRequest:
    """2206/2207 (outpatient, fees of ``chrg_bchno``) and 2303/2304 (inpatient, all the stay's fees)."""

    mdtrt_id: str
    psn_no: str
    insutype: str
    insuplc_admdvs: str
    med_type: str
    mdtrt_cert_type: str
    mdtrt_cert_no: str
    medfee_sumamt_fen: int  # must be the sum of the fees being settled
    acct_used_flag: bool = True  # the personal account pays what it can
    chrg_bchno: str = ""
    psn_setlway: str = "01"  # 01 by item, 02 by quota


@dataclass(frozen=True, slots=True)
class Settlement:
    """A settlement's split (setlinfo). ``setl_id`` is empty for a pre-settlement; a settlement
    cancel answers with its own record, every amount negated. The parts add up:
    medfee_sumamt = fund_pay_sumamt + acct_pay + acct_mulaid_pay + psn_cash_pay."""

    setl_id: str
    mdtrt_id: str
    psn_no: str
    insutype: str
    med_type: str
    clr_type: str  # CLR_OUTPATIENT, CLR_INPATIENT
    setl_time: datetime
    medfee_sumamt_fen: int
    fulamt_ownpay_amt_fen: int
    preselfpay_amt_fen: int
    inscp_scp_amt_fen: int
    act_pay_dedc_fen: int  # the deductible this settlement bore (起付线)
    hifp_pay_fen: int  # the pooled fund (统筹基金)
    fund_pay_sumamt_fen: int  # all funds; only the pooled fund in the sandbox
    psn_part_amt_fen: int  # the person's part: medfee_sumamt - fund_pay_sumamt
    acct_pay_fen: int  # personal account
    acct_mulaid_pay_fen: int  # family mutual-aid account (共济)
    psn_cash_pay_fen: int
    balc_fen: int  # the personal account balance after it (for a pre-settlement: now)
    msgid: str  # the message that made it, for a reversal


@dataclass(frozen=True, slots=True)
class AdmissionRequest:
    """2401: an inpatient stay begins; 2403 changes these details of an admission."""

    psn_no: str
    insutype: str
    insuplc_admdvs: str
    med_type: str  # 21 general inpatient, ...
    begntime: datetime
    mdtrt_cert_type: str
    mdtrt_cert_no: str
    ipt_no: str  # the hospital's inpatient number
    medrcdno: str
    atddr_no: str
    chfpdr_name: str
    adm_diag_dscr: str
    adm_dept_codg: str
    adm_dept_name: str
    adm_bed: str
    dscg_maindiag_code: str
    dscg_maindiag_name: str
    diagnoses: tuple[Diagnosis, ...] = ()


@dataclass(frozen=True, slots=True)
class DischargeRequest:
    """2402."""

    mdtrt_id: str
    psn_no: str
    insutype: str
    insuplc_admdvs: str
    endtime: datetime
    dise_codg: str
    dise_name: str
    dscg_way: str  # 1 on medical advice, 2 transfer, ... 5 death
    dscg_dept_codg: str
    dscg_dept_name: str
    diagnoses: tuple[Diagnosis, ...] = ()


@dataclass(frozen=True, slots=True)
class ReconciliationTotals:
    """3201: the hospital's totals for a clearing type over Beijing dates ``begndate``..``enddate``
    (settlements not cancelled, by their setl_time)."""

    insutype: str
    clr_type: str
    setl_optins: str  # the clearing agency's division (the insured place)
    stmt_begndate: date
    stmt_enddate: date
    medfee_sumamt_fen: int
    fund_pay_sumamt_fen: int
    acct_pay_fen: int
    fixmedins_setl_cnt: int


@dataclass(frozen=True, slots=True)
class ReconciliationResult:
    stmt_rslt: str  # STMT_MATCH or STMT_MISMATCH
    stmt_rslt_dscr: str


@dataclass(frozen=True, slots=True)
class SettlementEntry:
    """One settlement in the hospital's books, for 3202."""

    setl_id: str
    mdtrt_id: str
    psn_no: str
    medfee_sumamt_fen: int
    fund_pay_sumamt_fen: int
    acct_pay_fen: int


@dataclass(frozen=True, slots=True)
class EntryDifference:
    """A 3202 difference: ``stmt_rslt`` 1 the platform has it and the hospital does not, 2 the
    hospital has it and the platform does not (or it is cancelled there), 3 amounts differ."""

    setl_id: str
    stmt_rslt: str
    memo: str


ONLY_PLATFORM = "1"
ONLY_HOSPITAL = "2"
AMOUNTS_DIFFER = "3"


@dataclass(frozen=True, slots=True)
class ChronicDisease:
    """A chronic or special disease filed for the person (门慢门特备案)."""

    opsp_dise_code: str
    opsp_dise_name: str
    begndate: date
    enddate: date | None


class InsurancePlatform(Protocol):
    async def sign_in(self, opter_no: str, mac: str, ip: str) -> SignIn: ...
    async def person_info(self, cert_type: str, cert_no: str, psn_name: str) -> Person: ...
    async def register(self, visit: VisitRequest) -> Visit: ...
    async def cancel_registration(
        self, *, psn_no: str, mdtrt_id: str, ipt_otp_no: str, insuplc_admdvs: str
    ) -> None: ...
    async def reverse(self, *, psn_no: str, omsgid: str, oinfno: str, insuplc_admdvs: str) -> None:
        """Undo the message ``omsgid`` whatever its outcome was; refuses a msgid that never arrived."""
        ...

    # Outpatient settlement ---------------------------------------------------------------------
    async def upload_visit_info(self, info: VisitInfo) -> None:
        """2203."""
        ...

    async def upload_fees(self, upload: FeeUpload) -> tuple[FeeClassification, ...]:
        """2204: all lines or none; refuses a line number already uploaded, an unknown catalogue code,
        and a line whose amount is not cnt × pric."""
        ...

    async def cancel_fees(self, *, psn_no: str, mdtrt_id: str, chrg_bchno: str, insuplc_admdvs: str) -> None:
        """2205: the batch's lines, refused when settled; ``ALL_FEES`` withdraws every unsettled line."""
        ...

    async def pre_settle(self, request: SettlementRequest) -> Settlement:
        """2206: the split, without moving money."""
        ...

    async def settle(self, request: SettlementRequest) -> Settlement:
        """2207: refused without a pre-settlement of exactly the fees uploaded now."""
        ...

    async def cancel_settlement(self, *, psn_no: str, mdtrt_id: str, setl_id: str, insuplc_admdvs: str) -> Settlement:
        """2208: gives the personal and family accounts back; answers the cancel record (negative)."""
        ...

    # Inpatient -------------------------------------------------------------------------------------
    async def admit(self, admission: AdmissionRequest) -> Visit:
        """2401: the stay's ``mdtrt_id`` (its ``ipt_otp_no`` is the ipt_no)."""
        ...

    async def discharge(self, discharge: DischargeRequest) -> None:
        """2402."""
        ...

    async def change_admission(self, mdtrt_id: str, admission: AdmissionRequest) -> None:
        """2403: refused once discharged."""
        ...

    async def cancel_admission(self, *, psn_no: str, mdtrt_id: str, insuplc_admdvs: str) -> None:
        """2404: refused while the stay has fees (cancel them with 2302 first)."""
        ...

    async def cancel_discharge(self, *, psn_no: str, mdtrt_id: str, insuplc_admdvs: str) -> None:
        """2405: refused while the stay is settled."""
        ...

    async def upload_inpatient_fees(self, upload: FeeUpload) -> tuple[FeeClassification, ...]:
        """2301."""
        ...

    async def cancel_inpatient_fees(
        self, *, psn_no: str, mdtrt_id: str, feedetl_sn: str, insuplc_admdvs: str
    ) -> None:
        """2302: one line, or every unsettled line with ``ALL_FEES``."""
        ...

    async def pre_settle_inpatient(self, request: SettlementRequest) -> Settlement:
        """2303."""
        ...

    async def settle_inpatient(self, request: SettlementRequest) -> Settlement:
        """2304: after discharge and a pre-settlement of exactly the fees uploaded now."""
        ...

    async def cancel_inpatient_settlement(
        self, *, psn_no: str, mdtrt_id: str, setl_id: str, insuplc_admdvs: str
    ) -> Settlement:
        """2305."""
        ...

    # Reconciliation and records ------------------------------------------------------------------
    async def reconcile_totals(self, totals: ReconciliationTotals) -> ReconciliationResult:
        """3201."""
        ...

    async def reconcile_details(
        self, totals: ReconciliationTotals, entries: tuple[SettlementEntry, ...]
    ) -> tuple[EntryDifference, ...]:
        """3202: the settlements of the period (and clearing type) that differ; empty when all agree."""
        ...

    async def chronic_diseases(self, *, psn_no: str, insuplc_admdvs: str) -> tuple[ChronicDisease, ...]:
        """5301."""
        ...
