"""The payment channels behind one small interface: open an order, learn its state, close it,
refund it. Each channel's own words (trade_state, trade_status, refund status) end here; the
orders module only knows paid, closed or pending, and refund succeeded, failed or processing.

The channel's query is the truth: a notification only says "look now".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from datasources.alipay import contract as ali
from datasources.errors import SourceRejected
from datasources.wechatpay import contract as wx
from datasources.wechatpay import medins_contract as wm

WECHAT_PAY = "WECHAT_PAY"
ALIPAY = "ALIPAY"

RefundStatus = Literal["PROCESSING", "SUCCEEDED", "FAILED"]


@dataclass(frozen=True, slots=True)
class ChannelState:
    paid: bool
    closed: bool  # will never be paid
    trade_no: str | None
    paid_fen: int | None
    paid_at: datetime | None


@dataclass(frozen=True, slots=True)
class RefundState:
    status: RefundStatus
    refund_id: str


class PaymentChannel(Protocol):
    code: str

    async def open(
        self, *, order_no: str, description: str, amount_fen: int, payer: str, notify_url: str, expires_at: datetime
    ) -> str:
        """Creates the order at the channel; returns its reference (prepay_id, trade_no)."""
        ...

    def client_parameters(self, channel_ref: str) -> dict[str, str]:
        """What the mini-program passes to the channel's pay call (wx.requestPayment, my.tradePay)."""
        ...

    async def state(self, order_no: str) -> ChannelState: ...

    async def close(self, order_no: str) -> None:
        """Closing an order that is closed or was never created is fine; a paid one is refused."""
        ...

    async def refund(
        self, *, order_no: str, refund_no: str, amount_fen: int, total_fen: int, reason: str, notify_url: str
    ) -> RefundState: ...

    async def refund_state(self, *, order_no: str, refund_no: str) -> RefundState | None: ...


class WeChatPayChannel:
    code = WECHAT_PAY

    def __init__(self, api: wx.WeChatPay) -> None:
        self.api = api

    async def open(
        self, *, order_no: str, description: str, amount_fen: int, payer: str, notify_url: str, expires_at: datetime
    ) -> str:
        prepay = await self.api.prepay_jsapi(order_no, description, amount_fen, payer, notify_url, expires_at)
        return prepay.prepay_id

    def client_parameters(self, channel_ref: str) -> dict[str, str]:
        return self.api.mini_program_payment(channel_ref)

    async def state(self, order_no: str) -> ChannelState:
        try:
            t = await self.api.query(order_no)
        except SourceRejected as exc:
            if exc.code == wx.ORDER_NOT_EXIST:
                return ChannelState(False, True, None, None, None)
            raise
        paid = t.trade_state in ("SUCCESS", "REFUND")
        closed = t.trade_state in ("CLOSED", "PAYERROR")
        return ChannelState(paid, closed, t.transaction_id, t.payer_total_fen, t.success_time)

    async def close(self, order_no: str) -> None:
        try:
            await self.api.close(order_no)
        except SourceRejected as exc:
            if exc.code not in (wx.ORDER_CLOSED, wx.ORDER_NOT_EXIST):
                raise

    async def refund(
        self, *, order_no: str, refund_no: str, amount_fen: int, total_fen: int, reason: str, notify_url: str
    ) -> RefundState:
        # WeChat Pay shows the reason to the payer and takes at most 80 characters.
        r = await self.api.refund(order_no, refund_no, amount_fen, total_fen, reason[:80], notify_url)
        return _wx_refund(r)

    async def refund_state(self, *, order_no: str, refund_no: str) -> RefundState | None:
        try:
            return _wx_refund(await self.api.query_refund(refund_no))
        except SourceRejected as exc:
            if exc.code == wx.RESOURCE_NOT_EXISTS:
                return None
            raise


def _wx_refund(r: wx.Refund) -> RefundState:
    status: RefundStatus = {"SUCCESS": "SUCCEEDED", "PROCESSING": "PROCESSING"}.get(r.status, "FAILED")  # type: ignore[assignment]
    return RefundState(status, r.refund_id)


class AlipayChannel:
    code = ALIPAY

    def __init__(self, api: ali.Alipay) -> None:
        self.api = api

    async def open(
        self, *, order_no: str, description: str, amount_fen: int, payer: str, notify_url: str, expires_at: datetime
    ) -> str:
        created = await self.api.create_trade(
            out_trade_no=order_no, subject=description, amount_fen=amount_fen, buyer_id=payer,
            notify_url=notify_url, expires_at=expires_at,
        )
        return created.trade_no

    def client_parameters(self, channel_ref: str) -> dict[str, str]:
        return {"tradeNO": channel_ref}

    # A trade.create'd trade exists from the start: "no such trade" means it never will.
    not_existing = ChannelState(False, True, None, None, None)

    async def state(self, order_no: str) -> ChannelState:
        try:
            t = await self.api.query(order_no)
        except SourceRejected as exc:
            if exc.code == ali.TRADE_NOT_EXIST:
                return self.not_existing
            raise
        # A trade refunded in full is TRADE_CLOSED too, but it has a payment time: it was paid.
        paid = t.trade_status in (ali.TRADE_SUCCESS, ali.TRADE_FINISHED) or (
            t.trade_status == ali.TRADE_CLOSED and t.gmt_payment is not None
        )
        closed = t.trade_status == ali.TRADE_CLOSED and not paid
        return ChannelState(paid, closed, t.trade_no, t.total_fen if paid else None, t.gmt_payment)

    async def close(self, order_no: str) -> None:
        try:
            await self.api.close(order_no)
        except SourceRejected as exc:
            if exc.code not in (ali.TRADE_NOT_EXIST, ali.TRADE_HAS_CLOSE):
                raise

    async def refund(
        self, *, order_no: str, refund_no: str, amount_fen: int, total_fen: int, reason: str, notify_url: str
    ) -> RefundState:
        r = await self.api.refund(out_trade_no=order_no, out_request_no=refund_no, refund_fen=amount_fen, reason=reason)
        return RefundState("SUCCEEDED", r.out_request_no)

    async def refund_state(self, *, order_no: str, refund_no: str) -> RefundState | None:
        q = await self.api.query_refund(out_trade_no=order_no, out_request_no=refund_no)
        if q is None:
            return None
        return RefundState("SUCCEEDED" if q.refund_status == "REFUND_SUCCESS" else "PROCESSING", refund_no)


