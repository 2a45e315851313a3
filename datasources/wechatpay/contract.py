"""WeChat Pay API v3 (微信支付 v3) for a mini-program merchant: JSAPI prepay, the paySign the
mini-program hands to ``wx.requestPayment``, Native prepay (a ``code_url`` a kiosk shows as a QR code
for the patient to scan; the payer is known only once paid), order query and close, refunds, the trade bill, and
the payment/refund notifications (signed by WeChat Pay, resource sealed with AEAD_AES_256_GCM).

Money is integer fen. Refusals are ``SourceRejected(SOURCE, code)`` with WeChat Pay's own codes.
Medical-insurance orders (``/v3/med-ins/orders``, ``mix_pay_type``) are a second Protocol,
``WeChatMedInsPay`` in ``medins_contract.py``, reusing ``MerchantConfig`` and the signing in ``wire.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal, Protocol

SOURCE = "wechatpay"

# Stable rejection codes, spelled as WeChat Pay spells them.
ORDER_NOT_EXIST = "ORDER_NOT_EXIST"
ORDER_CLOSED = "ORDER_CLOSED"
ORDERPAID = "ORDERPAID"
OUT_TRADE_NO_USED = "OUT_TRADE_NO_USED"  # same out_trade_no, different content
NOT_ENOUGH = "NOT_ENOUGH"  # refund above what is left to refund
RESOURCE_NOT_EXISTS = "RESOURCE_NOT_EXISTS"  # unknown out_refund_no / bill
INVALID_REQUEST = "INVALID_REQUEST"
PARAM_ERROR = "PARAM_ERROR"
SIGN_ERROR = "SIGN_ERROR"
NO_STATEMENT_EXIST = "NO_STATEMENT_EXIST"
SYSTEM_ERROR = "SYSTEM_ERROR"

TradeState = Literal["SUCCESS", "NOTPAY", "CLOSED", "REFUND", "PAYERROR", "USERPAYING"]
RefundStatus = Literal["PROCESSING", "SUCCESS", "ABNORMAL", "CLOSED"]

NOTIFICATION_MAX_AGE_SECONDS = 300


@dataclass(frozen=True, slots=True)
class MerchantConfig:
    """What a merchant holds: its ids, its API certificate's private key (and serial), the APIv3
    key, and WeChat Pay's public key with its id (``PUB_KEY_ID_…``) to verify answers and
    notifications. ``platform_certificates`` (serial → public key PEM) is the older way, accepted too."""

    mchid: str
    appid: str
    private_key_pem: bytes
    certificate_serial: str
    apiv3_key: bytes
    wechatpay_public_key_pem: bytes
    wechatpay_public_key_id: str
    platform_certificates: tuple[tuple[str, bytes], ...] = ()

    def __post_init__(self) -> None:
        if len(self.apiv3_key) != 32:
            raise ValueError("the APIv3 key is 32 bytes")

    def verifying_keys(self) -> dict[str, bytes]:
        return {self.wechatpay_public_key_id: self.wechatpay_public_key_pem, **dict(self.platform_certificates)}


@dataclass(frozen=True, slots=True)
class Prepay:
    prepay_id: str


@dataclass(frozen=True, slots=True)
class NativePrepay:
    """``code_url`` (``weixin://wxpay/bizpayurl?pr=…``): what the kiosk renders as a QR code."""

    code_url: str


@dataclass(frozen=True, slots=True)
class Transaction:
    appid: str
    mchid: str
    out_trade_no: str
    transaction_id: str | None
    trade_state: str
    trade_state_desc: str
    amount_fen: int
    payer_total_fen: int | None
    payer_openid: str | None  # for a NATIVE order, None until someone scanned the code and paid
    success_time: datetime | None
    trade_type: str = "JSAPI"  # JSAPI (mini-program) or NATIVE (QR code); "" when an answer did not say


@dataclass(frozen=True, slots=True)
class Refund:
    refund_id: str
    out_refund_no: str
    transaction_id: str
    out_trade_no: str
    status: str
    refund_fen: int
    total_fen: int
    user_received_account: str
    create_time: datetime
    success_time: datetime | None


@dataclass(frozen=True, slots=True)
class Notification:
    """A verified, decrypted notification: ``transaction`` for TRANSACTION.*, ``refund`` for REFUND.*."""

    id: str
    event_type: str
    create_time: datetime
    summary: str
    transaction: Transaction | None
    refund: Refund | None


@dataclass(frozen=True, slots=True)
class BillLine:
    """One row of the trade bill (交易账单, bill_type ALL): a payment, or a refund (trade_state REFUND)."""

    trade_time: datetime
    appid: str
    mchid: str
    transaction_id: str
    out_trade_no: str
    openid: str
    trade_type: str
    trade_state: str
    settlement_total_fen: int
    refund_id: str
    out_refund_no: str
    refund_fen: int
    refund_status: str
    description: str
    order_fen: int


class WeChatPay(Protocol):
    async def prepay_jsapi(
        self,
        out_trade_no: str,
        description: str,
        amount_fen: int,
        payer_openid: str,
        notify_url: str,
        expires_at: datetime,
    ) -> Prepay: ...

    async def prepay_native(
        self,
        out_trade_no: str,
        description: str,
        amount_fen: int,
        notify_url: str,
        expires_at: datetime,
    ) -> NativePrepay:
        """``POST /v3/pay/transactions/native``: no payer (whoever scans pays). The same rules as JSAPI:
        repeated identically, the same code_url; the out_trade_no with other content, OUT_TRADE_NO_USED."""
        ...

    def mini_program_payment(self, prepay_id: str) -> dict[str, str]:
        """appId, timeStamp, nonceStr, package, signType "RSA", paySign: for ``wx.requestPayment``."""
        ...

    async def query(self, out_trade_no: str) -> Transaction: ...

    async def close(self, out_trade_no: str) -> None: ...

    async def refund(
        self,
        out_trade_no: str,
        out_refund_no: str,
        refund_fen: int,
        total_fen: int,
        reason: str,
        notify_url: str,
    ) -> Refund: ...

    async def query_refund(self, out_refund_no: str) -> Refund: ...

    async def trade_bill(self, bill_date: date) -> list[BillLine]: ...

    def parse_notification(self, headers: dict[str, str], body: bytes) -> Notification:
        """Verifies ``Wechatpay-Signature`` and freshness, decrypts the resource; SIGN_ERROR otherwise."""
        ...
