"""Mobile insurance payment 2.0 (医保移动支付 2.0): the insured patient pays from a mini-program.

The flow: the patient authorizes on the platform's page (``authorize_url``), which redirects back
with an ``authCode``; ``authorization`` turns it into a ``payAuthNo`` and the insured person's
identity. 6201 (``upload_fees``) uploads the visit's fee items and gets the split (pooled fund,
personal account, family account, own pay) with ``payOrdId``/``payToken``; 6202 (``place_order``)
pays the insurance part; 6203 (``refund``) gives the whole insurance part back; 6301 (``query``)
reads the order; 6401 (``cancel_upload``) withdraws an upload not yet ordered. The own-pay part
is paid through a payment channel (WeChat Pay's medical-insurance order), not here.

Amounts are integer fen. How the split is computed is configuration (``SplitRules``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Protocol

# Stable rejection codes (SourceRejected.code).
BAD_SIGNATURE = "BAD_SIGNATURE"
AUTH_CODE_UNKNOWN = "AUTH_CODE_UNKNOWN"
PERSON_NOT_FOUND = "PERSON_NOT_FOUND"
PAY_AUTH_UNKNOWN = "PAY_AUTH_UNKNOWN"
PAY_AUTH_EXPIRED = "PAY_AUTH_EXPIRED"
PAY_AUTH_USED = "PAY_AUTH_USED"
IDENTITY_MISMATCH = "IDENTITY_MISMATCH"
AMOUNT_MISMATCH = "AMOUNT_MISMATCH"
DUPLICATE_ORDER = "DUPLICATE_ORDER"
INSUFFICIENT_PERSONAL_ACCOUNT = "INSUFFICIENT_PERSONAL_ACCOUNT"
ORDER_NOT_FOUND = "ORDER_NOT_FOUND"
PAY_TOKEN_MISMATCH = "PAY_TOKEN_MISMATCH"  # noqa: S105 - a rejection code, not a secret
ALREADY_PAID = "ALREADY_PAID"
NOT_PAID = "NOT_PAID"
ALREADY_REFUNDED = "ALREADY_REFUNDED"
CANCEL_AFTER_ORDER = "CANCEL_AFTER_ORDER"
ALREADY_CANCELLED = "ALREADY_CANCELLED"
BAD_REQUEST = "BAD_REQUEST"

# Order statuses (the platform's ``ordStas`` codes are mapped in wire form by ``transactions.py``).
UPLOADED = "UPLOADED"
PAID = "PAID"
REFUNDED = "REFUNDED"
CANCELLED = "CANCELLED"


@dataclass(frozen=True, slots=True)
class Authorization:
    """What the authorization gives: a single-use ``payAuthNo`` and who the insured person is."""

    pay_auth_no: str
    name: str
    id_no: str
    insurance_area: str  # 参保地 admdvs code, e.g. 440100
    expires_at_epoch: int


@dataclass(frozen=True, slots=True)
class FeeItem:
    seq: str  # feedetlSn, unique within the upload
    code: str  # the item's insurance catalogue code (medListCodg)
    name: str
    category: str  # medChrgitmType: 01 bed, 09 western medicine, ... (keys of SplitRules.fund_ratios)
    amount_fen: int


@dataclass(frozen=True, slots=True)
class FeeUpload:
    pay_auth_no: str
    org_code: str  # orgCodg, the hospital's insurance institution code
    med_org_ord: str  # the hospital's own order number (unique per hospital)
    name: str
    id_no: str
    total_fen: int  # medfeeSumamt: must equal the items' sum
    items: tuple[FeeItem, ...]
    use_personal_account: bool = True  # acctUsedFlag


@dataclass(frozen=True, slots=True)
class Split:
    total_fen: int
    fund_fen: int  # fundPay: pooled fund
    personal_account_fen: int  # psnAcctPay
    family_account_fen: int  # acctMulaidPay: family (mutual aid) account
    own_pay_fen: int  # ownPayAmt: paid in cash through a payment channel

    def __post_init__(self) -> None:
        parts = self.fund_fen + self.personal_account_fen + self.family_account_fen + self.own_pay_fen
        if (
            parts != self.total_fen
            or min(self.fund_fen, self.personal_account_fen, self.family_account_fen, self.own_pay_fen) < 0
        ):
            raise ValueError(f"a split's parts must be non-negative and add up to its total: {self}")


@dataclass(frozen=True, slots=True)
class Order:
    pay_ord_id: str
    med_org_ord: str
    status: str  # UPLOADED, PAID, REFUNDED, CANCELLED
    split: Split


@dataclass(frozen=True, slots=True)
class Uploaded:
    order: Order
    pay_token: str


@dataclass(frozen=True, slots=True)
class Refund:
    pay_ord_id: str
    refund_sn: str  # appRefdSn, the hospital's refund number
    fund_fen: int
    personal_account_fen: int
    family_account_fen: int


@dataclass(frozen=True, slots=True)
class SplitRules:
    """How the platform divides a bill; the sandbox's configuration, never constants in code paths.

    The rule, exactly: for each item, the fund-eligible amount is ``amount × fund_ratios[category]``
    (``default_fund_ratio`` for other categories) rounded down to the fen; the pooled fund pays
    their sum less ``deductible_fen`` (never below zero). Of the rest, the personal account pays
    as much as its balance allows when the upload asks for it, then the family account (when
    ``family_account`` is on) as much as its balance allows; the remainder is own pay. The
    account shares are fixed at upload: an order whose shares exceed the balances at ordering
    time is refused with ``INSUFFICIENT_PERSONAL_ACCOUNT`` and nothing moves.
    """

    fund_ratios: Mapping[str, Decimal] = field(default_factory=dict)
    default_fund_ratio: Decimal = Decimal("0")
    deductible_fen: int = 0
    family_account: bool = False
    auth_ttl_seconds: int = 1800

    def split(
        self,
        items: tuple[FeeItem, ...],
        *,
        personal_balance_fen: int,
        family_balance_fen: int,
        use_personal_account: bool,
    ) -> Split:
        total = sum(item.amount_fen for item in items)
        eligible = sum(
            int(
                (
                    Decimal(item.amount_fen) * self.fund_ratios.get(item.category, self.default_fund_ratio)
                ).to_integral_value(rounding=ROUND_DOWN)
            )
            for item in items
        )
        fund = min(max(eligible - self.deductible_fen, 0), total)
        rest = total - fund
        personal = min(rest, max(personal_balance_fen, 0)) if use_personal_account else 0
        rest -= personal
        family = min(rest, max(family_balance_fen, 0)) if use_personal_account and self.family_account else 0
        return Split(total, fund, personal, family, rest - family)


class MobileInsurance(Protocol):
    """The platform as the hospital's back end sees it."""

    def authorize_url(self, return_url: str, state: str) -> str:
        """The page the mini-program opens; it redirects to ``return_url`` with ``authCode`` and ``state``."""
        ...

    async def authorization(self, auth_code: str) -> Authorization: ...

    async def upload_fees(self, upload: FeeUpload) -> Uploaded:
        """6201: refuses an unknown, expired or used ``payAuthNo`` and a total that is not the items' sum."""
        ...

    async def place_order(self, *, pay_ord_id: str, pay_token: str) -> Order:
        """6202: moves the account shares; refuses when they exceed the balances now."""
        ...

    async def refund(self, *, pay_ord_id: str, refund_sn: str, reason: str) -> Refund:
        """6203: the whole insurance part back to where it came from; a second refund is refused."""
        ...

    async def query(self, *, pay_ord_id: str) -> Order:
        """6301."""
        ...

    async def cancel_upload(self, *, pay_ord_id: str, pay_token: str, reason: str) -> Order:
        """6401: only before the order is placed."""
        ...
