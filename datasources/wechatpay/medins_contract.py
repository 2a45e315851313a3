"""WeChat Pay medical-insurance orders (医保自费混合收款, API v3 ``/v3/med-ins/…``), direct merchant mode.

One order joins what the insured patient pays through the insurance platform (mobile insurance
payment 2.0: the ``pay_order_id`` of 6201 and the ``pay_auth_no`` of the authorization) and what they
pay in cash through an ordinary JSAPI prepay (``prepay_id``, same ``out_trade_no``). The mini-program
opens ``wx.requestMedicalInsurancePay`` with the ``mix_trade_no`` and, when there is cash, the paySign
of that prepay. WeChat Pay settles both parts and calls ``callback_url`` with
``MEDICAL_INSURANCE.SUCCESS`` (signed, resource sealed with AEAD_AES_256_GCM, like every notification).

Refunds: the cash part goes through the ordinary refund API (``WeChatPay.refund``), the insurance
part through 6203 on the insurance platform; then the merchant tells WeChat Pay what the insurance
gave back (``notify_med_ins_refund``: ``POST /v3/med-ins/refunds/notify``, a call, not a callback),
with the ``out_refund_no`` of the cash refund when there is one.

Amounts (``*_fee``) are integer fen, as on the wire. Both documented equations must hold::

    total_fee = gov + self + other + wechat_pay_cash_fee + Σ cash_reduce
              = gov + self + other + med_ins_cash_fee + Σ cash_add
    wechat_pay_cash_fee = med_ins_cash_fee + Σ cash_add − Σ cash_reduce

The payer's name and ID digest travel only as RSA-OAEP ciphertexts under WeChat Pay's public key;
``Person`` keeps them out of ``repr`` so no log line can carry them. Service-provider mode
(``sub_mchid``/``sub_appid``/``sub_openid``) is not supported.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

# Rejection codes besides contract.py's (PARAM_ERROR, SIGN_ERROR, ORDER_NOT_EXIST, INVALID_REQUEST).
RULE_LIMIT = "RULE_LIMIT"  # amounts that do not add up, fields that contradict mix_pay_type
ALREADY_EXISTS = "ALREADY_EXISTS"  # out_trade_no (or out_refund_no) used with other content

MIX_PAY_TYPES = ("CASH_ONLY", "INSURANCE_ONLY", "CASH_AND_INSURANCE")
ORDER_TYPES = (
    "REG_PAY", "DIAG_PAY", "COVID_EXAM_PAY", "IN_HOSP_PAY", "PHARMACY_PAY", "INSURANCE_PAY", "INT_REG_PAY",
    "INT_RE_DIAG_PAY", "INT_RX_PAY", "COVID_ANTIGEN_PAY", "MED_PAY",
)
CARD_TYPES = (
    "ID_CARD", "HOUSEHOLD_REGISTRATION", "FOREIGNER_PASSPORT", "MAINLAND_TRAVEL_PERMIT_FOR_TW",
    "MAINLAND_TRAVEL_PERMIT_FOR_MO", "MAINLAND_TRAVEL_PERMIT_FOR_HK", "FOREIGN_PERMANENT_RESIDENT",
)
CASH_ADD_TYPES = ("DEFAULT_ADD_TYPE", "FREIGHT", "OTHER_MEDICAL_EXPENSES")
CASH_REDUCE_TYPES = (
    "DEFAULT_REDUCE_TYPE", "HOSPITAL_REDUCE", "PHARMACY_DISCOUNT", "DISCOUNT", "PRE_PAYMENT", "DEPOSIT_DEDUCTION",
)
SUCCESS_EVENT = "MEDICAL_INSURANCE.SUCCESS"

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def id_digest(id_no: str, card_type: str = "ID_CARD") -> str:
    """The documented digest: letters upper-cased, a 15-digit resident ID widened to 18, MD5 in
    lower-case hex (``44030019000101123x`` → ``09eb26e839ff3a2e3980352ae45ef09e``)."""
    number = id_no.strip().upper()
    if card_type == "ID_CARD" and len(number) == 15 and number.isdigit():
        body = number[:6] + "19" + number[6:]
        number = body + "10X98765432"[sum(int(d) * w for d, w in zip(body, _WEIGHTS, strict=True)) % 11]
    return hashlib.md5(number.encode(), usedforsecurity=False).hexdigest()


@dataclass(frozen=True, slots=True)
class Person:
    """The payer (or the relative paid for), as the insurance e-voucher knows them. Build it with
    ``Person.of(name, id_no)``: only the digest of the document number is ever kept."""

    name: str = field(repr=False)
    id_digest: str = field(repr=False)
    card_type: str = "ID_CARD"

    @classmethod
    def of(cls, name: str, id_no: str, card_type: str = "ID_CARD") -> Person:
        return cls(name, id_digest(id_no, card_type), card_type)


@dataclass(frozen=True, slots=True)
class CashAdd:
    """Cash asked on top of the insurance split (``cash_add_detail``), e.g. FREIGHT."""

    cash_add_fee: int
    cash_add_type: str = "DEFAULT_ADD_TYPE"


@dataclass(frozen=True, slots=True)
class CashReduce:
    """Cash taken off (``cash_reduce_detail``), e.g. a deposit deduction."""

    cash_reduce_fee: int
    cash_reduce_type: str = "DEFAULT_REDUCE_TYPE"


@dataclass(frozen=True, slots=True)
class MedInsOrderRequest:
    """``POST /v3/med-ins/orders`` (``appid`` comes from ``MerchantConfig``). Which fields are
    required or forbidden depends on ``mix_pay_type``; ``rule_violation`` tells before sending."""

    mix_pay_type: str
    order_type: str
    openid: str
    payer: Person
    out_trade_no: str
    serial_no: str  # the hospital's order number at the insurance platform (6201 medOrgOrd)
    city_id: str
    med_inst_name: str
    med_inst_no: str
    total_fee: int
    callback_url: str
    med_ins_gov_fee: int = 0  # pooled fund (统筹)
    med_ins_self_fee: int = 0  # personal account (个账)
    med_ins_other_fee: int = 0  # other funds
    med_ins_cash_fee: int = 0  # own pay after the insurance split
    wechat_pay_cash_fee: int = 0  # what the JSAPI prepay collects
    cash_add_detail: tuple[CashAdd, ...] = ()
    cash_reduce_detail: tuple[CashReduce, ...] = ()
    pay_order_id: str | None = None  # 6201 payOrdId
    pay_auth_no: str | None = None
    geo_location: str | None = None  # "longitude,latitude"
    med_ins_order_create_time: datetime | None = None
    prepay_id: str | None = None
    pay_for_relatives: bool = False
    relative: Person | None = None
    passthrough_request_content: str | None = None
    extends: str | None = None
    attach: str | None = None
    channel_no: str | None = None
    med_ins_test_env: bool = False

    @property
    def insurance_fee(self) -> int:
        return self.med_ins_gov_fee + self.med_ins_self_fee + self.med_ins_other_fee

    def rule_violation(self) -> str | None:
        """Why WeChat Pay would refuse these amounts and fields (RULE_LIMIT), or None."""
        fees = (
            self.total_fee, self.med_ins_gov_fee, self.med_ins_self_fee, self.med_ins_other_fee,
            self.med_ins_cash_fee, self.wechat_pay_cash_fee,
            *(a.cash_add_fee for a in self.cash_add_detail), *(r.cash_reduce_fee for r in self.cash_reduce_detail),
        )
        if any(isinstance(f, bool) or not isinstance(f, int) or f < 0 for f in fees):
            return "amounts are non-negative integer fen"
        added = sum(a.cash_add_fee for a in self.cash_add_detail)
        reduced = sum(r.cash_reduce_fee for r in self.cash_reduce_detail)
        if self.total_fee != self.insurance_fee + self.wechat_pay_cash_fee + reduced:
            return "total_fee is not gov + self + other + wechat_pay_cash_fee + cash reductions"
        if self.total_fee != self.insurance_fee + self.med_ins_cash_fee + added:
            return "total_fee is not gov + self + other + med_ins_cash_fee + cash additions"
        if self.wechat_pay_cash_fee != self.med_ins_cash_fee + added - reduced:
            return "wechat_pay_cash_fee is not med_ins_cash_fee + additions - reductions"
        med_ins_sum = self.insurance_fee + self.med_ins_cash_fee
        insurance_fields = (self.pay_order_id, self.pay_auth_no, self.med_ins_order_create_time)
        if self.mix_pay_type == "CASH_ONLY":
            if med_ins_sum != 0 or any(v is not None for v in (*insurance_fields, self.geo_location)):
                return "a CASH_ONLY order carries no insurance amounts, pay_order_id, pay_auth_no, geo_location, time"
        elif any(v is None for v in insurance_fields):
            return f"a {self.mix_pay_type} order needs pay_order_id, pay_auth_no and med_ins_order_create_time"
        if self.mix_pay_type == "CASH_AND_INSURANCE" and med_ins_sum == 0:
            return "a CASH_AND_INSURANCE order has insurance amounts"
        if self.mix_pay_type == "INSURANCE_ONLY":
            if self.wechat_pay_cash_fee != 0 or self.prepay_id is not None:
                return "an INSURANCE_ONLY order has no wechat_pay_cash_fee and no prepay_id"
        elif self.wechat_pay_cash_fee == 0 or not self.prepay_id:
            return f"a {self.mix_pay_type} order has a wechat_pay_cash_fee and its prepay_id"
        if self.pay_for_relatives != (self.relative is not None):
            return "pay_for_relatives and relative go together"
        return None


@dataclass(frozen=True, slots=True)
class MedInsOrder:
    """The order as WeChat Pay answers it (creation, queries, the notification's resource)."""

    mix_trade_no: str
    mix_pay_status: str  # MIX_PAY_CREATED, MIX_PAY_SUCCESS, MIX_PAY_REFUND, MIX_PAY_FAIL
    self_pay_status: str  # SELF_PAY_CREATED/_SUCCESS/_REFUND/_FAIL, NO_SELF_PAY
    med_ins_pay_status: str  # MED_INS_PAY_CREATED/_SUCCESS/_REFUND/_FAIL, NO_MED_INS_PAY
    paid_time: datetime | None
    passthrough_response_content: str | None
    mix_pay_type: str
    order_type: str
    appid: str
    openid: str
    out_trade_no: str
    serial_no: str
    pay_order_id: str | None
    total_fee: int
    med_ins_gov_fee: int
    med_ins_self_fee: int
    med_ins_other_fee: int
    med_ins_cash_fee: int
    wechat_pay_cash_fee: int
    prepay_id: str | None
    attach: str | None
    med_ins_test_env: bool
    med_ins_fail_reason: str | None = None  # the insurance side's reason, with MED_INS_PAY_FAIL only


@dataclass(frozen=True, slots=True)
class MedInsNotification:
    """A verified, decrypted ``MEDICAL_INSURANCE.SUCCESS`` callback."""

    id: str
    event_type: str
    create_time: datetime
    summary: str
    order: MedInsOrder


@dataclass(frozen=True, slots=True)
class MedInsRefund:
    """What the insurance platform gave back (after its 6203), told to WeChat Pay. ``out_refund_no``
    is the cash refund's when the order had cash. ``med_refund_total_fee`` = gov + self + other."""

    out_refund_no: str
    med_refund_total_fee: int
    med_refund_gov_fee: int
    med_refund_self_fee: int
    med_refund_other_fee: int
    refund_time: datetime


class WeChatMedInsPay(Protocol):
    async def create_med_ins_order(self, request: MedInsOrderRequest) -> MedInsOrder:
        """The same request again answers the same order; other content under its out_trade_no is
        ALREADY_EXISTS; amounts or fields against the rules are RULE_LIMIT."""
        ...

    async def query_med_ins_order(self, mix_trade_no: str) -> MedInsOrder: ...

    async def query_med_ins_order_by_out_trade_no(self, out_trade_no: str) -> MedInsOrder: ...

    async def notify_med_ins_refund(self, mix_trade_no: str, refund: MedInsRefund) -> None: ...

    def med_ins_payment(self, mix_trade_no: str, prepay_id: str | None) -> dict[str, str]:
        """mixTradeNo and, with a cash part, timeStamp/nonceStr/package/signType/paySign of its prepay:
        the object for ``wx.requestMedicalInsurancePay``."""
        ...

    def parse_med_ins_notification(self, headers: dict[str, str], body: bytes) -> MedInsNotification:
        """Verifies ``Wechatpay-Signature`` and freshness, decrypts the resource; SIGN_ERROR otherwise."""
        ...
