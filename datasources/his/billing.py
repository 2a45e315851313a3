"""HIS billing (收费): what a patient owes and what they paid, as the HIS keeps it.

The HIS is the ledger of record for fees: outpatient bills waiting to be paid (待缴费: prescriptions,
lab and exam orders, treatments, each with its items), registration fees, deposits (预交金) and
arrears (欠费). The BFF collects money through the channels and the insurance platform, then
writes the result back here; the HIS never sees a channel itself.

Every write names the BFF's own reference (the payment or refund number) and is idempotent per
reference: the same reference with the same content returns the first answer, with other content
it is refused (``REFERENCE_REUSED``). A payment's parts must add up: ``total_fen`` equals the sum of
the bills (or the registration's fee) and ``self_pay_fen + fund_fen + personal_account_fen +
family_account_fen + deposit_fen == total_fen``; otherwise ``AMOUNT_MISMATCH``.

Money is integer fen. Refusals are ``SourceRejected("his", code)`` with the codes below.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

# Stable rejection codes.
BILL_NOT_FOUND = "BILL_NOT_FOUND"
BILL_NOT_PAYABLE = "BILL_NOT_PAYABLE"  # already paid, refunded or voided
BILLS_OF_SEVERAL_PATIENTS = "BILLS_OF_SEVERAL_PATIENTS"  # one payment covers one patient's bills
AMOUNT_MISMATCH = "AMOUNT_MISMATCH"  # the parts do not add up, or the total is not the bills' sum
REFERENCE_REUSED = "REFERENCE_REUSED"  # a reference sent again with other content
REGISTRATION_NOT_PAYABLE = "REGISTRATION_NOT_PAYABLE"  # cancelled, expired, already paid, or free
PAYMENT_NOT_FOUND = "PAYMENT_NOT_FOUND"  # a refund names a payment the HIS never recorded
NOT_REFUNDABLE = "NOT_REFUNDABLE"  # an item was already dispensed or performed (已发药/已执行)
REFUND_EXCEEDS_PAID = "REFUND_EXCEEDS_PAID"
DEPOSIT_ACCOUNT_NOT_FOUND = "DEPOSIT_ACCOUNT_NOT_FOUND"
INSUFFICIENT_DEPOSIT = "INSUFFICIENT_DEPOSIT"

# Bill categories (the seed's 处方 / 检验 / 检查 / 治疗).
PRESCRIPTION = "PRESCRIPTION"
LAB = "LAB"
EXAM = "EXAM"
TREATMENT = "TREATMENT"

# Bill states.
UNPAID = "UNPAID"
PAID = "PAID"
REFUNDED = "REFUNDED"
VOIDED = "VOIDED"

# How money reached the HIS (PaymentRecord.channel).
WECHAT_PAY = "WECHAT_PAY"
ALIPAY = "ALIPAY"
INSURANCE = "INSURANCE"  # insurance only, nothing self-paid
MIXED = "MIXED"  # insurance and a self-paid part in one order
DEPOSIT = "DEPOSIT"  # taken from the patient's deposit
KIOSK_CARD = "KIOSK_CARD"  # bank card at a kiosk

# Deposit accounts.
OUTPATIENT = "OUTPATIENT"
INPATIENT = "INPATIENT"


@dataclass(frozen=True, slots=True)
class BillItem:
    code: str  # the HIS charge item code
    name: str
    spec: str  # 规格, "" when none
    unit: str
    quantity: str  # decimal text, e.g. "2" or "0.5"
    unit_price_fen: int
    amount_fen: int
    insurance_code: str  # the national insurance catalogue code, "" when not covered
    insurance_class: str  # 甲 / 乙 / 丙 as "A" / "B" / "C"


@dataclass(frozen=True, slots=True)
class Bill:
    id: str
    his_patient_id: str
    card_no: str
    registration_id: str | None  # the visit that ordered it
    department_id: str
    doctor_id: str
    category: str
    title: str
    total_fen: int  # always the sum of the items
    items: tuple[BillItem, ...]
    status: str
    created_at: datetime
    paid_at: datetime | None
    payment_reference: str | None
    executed: bool  # dispensed or performed: no longer refundable


@dataclass(frozen=True, slots=True)
class PaymentRecord:
    """What the BFF collected, written back to the HIS."""

    reference: str  # the BFF's payment number, unique
    channel: str
    total_fen: int
    self_pay_fen: int
    fund_fen: int = 0  # 统筹基金
    personal_account_fen: int = 0  # 个人账户
    family_account_fen: int = 0  # 家庭共济账户
    deposit_fen: int = 0
    channel_trade_no: str = ""  # the channel's transaction id, "" when none
    insurance_settlement_id: str = ""  # setl_id / payOrdId, "" when none
    paid_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Receipt:
    reference: str
    receipt_no: str  # the HIS's own receipt number (发票/收据号)
    his_patient_id: str
    bill_ids: tuple[str, ...]
    registration_id: str | None
    total_fen: int
    paid_at: datetime
    invoice_url: str  # the e-invoice (电子票据) link


@dataclass(frozen=True, slots=True)
class RefundRecord:
    """A refund the BFF made, written back: by the original route, each part to its own."""

    reference: str  # the BFF's refund number, unique
    payment_reference: str
    amount_fen: int
    self_pay_fen: int
    insurance_fen: int  # fund + personal + family accounts, returned by the platform
    reason: str
    refunded_at: datetime | None = None
    bill_ids: tuple[str, ...] = ()  # the bills refunded; empty for a registration or a deposit


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One line of the HIS's cash ledger for a day, as reconciliation reads it."""

    kind: str  # PAYMENT or REFUND
    reference: str
    payment_reference: str  # = reference for a payment
    channel: str
    amount_fen: int
    self_pay_fen: int
    channel_trade_no: str
    receipt_no: str
    at: datetime