class WeChatMedInsChannel:
    """A WeChat Pay medical-insurance order (its cash part a JSAPI prepay of the same out_trade_no).
    The order is opened by the insured-payment module (it needs the insurance split); the rest is here."""

    code = "WECHAT_MED_INS"

    def __init__(self, api: wx.WeChatPay, med_ins: wm.WeChatMedInsPay) -> None:
        self.api = api
        self.med_ins = med_ins
        self.cash = WeChatPayChannel(api)

    async def open(
        self, *, order_no: str, description: str, amount_fen: int, payer: str, notify_url: str, expires_at: datetime
    ) -> str:
        raise NotImplementedError("a medical-insurance order is opened with its insurance split (payments.insured)")

    def client_parameters(self, channel_ref: str) -> dict[str, str]:
        """For ``wx.requestMedicalInsurancePay``: the mixTradeNo and the cash prepay's paySign."""
        mix_trade_no, _, prepay_id = channel_ref.partition(":")
        return self.med_ins.med_ins_payment(mix_trade_no, prepay_id or None)

    async def state(self, order_no: str) -> ChannelState:
        try:
            o = await self.med_ins.query_med_ins_order_by_out_trade_no(order_no)
        except SourceRejected as exc:
            if exc.code == wx.ORDER_NOT_EXIST:
                return ChannelState(False, True, None, None, None)
            raise
        paid = o.mix_pay_status in ("MIX_PAY_SUCCESS", "MIX_PAY_REFUND")
        return ChannelState(paid, o.mix_pay_status == "MIX_PAY_FAIL", o.mix_trade_no,
                            o.wechat_pay_cash_fee if paid else None, o.paid_time)

    async def close(self, order_no: str) -> None:
        await self.cash.close(order_no)  # the cash prepay: the order can then no longer be paid

    async def refund(
        self, *, order_no: str, refund_no: str, amount_fen: int, total_fen: int, reason: str, notify_url: str
    ) -> RefundState:
        return await self.cash.refund(
            order_no=order_no, refund_no=refund_no, amount_fen=amount_fen, total_fen=total_fen, reason=reason,
            notify_url=notify_url,
        )

    async def refund_state(self, *, order_no: str, refund_no: str) -> RefundState | None:
        return await self.cash.refund_state(order_no=order_no, refund_no=refund_no)


class InsuranceOnlyChannel:
    """An order the insurance pays in full: no channel holds any cash of it."""

    code = "INSURANCE"

    async def open(
        self, *, order_no: str, description: str, amount_fen: int, payer: str, notify_url: str, expires_at: datetime
    ) -> str:
        raise NotImplementedError("nothing to collect in cash")

    def client_parameters(self, channel_ref: str) -> dict[str, str]:
        return {}

    async def state(self, order_no: str) -> ChannelState:
        return ChannelState(False, False, None, None, None)  # the insurance platform says, not a channel

    async def close(self, order_no: str) -> None:
        return None

    async def refund(
        self, *, order_no: str, refund_no: str, amount_fen: int, total_fen: int, reason: str, notify_url: str
    ) -> RefundState:
        return RefundState("SUCCEEDED", refund_no)  # no cash to return

    async def refund_state(self, *, order_no: str, refund_no: str) -> RefundState | None:
        return RefundState("SUCCEEDED", refund_no)


class WeChatNativeChannel(WeChatPayChannel):
    """WeChat Pay Native: the kiosk shows ``code_url`` as a QR code and whoever scans it pays."""

    code = "WECHAT_NATIVE"

    async def open(
        self, *, order_no: str, description: str, amount_fen: int, payer: str, notify_url: str, expires_at: datetime
    ) -> str:
        prepay = await self.api.prepay_native(order_no, description, amount_fen, notify_url, expires_at)
        return prepay.code_url

    def client_parameters(self, channel_ref: str) -> dict[str, str]:
        return {"qrCode": channel_ref}


class AlipayQrChannel(AlipayChannel):
    """Alipay's precreated code (当面付): the kiosk shows ``qr_code`` and whoever scans it pays. Alipay
    makes the trade only when the code is scanned, so until then "no such trade" means not paid yet."""

    code = "ALIPAY_QR"

    async def open(
        self, *, order_no: str, description: str, amount_fen: int, payer: str, notify_url: str, expires_at: datetime
    ) -> str:
        made = await self.api.precreate_trade(
            out_trade_no=order_no, subject=description, amount_fen=amount_fen, notify_url=notify_url,
            expires_at=expires_at,
        )
        return made.qr_code

    not_existing = ChannelState(False, False, None, None, None)  # not scanned yet; expiry closes it

    def client_parameters(self, channel_ref: str) -> dict[str, str]:
        return {"qrCode": channel_ref}
