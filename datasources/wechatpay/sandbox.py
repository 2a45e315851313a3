"""The WeChat Pay sandbox: orders, refunds and notifications in ``wxpay_`` tables, committing on its
own like the remote system, refusing what WeChat Pay refuses, and delivering notifications as real,
signed and encrypted HTTP POSTs to the merchant's ``notify_url``.

The admin side (``pay``, ``settle_refund``, ``deliver``) plays the payer and WeChat Pay's back office.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, cast

import httpx
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from datasources.clock import SHANGHAI, Clock, SystemClock, local_date, local_datetime
from datasources.crypto.primitives import PrivateKey, load_private_key
from datasources.errors import SourceRejected
from datasources.store.db import Database
from datasources.wechatpay import contract as c
from datasources.wechatpay import wire
from datasources.wechatpay.tables import WxpayNotification, WxpayOrder, WxpayRefund

log = logging.getLogger(__name__)

SANDBOX_PAYER_OPENID = "oSbxNativePayer0000000000001"  # who scans a NATIVE code when a test names nobody

STATE_DESC = {
    "NOTPAY": "订单未支付",
    "SUCCESS": "支付成功",
    "REFUND": "转入退款",
    "CLOSED": "已关闭",
}


@dataclass(frozen=True, slots=True)
class PlatformKeys:
    """WeChat Pay's side: the key it signs answers and notifications with, and the merchants' API
    certificate public keys (serial → PEM) it verifies requests with."""

    private_key_pem: bytes
    public_key_id: str
    merchant_certificates: tuple[tuple[str, bytes], ...]

    def signing_key(self) -> PrivateKey:
        return load_private_key(self.private_key_pem)


def _reject(code: str, detail: str = "") -> SourceRejected:
    return SourceRejected(c.SOURCE, code, detail)


def to_transaction(o: WxpayOrder) -> c.Transaction:
    paid = o.trade_state in ("SUCCESS", "REFUND")
    return c.Transaction(
        appid=o.appid,
        mchid=o.mchid,
        out_trade_no=o.out_trade_no,
        transaction_id=o.transaction_id if paid else None,
        trade_state=o.trade_state,
        trade_state_desc=STATE_DESC.get(o.trade_state, ""),
        amount_fen=o.amount_fen,
        payer_total_fen=o.amount_fen if paid else None,
        payer_openid=o.payer_openid,
        success_time=o.success_time if paid else None,
        trade_type=o.trade_type,
    )


def to_refund(r: WxpayRefund) -> c.Refund:
    return c.Refund(
        refund_id=r.refund_id,
        out_refund_no=r.out_refund_no,
        transaction_id=r.transaction_id,
        out_trade_no=r.out_trade_no,
        status=r.status,
        refund_fen=r.refund_fen,
        total_fen=r.total_fen,
        user_received_account="支付用户零钱",
        create_time=r.created_at,
        success_time=r.success_time,
    )


def _positive_fen(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise _reject(c.PARAM_ERROR, f"{name} must be a positive integer number of fen")
    return value


class SandboxWeChatPay:
    """Implements ``WeChatPay`` (for the merchant ``merchant``) and plays WeChat Pay's back office."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        merchant: c.MerchantConfig,
        platform: PlatformKeys,
        *,
        delivery_attempts: int = 3,
        delivery_backoff_seconds: float = 0.05,
        delivery_timeout: float = 5.0,
    ) -> None:
        self.db = db
        self.clock = clock
        self.merchant = merchant
        self.platform = platform
        self.delivery_attempts = delivery_attempts
        self.delivery_backoff_seconds = delivery_backoff_seconds
        self.delivery_timeout = delivery_timeout
        self._http: httpx.AsyncClient | None = None

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # --- the contract ------------------------------------------------------------------------------
    async def prepay_jsapi(
        self,
        out_trade_no: str,
        description: str,
        amount_fen: int,
        payer_openid: str,
        notify_url: str,
        expires_at: datetime,
    ) -> c.Prepay:
        if not payer_openid:
            raise _reject(c.PARAM_ERROR, "payer.openid is required")
        order = await self._prepay("JSAPI", out_trade_no, description, amount_fen, payer_openid, notify_url, expires_at)
        return c.Prepay(order.prepay_id)

    async def prepay_native(
        self,
        out_trade_no: str,
        description: str,
        amount_fen: int,
        notify_url: str,
        expires_at: datetime,
    ) -> c.NativePrepay:
        order = await self._prepay("NATIVE", out_trade_no, description, amount_fen, None, notify_url, expires_at)
        assert order.code_url is not None
        return c.NativePrepay(order.code_url)

    async def _prepay(
        self,
        trade_type: str,
        out_trade_no: str,
        description: str,
        amount_fen: int,
        payer_openid: str | None,
        notify_url: str,
        expires_at: datetime,
    ) -> WxpayOrder:
        """Creates the order, or answers a repeated identical request with the order already made. A
        NATIVE order has no payer; JSAPI and NATIVE never share an out_trade_no (other content)."""
        _positive_fen(amount_fen, "amount.total")
        if not out_trade_no or len(out_trade_no) > 32 or not description:
            raise _reject(c.PARAM_ERROR, "out_trade_no (≤32) and description are required")
        if not notify_url.startswith(("https://", "http://")):
            raise _reject(c.PARAM_ERROR, "notify_url must be an absolute URL")
        now = self.clock.now()
        if expires_at.tzinfo is None or expires_at <= now:
            raise _reject(c.PARAM_ERROR, "time_expire must be a future time with an offset")
        wanted = (trade_type, description, amount_fen, payer_openid, notify_url)
        for _ in range(2):
            try:
                async with self.db.writing() as s:
                    order = await self._order(s, out_trade_no)
                    if order is not None:
                        if order.trade_state in ("SUCCESS", "REFUND"):
                            raise _reject(c.ORDERPAID, f"order {out_trade_no} is already paid")
                        if order.trade_state == "CLOSED":
                            raise _reject(c.ORDER_CLOSED, f"order {out_trade_no} is closed")
                        held = (order.trade_type, order.description, order.amount_fen, order.payer_openid,
                                order.notify_url)
                        if held != wanted:
                            raise _reject(
                                c.OUT_TRADE_NO_USED, f"out_trade_no {out_trade_no} was used with other content"
                            )
                        return order
                    prepay_id = "wx" + now.astimezone(SHANGHAI).strftime("%d%H%M%S") + secrets.token_hex(12)
                    code_url = None
                    if trade_type == "NATIVE":
                        code_url = wire.NATIVE_CODE_URL_PREFIX + secrets.token_urlsafe(12).replace("-", "").replace(
                            "_", ""
                        )
                    order = WxpayOrder(
                        mchid=self.merchant.mchid, appid=self.merchant.appid, out_trade_no=out_trade_no,
                        prepay_id=prepay_id, trade_type=trade_type, code_url=code_url, description=description,
                        amount_fen=amount_fen, payer_openid=payer_openid, notify_url=notify_url,
                        expires_at=expires_at, created_at=now, trade_state="NOTPAY",
                    )
                    s.add(order)
                return order
            except IntegrityError:
                continue  # created meanwhile by a concurrent request: answer as for a repeated one
        raise _reject(c.SYSTEM_ERROR, "could not create the order")

    def mini_program_payment(self, prepay_id: str) -> dict[str, str]:
        return wire.mini_program_payment(self.merchant, prepay_id, self.clock.now())

    async def query(self, out_trade_no: str) -> c.Transaction:
        async with self.db.reading() as s:
            order = await self._order(s, out_trade_no)
        if order is None:
            raise _reject(c.ORDER_NOT_EXIST, f"no order {out_trade_no}")
        return to_transaction(order)

    async def close(self, out_trade_no: str) -> None:
        async with self.db.writing() as s:
            order = await self._order(s, out_trade_no, lock=True)
            if order is None:
                raise _reject(c.ORDER_NOT_EXIST, f"no order {out_trade_no}")
            if order.trade_state in ("SUCCESS", "REFUND"):
                raise _reject(c.ORDERPAID, f"order {out_trade_no} is paid and cannot be closed")
            order.trade_state = "CLOSED"

    async def refund(
        self,
        out_trade_no: str,
        out_refund_no: str,
        refund_fen: int,
        total_fen: int,
        reason: str,
        notify_url: str,
    ) -> c.Refund:
        _positive_fen(refund_fen, "amount.refund")
        _positive_fen(total_fen, "amount.total")
        if not out_refund_no or len(out_refund_no) > 64:
            raise _reject(c.PARAM_ERROR, "out_refund_no is required (≤64)")
        if len(reason) > 80:
            raise _reject(c.PARAM_ERROR, "reason is at most 80 characters")
        now = self.clock.now()
        async with self.db.writing() as s:
            existing = (
                await s.execute(select(WxpayRefund).where(col(WxpayRefund.out_refund_no) == out_refund_no))
            ).scalar_one_or_none()
            if existing is not None:
                if (existing.out_trade_no, existing.refund_fen, existing.total_fen) != (
                    out_trade_no, refund_fen, total_fen
                ):
                    raise _reject(c.INVALID_REQUEST, f"out_refund_no {out_refund_no} was used with other content")
                return to_refund(existing)
            order = await self._order(s, out_trade_no, lock=True)
            if order is None:
                raise _reject(c.ORDER_NOT_EXIST, f"no order {out_trade_no}")
            if order.trade_state not in ("SUCCESS", "REFUND") or order.transaction_id is None:
                raise _reject(c.INVALID_REQUEST, f"order {out_trade_no} is not paid")
            if total_fen != order.amount_fen:
                raise _reject(c.INVALID_REQUEST, "amount.total differs from the order's amount")
            if order.refunded_fen + refund_fen > order.amount_fen:
                left = order.amount_fen - order.refunded_fen
                raise _reject(c.NOT_ENOUGH, f"refund {refund_fen} fen exceeds the {left} fen left to refund")
            order.refunded_fen += refund_fen
            order.trade_state = "REFUND"
            row = WxpayRefund(
                out_refund_no=out_refund_no, refund_id="50" + f"{secrets.randbelow(10**28):028d}",
                out_trade_no=out_trade_no, transaction_id=order.transaction_id, refund_fen=refund_fen,
                total_fen=total_fen, reason=reason, notify_url=notify_url, status="PROCESSING", created_at=now,
            )
            s.add(row)
            await s.flush()
            return to_refund(row)

    async def query_refund(self, out_refund_no: str) -> c.Refund:
        async with self.db.reading() as s:
            row = (
                await s.execute(select(WxpayRefund).where(col(WxpayRefund.out_refund_no) == out_refund_no))
            ).scalar_one_or_none()
        if row is None:
            raise _reject(c.RESOURCE_NOT_EXISTS, f"no refund {out_refund_no}")
        return to_refund(row)

    async def trade_bill(self, bill_date: date) -> list[c.BillLine]:
        return wire.parse_bill(await self.bill_text(bill_date))

    def parse_notification(self, headers: dict[str, str], body: bytes) -> c.Notification:
        return wire.parse_notification(self.merchant, headers, body, self.clock.now())

    # --- the bill ------------------------------------------------------------------------------------
    async def bill_text(self, bill_date: date) -> str:
        """The day's (Asia/Shanghai) successful payments and refunds, in the trade bill's text format.
        A day's bill exists once the day is over; before that NO_STATEMENT_EXIST."""
        if bill_date >= local_date(self.clock.now()):
            raise _reject(c.NO_STATEMENT_EXIST, f"the bill of {bill_date} is not ready")
        start = local_datetime(bill_date, 0)
        end = start + timedelta(days=1)
        async with self.db.reading() as s:
            orders = (
                await s.execute(
                    select(WxpayOrder)
                    .where(col(WxpayOrder.success_time) >= start, col(WxpayOrder.success_time) < end)
                    .order_by(col(WxpayOrder.success_time), col(WxpayOrder.id))
                )
            ).scalars().all()
            refunds = (
                await s.execute(
                    select(WxpayRefund)
                    .where(col(WxpayRefund.success_time) >= start, col(WxpayRefund.success_time) < end)
                    .where(col(WxpayRefund.status) == "SUCCESS")
                    .order_by(col(WxpayRefund.success_time), col(WxpayRefund.id))
                )
            ).scalars().all()
            refunded = sorted({r.out_trade_no for r in refunds})
            refunded_orders = {
                o.out_trade_no: o
                for o in (
                    await s.execute(
                        select(WxpayOrder).where(col(WxpayOrder.out_trade_no).in_(refunded))
                    )
                ).scalars().all()
            }
        lines: list[tuple[datetime, c.BillLine]] = []
        for o in orders:
            assert o.success_time is not None and o.transaction_id is not None
            lines.append((o.success_time, c.BillLine(
                trade_time=o.success_time, appid=o.appid, mchid=o.mchid, transaction_id=o.transaction_id,
                out_trade_no=o.out_trade_no, openid=o.payer_openid or "", trade_type=o.trade_type,
                trade_state="SUCCESS", settlement_total_fen=o.amount_fen, refund_id="", out_refund_no="",
                refund_fen=0, refund_status="", description=o.description, order_fen=o.amount_fen,
            )))
        for r in refunds:
            o = refunded_orders[r.out_trade_no]
            assert r.success_time is not None
            lines.append((r.success_time, c.BillLine(
                trade_time=r.success_time, appid=o.appid, mchid=o.mchid, transaction_id=r.transaction_id,
                out_trade_no=r.out_trade_no, openid=o.payer_openid or "", trade_type=o.trade_type, trade_state="REFUND",
                settlement_total_fen=0, refund_id=r.refund_id, out_refund_no=r.out_refund_no,
                refund_fen=r.refund_fen, refund_status="SUCCESS", description=o.description, order_fen=0,
            )))
        lines.sort(key=lambda pair: pair[0])
        return wire.format_bill([line for _, line in lines])

    # --- the back office: paying, settling refunds, delivering notifications ---------------------------
    async def pay(
        self, reference: str, *, deliver: bool = True, payer_openid: str | None = None
    ) -> c.Transaction:
        """The payer pays the order named by its prepay_id, out_trade_no or (NATIVE) code_url; then the
        TRANSACTION.SUCCESS notification is delivered (unless ``deliver`` is False: it waits for
        ``deliver``). A NATIVE order's payer is whoever scanned: ``payer_openid``, by default
        ``SANDBOX_PAYER_OPENID``; a JSAPI order can only be paid by the payer it was made for."""
        now = self.clock.now()
        async with self.db.writing() as s:
            order = (
                await s.execute(
                    select(WxpayOrder)
                    .where(
                        (col(WxpayOrder.prepay_id) == reference)
                        | (col(WxpayOrder.out_trade_no) == reference)
                        | (col(WxpayOrder.code_url) == reference)
                    )
                    .with_for_update()
                )
            ).scalar_one_or_none()
            if order is None:
                raise _reject(c.ORDER_NOT_EXIST, f"no order {reference}")
            if order.trade_state in ("SUCCESS", "REFUND"):
                raise _reject(c.ORDERPAID, f"order {order.out_trade_no} is already paid")
            if order.trade_state == "CLOSED":
                raise _reject(c.ORDER_CLOSED, f"order {order.out_trade_no} is closed")
            if order.trade_type == "NATIVE":
                if now < order.expires_at:
                    order.payer_openid = payer_openid or SANDBOX_PAYER_OPENID
            elif payer_openid is not None and payer_openid != order.payer_openid:
                raise _reject(c.INVALID_REQUEST, f"order {order.out_trade_no} is another payer's")
            if now >= order.expires_at:
                order.trade_state = "CLOSED"  # WeChat Pay closes an order nobody paid in time
                notification = None
            else:
                order.trade_state = "SUCCESS"
                day = now.astimezone(SHANGHAI).strftime("%Y%m%d")
                order.transaction_id = f"42{day}{secrets.randbelow(10**20):020d}"
                order.success_time = now.replace(microsecond=0)
                transaction = to_transaction(order)
                notification = self._notification(
                    s, "TRANSACTION.SUCCESS", "支付成功", order.out_trade_no, order.notify_url, "transaction",
                    wire.transaction_json(transaction),
                )
        if notification is None:
            raise _reject(c.ORDER_CLOSED, f"order {reference} expired before it was paid")
        if deliver:
            await self.deliver(notification)
        return transaction

    async def pay_code(
        self, code_url: str, payer_openid: str | None = None, *, deliver: bool = True
    ) -> c.Transaction:
        """A payer scans the kiosk's QR code (a NATIVE order's ``code_url``) and pays it."""
        if not code_url.startswith(wire.NATIVE_CODE_URL_PREFIX):
            raise _reject(c.ORDER_NOT_EXIST, "not a WeChat Pay Native code")
        return await self.pay(code_url, deliver=deliver, payer_openid=payer_openid)

    async def settle_refund(self, out_refund_no: str, status: str = "SUCCESS", *, deliver: bool = True) -> c.Refund:
        """WeChat Pay finishes a PROCESSING refund (SUCCESS, or ABNORMAL/CLOSED giving the amount back)."""
        if status not in ("SUCCESS", "ABNORMAL", "CLOSED"):
            raise ValueError(f"a refund settles as SUCCESS, ABNORMAL or CLOSED, not {status}")
        now = self.clock.now()
        async with self.db.writing() as s:
            row = (
                await s.execute(
                    select(WxpayRefund).where(col(WxpayRefund.out_refund_no) == out_refund_no).with_for_update()
                )
            ).scalar_one_or_none()
            if row is None:
                raise _reject(c.RESOURCE_NOT_EXISTS, f"no refund {out_refund_no}")
            if row.status != "PROCESSING":
                raise _reject(c.INVALID_REQUEST, f"refund {out_refund_no} is already {row.status}")
            row.status = status
            if status == "SUCCESS":
                row.success_time = now.replace(microsecond=0)
            else:
                order = await self._order(s, row.out_trade_no, lock=True)
                assert order is not None
                order.refunded_fen -= row.refund_fen
            refund = to_refund(row)
            notification = None
            if row.notify_url:
                notification = self._notification(
                    s, f"REFUND.{status}", "退款成功" if status == "SUCCESS" else "退款异常", row.out_trade_no,
                    row.notify_url, "refund", wire.refund_json(refund, mchid=self.merchant.mchid),
                )
        if deliver and notification is not None:
            await self.deliver(notification)
        return refund

    async def settle_refunds(self) -> list[c.Refund]:
        """Every PROCESSING refund succeeds (what WeChat Pay does within seconds to minutes)."""
        async with self.db.reading() as s:
            pending = (
                await s.execute(select(WxpayRefund).where(col(WxpayRefund.status) == "PROCESSING"))
            ).scalars().all()
        return [await self.settle_refund(r.out_refund_no) for r in pending]

    async def notifications(self, out_trade_no: str | None = None) -> list[WxpayNotification]:
        stmt = select(WxpayNotification).order_by(col(WxpayNotification.id))
        if out_trade_no is not None:
            stmt = stmt.where(col(WxpayNotification.out_trade_no) == out_trade_no)
        async with self.db.reading() as s:
            return list((await s.execute(stmt)).scalars().all())

    async def deliver(self, notify_id: str, *, copies: int = 1) -> bool:
        """POSTs the stored notification to its URL, freshly signed, retrying on non-2xx or transport
        failure up to ``delivery_attempts`` times; ``copies`` > 1 sends it again after a success (as
        WeChat Pay may). Returns whether the merchant accepted it. Out of order: pay with
        ``deliver=False`` twice, then deliver the second before the first."""
        async with self.db.reading() as s:
            row = (
                await s.execute(select(WxpayNotification).where(col(WxpayNotification.notify_id) == notify_id))
            ).scalar_one()
        accepted = False
        key = self.platform.signing_key()
        body = row.body.encode()
        if self._http is None:  # one client for every delivery: making one costs ~60 ms (its TLS context)
            self._http = httpx.AsyncClient(timeout=self.delivery_timeout)
        http = self._http
        for _ in range(copies):
            for attempt in range(self.delivery_attempts):
                at = int(self.clock.now().timestamp())
                headers = wire.signed_headers(key, self.platform.public_key_id, body, at)
                headers["Content-Type"] = "application/json"
                status: int | None
                try:
                    status = (await http.post(row.url, content=body, headers=headers)).status_code
                except httpx.HTTPError as exc:
                    log.info("notification %s to %s failed: %s", notify_id, row.url, type(exc).__name__)
                    status = None
                await self._record_attempt(notify_id, status)
                if status is not None and 200 <= status < 300:
                    accepted = True
                    break
                await asyncio.sleep(self.delivery_backoff_seconds * 2**attempt)
        return accepted

    async def _record_attempt(self, notify_id: str, status: int | None) -> None:
        async with self.db.writing() as s:
            row = (
                await s.execute(select(WxpayNotification).where(col(WxpayNotification.notify_id) == notify_id))
            ).scalar_one()
            row.attempts += 1
            row.last_status = status
            if status is not None and 200 <= status < 300 and row.delivered_at is None:
                row.delivered_at = self.clock.now()

    def _notification(
        self, s: AsyncSession, event_type: str, summary: str, out_trade_no: str, url: str, original_type: str,
        plain: dict[str, object],
    ) -> str:
        now = self.clock.now()
        notify_id = "EV-" + now.astimezone(SHANGHAI).strftime("%Y%m%d%H%M%S") + secrets.token_hex(6)
        resource = wire.encrypt_resource(
            self.merchant.apiv3_key, json.dumps(plain, ensure_ascii=False).encode(), original_type, original_type
        )
        envelope = {
            "id": notify_id, "create_time": wire.rfc3339(now), "resource_type": "encrypt-resource",
            "event_type": event_type, "summary": summary, "resource": resource,
        }
        s.add(
            WxpayNotification(
                notify_id=notify_id, event_type=event_type, out_trade_no=out_trade_no, url=url,
                body=json.dumps(envelope, ensure_ascii=False), created_at=now,
            )
        )
        return notify_id

    async def _order(self, s: AsyncSession, out_trade_no: str, *, lock: bool = False) -> WxpayOrder | None:
        stmt = select(WxpayOrder).where(col(WxpayOrder.out_trade_no) == out_trade_no)
        if lock:
            stmt = stmt.with_for_update()
        return (await s.execute(stmt)).scalar_one_or_none()


if TYPE_CHECKING:  # mypy proves the sandbox keeps to the contract
    _conforms: c.WeChatPay = SandboxWeChatPay(
        Database("sqlite+aiosqlite://"), SystemClock(), cast(c.MerchantConfig, None), cast(PlatformKeys, None)
    )