@dataclass(frozen=True, slots=True)
class DepositAccount:
    his_patient_id: str
    kind: str  # OUTPATIENT or INPATIENT
    admission_id: str | None  # the stay an inpatient deposit belongs to
    balance_fen: int
    arrears_fen: int  # owed to the hospital (本院欠费); a top-up clears it first


class HISBilling(Protocol):
    async def pending_bills(self, his_patient_ids: list[str]) -> list[Bill]:
        """The unpaid bills of these patients, oldest first."""
        ...

    async def bills_by_ids(self, ids: list[str]) -> list[Bill]:
        """Unknown ids are left out."""
        ...

    async def pay_bills(self, bill_ids: list[str], payment: PaymentRecord) -> Receipt:
        """Marks the bills paid, all or none."""
        ...

    async def pay_registration(self, registration_id: str, payment: PaymentRecord) -> Receipt:
        """The registration fee paid: its payment status becomes PAID and its hold ends."""
        ...

    async def refund(self, refund: RefundRecord) -> RefundRecord:
        """Records a refund of an earlier payment: its bills become REFUNDED (refused for executed
        ones), a registration's payment status REFUNDED; never more than was paid."""
        ...

    async def receipts_by_references(self, references: list[str]) -> list[Receipt]:
        """The receipts of earlier write-backs, to learn whether one arrived."""
        ...

    async def ledger(self, day: date) -> list[LedgerEntry]:
        """Payments and refunds recorded on ``day`` (Asia/Shanghai)."""
        ...

    async def deposit_accounts(self, his_patient_ids: list[str]) -> list[DepositAccount]:
        """Every patient has an outpatient account (created on first use); inpatients one per stay."""
        ...

    async def top_up_deposit(
        self, his_patient_id: str, kind: str, admission_id: str | None, payment: PaymentRecord
    ) -> DepositAccount:
        """Adds to the balance after clearing arrears; idempotent per ``payment.reference``."""
        ...

    async def refund_deposit(
        self, his_patient_id: str, kind: str, admission_id: str | None, refund: RefundRecord
    ) -> DepositAccount:
        """Takes a surplus out of the balance (INSUFFICIENT_DEPOSIT beyond it)."""
        ...
