"""HIS inpatient department (住院): admission notices, beds, stays, their daily fees, discharge and
the discharge settlement, as the hospital's HIS keeps them.

A doctor issues an admission notice (入院通知单 / 住院证) whose code is printed as a QR payload; the
patient (or a kiosk, 医保综合服务终端) admits with it and takes a free bed of the notice's ward, which is
locked to the stay at once (like a registration slot: two admissions racing for one bed, one wins).
The stay is SELF_PAY or INSURANCE; for INSURANCE the BFF first opens the national platform's visit
(2401) and hands its ``mdtrt_id`` here, and a self-pay stay can be converted later (自费转医保).

The wards charge the stay every day (日清单); those lines are what the BFF uploads to the insurance
platform (2301: ``FeeItem.id`` is the ``feedetl_sn``, ``code`` the ``medins_list_codg``,
``insurance_code`` the ``med_list_codg``). Discharge registration (出院登记) freezes the fees and frees
the bed; it can be undone (召回) until the stay is settled. The settlement is written back after the
insurance platform's 2304 and any payment at the channel: the insurance parts, what the stay's
inpatient deposit (``HISBilling``'s INPATIENT account of this ``admission_id``) pays, what was paid at
discharge, and the surplus left in that deposit for the BFF to refund (``HISBilling.refund_deposit``,
top-up by top-up, by the route it came). The settlement is also a payment of ``HISBilling.ledger``
under its reference (what the daily reconciliation matches the channel's bill with), so a refund of
the part paid at discharge is written back with ``HISBilling.refund`` naming it.
``cancel_settlement`` is the compensation when a later step of the BFF's flow fails.

Every write names the BFF's own reference and is idempotent per reference, across all the writes
of this contract: the same reference with the same content returns the first answer, with other
content it is refused (``REFERENCE_REUSED``). Each write is all or none. Refusals are
``SourceRejected("his", code)`` with the codes below; money is integer fen.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

# Stable rejection codes.
NOTICE_NOT_FOUND = "NOTICE_NOT_FOUND"
NOTICE_EXPIRED = "NOTICE_EXPIRED"  # past its valid_until, and not used
NOTICE_USED = "NOTICE_USED"  # a stay was already admitted with it
PATIENT_MISMATCH = "PATIENT_MISMATCH"  # the notice was issued to another patient
WARD_NOT_FOUND = "WARD_NOT_FOUND"
BED_NOT_FOUND = "BED_NOT_FOUND"  # no such bed in the notice's ward
ALREADY_IN_HOSPITAL = "ALREADY_IN_HOSPITAL"  # the patient has a stay not yet settled (one stay at a time)
BED_TAKEN = "BED_TAKEN"  # another stay holds it (also when undoing a discharge whose bed went to another)
INSURANCE_VISIT_REQUIRED = "INSURANCE_VISIT_REQUIRED"  # INSURANCE needs the 2401 mdtrt_id; SELF_PAY has none
INVALID_ADMISSION_TYPE = "INVALID_ADMISSION_TYPE"
ADMISSION_NOT_FOUND = "ADMISSION_NOT_FOUND"
ALREADY_INSURED = "ALREADY_INSURED"  # convert_to_insurance on an INSURANCE stay
NOT_ADMITTED = "NOT_ADMITTED"  # the write needs status ADMITTED (discharge registration, conversion)
INVALID_DISCHARGE_TIME = "INVALID_DISCHARGE_TIME"  # before the admission
NOT_DISCHARGE_REGISTERED = "NOT_DISCHARGE_REGISTERED"  # settle / undo_discharge on a stay not discharge-registered
ALREADY_SETTLED = "ALREADY_SETTLED"  # undo_discharge or another settlement of a settled stay
SETTLEMENT_NOT_FOUND = "SETTLEMENT_NOT_FOUND"  # cancel_settlement names no settlement in force of the stay
AMOUNT_MISMATCH = "AMOUNT_MISMATCH"  # total is not the fees' total, the parts do not add up, or no channel
INSURANCE_MISMATCH = "INSURANCE_MISMATCH"  # insurance parts or setl_id on a self-pay stay, no setl_id on an insured one
INSUFFICIENT_DEPOSIT = "INSUFFICIENT_DEPOSIT"  # deposit_used_fen beyond the stay's deposit balance
REFERENCE_REUSED = "REFERENCE_REUSED"

# Admission types.
SELF_PAY = "SELF_PAY"
INSURANCE = "INSURANCE"

# Stay states.
ADMITTED = "ADMITTED"
DISCHARGE_REGISTERED = "DISCHARGE_REGISTERED"
SETTLED = "SETTLED"

# Settlement states.
IN_FORCE = "IN_FORCE"
CANCELLED = "CANCELLED"

# Fee categories: the national medChrgitmType (医疗收费项目类别) codes, as 2301 and the 日清单 use them.
BED = "01"  # 床位费
EXAMINATION = "02"  # 诊察费
CHECKUP = "03"  # 检查费
LABORATORY = "04"  # 化验费
TREATMENT = "05"  # 治疗费
SURGERY = "06"  # 手术费
NURSING = "07"  # 护理费
SANITARY_MATERIALS = "08"  # 卫生材料费
WESTERN_MEDICINE = "09"  # 西药费
HERBAL_PIECES = "10"  # 中药饮片费
CHINESE_PATENT_MEDICINE = "11"  # 中成药费
GENERAL_SERVICES = "12"  # 一般诊疗费
REGISTRATION = "13"  # 挂号费
OTHER = "14"  # 其他费
CATEGORIES = (
    BED,
    EXAMINATION,
    CHECKUP,
    LABORATORY,
    TREATMENT,
    SURGERY,
    NURSING,
    SANITARY_MATERIALS,
    WESTERN_MEDICINE,
    HERBAL_PIECES,
    CHINESE_PATENT_MEDICINE,
    GENERAL_SERVICES,
    REGISTRATION,
    OTHER,
)


@dataclass(frozen=True, slots=True)
class Ward:
    id: str
    name: str
    department_id: str
    department_name: str


@dataclass(frozen=True, slots=True)
class Bed:
    id: str
    ward_id: str
    bed_no: str  # as printed on the wristband and 2401's adm_bed, e.g. "12"
    room: str
    daily_fee_fen: int


@dataclass(frozen=True, slots=True)
class AdmissionNotice:
    """入院通知单 / 住院证: what a doctor decided, valid until ``valid_until``."""

    code: str  # the QR payload printed on the notice
    his_patient_id: str
    department_id: str
    department_name: str
    ward_id: str
    ward_name: str
    doctor_id: str
    doctor_name: str
    diagnosis_code: str  # ICD-10, "" when the doctor gave text only
    diagnosis: str  # 入院诊断, 2401's adm_diag_dscr
    issued_at: datetime
    valid_until: datetime


@dataclass(frozen=True, slots=True)
class Admission:
    """A stay. ``admission_id`` is the inpatient number (住院号, 2401's ipt_no)."""

    admission_id: str
    his_patient_id: str
    notice_code: str
    admission_type: str  # SELF_PAY or INSURANCE
    insurance_visit_id: str | None  # the platform's mdtrt_id, for INSURANCE
    status: str  # ADMITTED, DISCHARGE_REGISTERED, SETTLED
    admitted_at: datetime
    department_id: str
    department_name: str
    ward_id: str
    ward_name: str
    bed_id: str  # the bed it holds, or held once discharge-registered
    bed_no: str
    doctor_id: str
    doctor_name: str
    diagnosis_code: str
    diagnosis: str
    discharged_at: datetime | None  # set by discharge registration, cleared by its undo
    discharge_diagnosis: str  # "" until discharge registration


@dataclass(frozen=True, slots=True)
class FeeItem:
    """One line of the daily list (日清单); ``amount_fen`` is quantity × unit price."""

    id: str  # the line number, unique within the hospital: 2301's feedetl_sn
    admission_id: str
    day: date  # the day charged, Asia/Shanghai
    charged_at: datetime  # 2301's fee_ocur_time
    category: str  # medChrgitmType, BED ... OTHER
    code: str  # the HIS charge item code (medins_list_codg)
    name: str
    spec: str  # 规格, "" when none
    unit: str
    quantity: str  # decimal text, e.g. "1" or "0.5"
    unit_price_fen: int
    amount_fen: int
    insurance_code: str  # the national catalogue code (med_list_codg), "" when not covered
    insurance_class: str  # 甲 / 乙 / 丙 as "A" / "B" / "C", "" when not covered
    department_id: str  # who billed it (bilg_dept_codg / bilg_dr_codg)
    department_name: str
    doctor_id: str
    doctor_name: str


@dataclass(frozen=True, slots=True)
class CategoryTotal:
    category: str
    amount_fen: int


@dataclass(frozen=True, slots=True)
class FeeList:
    """The stay's fees so far (or final, once discharge-registered: ``frozen``)."""

    admission_id: str
    items: tuple[FeeItem, ...]  # by time charged, then line number
    total_fen: int  # the sum of the items
    by_category: tuple[CategoryTotal, ...]  # categories with fees, in code order
    frozen: bool


@dataclass(frozen=True, slots=True)
class InpatientSettlement:
    """The discharge settlement, written back by the BFF.

    ``fund_fen + personal_account_fen + family_account_fen + deposit_used_fen + self_pay_fen ==
    total_fen`` (the fee list's total), and ``surplus_fen`` is the deposit's balance left after
    ``deposit_used_fen``; a part paid at the channel means the deposit was used up (surplus 0).
    """

    reference: str  # the BFF's, unique
    total_fen: int
    fund_fen: int  # 统筹基金 (2304 fund_pay_sumamt)
    personal_account_fen: int  # 个人账户 (acct_pay)
    family_account_fen: int  # 家庭共济 (acct_mulaid_pay)
    deposit_used_fen: int  # taken from the stay's inpatient deposit
    self_pay_fen: int  # paid at discharge by a channel
    surplus_fen: int  # deposit left over, for the BFF to refund
    insurance_settlement_id: str  # 2304's setl_id; "" for a self-pay stay
    self_pay_channel: str = ""  # HISBilling's channel codes (WECHAT_PAY ...); required with self_pay_fen
    channel_trade_no: str = ""
    settled_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class DischargeReceipt:
    """A settlement as the HIS recorded it, with its receipt and e-invoice (电子票据)."""

    reference: str
    receipt_no: str
    admission_id: str
    his_patient_id: str
    status: str  # IN_FORCE or CANCELLED
    total_fen: int
    fund_fen: int
    personal_account_fen: int
    family_account_fen: int
    deposit_used_fen: int
    self_pay_fen: int
    surplus_fen: int
    insurance_settlement_id: str
    settled_at: datetime
    invoice_url: str
    cancelled_at: datetime | None
    cancel_reference: str | None


@dataclass(frozen=True, slots=True)
class SettlementCancellation:
    reference: str  # the cancellation's own reference
    settlement_reference: str
    admission_id: str
    deposit_restored_fen: int  # what went back into the stay's deposit
    cancelled_at: datetime


class HISInpatient(Protocol):
    async def admission_notice(self, code: str) -> AdmissionNotice:
        """The notice behind a scanned QR code, if it can still be used (NOTICE_NOT_FOUND,
        NOTICE_EXPIRED, NOTICE_USED)."""
        ...

    async def free_beds(self, ward_id: str) -> list[Bed]:
        """The ward's beds no stay holds, by bed number (WARD_NOT_FOUND)."""
        ...

    async def admit(
        self,
        notice_code: str,
        *,
        his_patient_id: str,
        bed_id: str,
        admission_type: str,
        insurance_visit_id: str | None,
        reference: str,
    ) -> Admission:
        """HIS admission (入院登记) with the notice of this patient, into a free bed of its ward: the
        notice is used and the bed held by the new stay, all or none (BED_TAKEN when another stay
        got it first; ALREADY_IN_HOSPITAL while another stay of the patient is not settled)."""
        ...

    async def convert_to_insurance(self, admission_id: str, insurance_visit_id: str, reference: str) -> Admission:
        """A self-pay stay becomes an insured one (自费转医保 / 医保补充入院登记) while still ADMITTED;
        the BFF opened the platform's visit (2401) and uploads the fees so far itself."""
        ...

    async def admission(self, admission_id: str) -> Admission:
        """ADMISSION_NOT_FOUND when unknown."""
        ...

    async def admissions_of(self, his_patient_ids: list[str]) -> list[Admission]:
        """Every stay of these patients, the latest first."""
        ...

    async def fee_items(self, admission_id: str) -> FeeList:
        """The daily list (日清单) of the stay (ADMISSION_NOT_FOUND)."""
        ...

    async def register_discharge(
        self, admission_id: str, *, discharged_at: datetime, diagnosis: str, reference: str
    ) -> Admission:
        """出院登记: the fees are frozen and the bed freed; status DISCHARGE_REGISTERED."""
        ...

    async def undo_discharge(self, admission_id: str, reference: str) -> Admission:
        """撤销出院登记: back to ADMITTED, the bed held again (BED_TAKEN if another stay has it);
        refused once settled (ALREADY_SETTLED)."""
        ...

    async def settle(self, admission_id: str, settlement: InpatientSettlement) -> DischargeReceipt:
        """Records the discharge settlement (HIS出院费用结算回写): the deposit part leaves the stay's
        inpatient deposit, the stay becomes SETTLED."""
        ...

    async def cancel_settlement(
        self, admission_id: str, *, settlement_reference: str, reference: str
    ) -> SettlementCancellation:
        """Cancels the settlement ``settlement_reference`` (the BFF's compensation when a later step
        fails, or after the platform's 2305): the deposit part goes back to the deposit, the stay is
        DISCHARGE_REGISTERED again. ``reference`` is the cancellation's own."""
        ...

    async def settlements_by_references(self, references: list[str]) -> list[DischargeReceipt]:
        """The settlements of these references (cancelled ones too), to learn whether a write-back
        that timed out arrived; unknown references are left out."""
        ...
