"""Alipay open platform (支付宝开放平台): the mini-program payment of a trade, its refunds and the daily bill.

A mini-program pays with ``my.tradePay({tradeNO})``: the trade number comes from
``alipay.trade.create`` (with the buyer's user_id). Alipay then tells the merchant by an async notify
(a signed form POST to ``notify_url``, answered with the text ``success``); ``query`` is the truth
when a notify is late. Refunds are idempotent per ``out_request_no``; their sum never passes the
paid total. A kiosk shows a QR code instead: ``alipay.trade.precreate`` (当面付 扫码支付) gives a
``qr_code`` URL that whoever scans it with Alipay pays; the trade has no buyer until paid. Amounts are
integer fen here; on the wire they are yuan strings ("12.50").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

from datasources.crypto.primitives import PrivateKey, PublicKey

# Stable rejection codes (SourceRejected.code): Alipay's own sub_codes, as its documentation names them.
TRADE_NOT_EXIST = "ACQ.TRADE_NOT_EXIST"
TRADE_HAS_CLOSE = "ACQ.TRADE_HAS_CLOSE"
TRADE_HAS_SUCCESS = "ACQ.TRADE_HAS_SUCCESS"
TRADE_HAS_FINISHED = "ACQ.TRADE_HAS_FINISHED"
TRADE_STATUS_ERROR = "ACQ.TRADE_STATUS_ERROR"  # e.g. refund of an unpaid trade, close of a paid one
CONTEXT_INCONSISTENT = "ACQ.CONTEXT_INCONSISTENT"  # out_trade_no reused with another amount/subject/buyer
REFUND_AMT_NOT_EQUAL_TOTAL = "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL"  # refunds would exceed the paid total
DISCORDANT_REPEAT_REQUEST = "ACQ.DISCORDANT_REPEAT_REQUEST"  # out_request_no reused with another amount
INVALID_PARAMETER = "ACQ.INVALID_PARAMETER"
BILL_NOT_EXIST = "isp.bill_not_exist"
MISSING_SIGNATURE = "isv.missing-signature"
INVALID_SIGNATURE = "isv.invalid-signature"
INVALID_SIGNATURE_TYPE = "isv.invalid-signature-type"
INVALID_APP_ID = "isv.invalid-app-id"
INVALID_TIMESTAMP = "isv.invalid-timestamp"
INVALID_METHOD = "isv.invalid-method"

# trade_status
WAIT_BUYER_PAY = "WAIT_BUYER_PAY"
TRADE_SUCCESS = "TRADE_SUCCESS"
TRADE_FINISHED = "TRADE_FINISHED"
TRADE_CLOSED = "TRADE_CLOSED"

NOTIFY_ACK = "success"  # what the BFF's notify endpoint must answer, as plain text


@dataclass(frozen=True, slots=True)
class MerchantConfig:
    """The merchant's side: its app, its RSA2 private key (signs requests), Alipay's public key
    (verifies responses and async notifies)."""

    app_id: str
    private_key: PrivateKey
    alipay_public_key: PublicKey


@dataclass(frozen=True, slots=True)
class PlatformConfig:
    """The sandbox platform's side: the merchant app it serves, the merchant's public key (verifies
    requests) and the platform's own private key (signs responses and notifies)."""

    app_id: str
    merchant_public_key: PublicKey
    platform_private_key: PrivateKey
    seller_id: str = "2088000000000001"


@dataclass(frozen=True, slots=True)
class CreatedTrade:
    out_trade_no: str
    trade_no: str  # what the mini-program passes to my.tradePay


@dataclass(frozen=True, slots=True)
class PrecreatedTrade:
    out_trade_no: str
    qr_code: str  # https://qr.alipay.com/bax…: what the kiosk renders as a QR code


@dataclass(frozen=True, slots=True)
class Trade:
    out_trade_no: str
    trade_no: str
    trade_status: str  # WAIT_BUYER_PAY, TRADE_SUCCESS, TRADE_FINISHED, TRADE_CLOSED
    total_fen: int
    buyer_id: str  # "" for a precreated (QR code) trade nobody has paid yet
    gmt_payment: datetime | None


@dataclass(frozen=True, slots=True)
class RefundResult:
    out_trade_no: str
    trade_no: str
    out_request_no: str
    refund_fen: int  # this request's amount
    refunded_total_fen: int  # refund_fee: everything refunded on the trade so far
    fund_change: bool  # False when the request repeated one already done


@dataclass(frozen=True, slots=True)
class RefundQuery:
    out_trade_no: str
    trade_no: str
    out_request_no: str
    refund_fen: int
    total_fen: int
    refund_status: str  # REFUND_SUCCESS


@dataclass(frozen=True, slots=True)
class BillLine:
    """One line of the day's business detail file (业务明细): a payment (交易) or a refund (退款)."""

    trade_no: str
    out_trade_no: str
    kind: str  # 交易 or 退款
    subject: str
    created_at: datetime
    finished_at: datetime
    amount_fen: int  # 订单金额: negative for refunds, as in the file
    received_fen: int  # 商家实收
    out_request_no: str  # 退款批次号/请求号: "" for payments


@dataclass(frozen=True, slots=True)
class Notification:
    """A verified async notify (notify_type trade_status_sync)."""

    notify_id: str
    notify_time: datetime
    app_id: str
    out_trade_no: str
    trade_no: str
    trade_status: str
    total_fen: int
    buyer_id: str
    gmt_payment: datetime | None
    refund_fen: int | None  # refund_fee: the cumulative refunded amount, when a refund caused it
    out_biz_no: str | None  # the out_request_no of that refund


class Alipay(Protocol):
    async def create_trade(
        self, *, out_trade_no: str, subject: str, amount_fen: int, buyer_id: str, notify_url: str,
        expires_at: datetime,
    ) -> CreatedTrade:
        """alipay.trade.create; repeating the same request returns the same trade."""
        ...

    async def precreate_trade(
        self, *, out_trade_no: str, subject: str, amount_fen: int, notify_url: str, expires_at: datetime,
    ) -> PrecreatedTrade:
        """alipay.trade.precreate (a QR code, no buyer); repeating the same request returns the same
        code; the out_trade_no with other terms (or of a create_trade) is CONTEXT_INCONSISTENT."""
        ...

    async def query(self, out_trade_no: str) -> Trade:
        """alipay.trade.query."""
        ...

    async def close(self, out_trade_no: str) -> None:
        """alipay.trade.close: an unpaid trade can no longer be paid (closing twice is fine)."""
        ...

    async def refund(
        self, *, out_trade_no: str, out_request_no: str, refund_fen: int, reason: str
    ) -> RefundResult:
        """alipay.trade.refund; idempotent per out_request_no (same amount), refused beyond the paid total."""
        ...

    async def query_refund(self, *, out_trade_no: str, out_request_no: str) -> RefundQuery | None:
        """alipay.trade.fastpay.refund.query: None when no such refund was made."""
        ...

    async def bill(self, bill_date: date) -> list[BillLine]:
        """alipay.data.dataservice.bill.downloadurl.query (bill_type trade), then the file parsed."""
        ...

    def parse_notification(self, form: Mapping[str, str]) -> Notification:
        """Verifies an async notify (signature with Alipay's key, app_id) and reads it; raises
        ``SourceRejected`` otherwise. The receiver then answers ``NOTIFY_ACK``."""
        ...
