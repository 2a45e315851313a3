"""The Alipay sandbox: trades, refunds and async notifies in its own tables, committing on its own.

It refuses what Alipay refuses (an out_trade_no reused with other terms, refunds beyond the paid
total, a refund request number reused with another amount, paying or refunding what is closed).
``pay`` is the sandbox's admin action for "the buyer paid in the Alipay app": it delivers the
async notify as a real signed form POST to the trade's notify_url, again until the receiver answers
``success`` (a bounded number of times; ``deliver``/``deliver_pending`` send again, so a test can
make a notify arrive twice or out of order).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, cast

import httpx
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from datasources.alipay import contract as c
from datasources.alipay import wire
from datasources.alipay.tables import AlipayNotification, AlipayRefund, AlipayTrade
from datasources.clock import SHANGHAI, Clock, local_date
from datasources.store.db import Database

log = logging.getLogger(__name__)
MAX_TOTAL_FEN = 100_000_000_00  # Alipay's [0.01, 100000000] yuan
JSAPI_PAY = "JSAPI_PAY"  # alipay.trade.create: the mini-program's my.tradePay
FACE_TO_FACE_PAYMENT = "FACE_TO_FACE_PAYMENT"  # alipay.trade.precreate: a QR code whoever scans pays
QR_CODE_PREFIX = "https://qr.alipay.com/"
SANDBOX_BUYER_ID = "2088000000009999"  # who scans a precreated trade's code when a test names nobody


def _status(row: AlipayTrade, now: datetime) -> str:
    """A trade left unpaid past its time_expire is closed, whether or not anyone looked."""
    if row.status == c.WAIT_BUYER_PAY and now >= row.expires_at:
        return c.TRADE_CLOSED
    return row.status


def to_trade(row: AlipayTrade, now: datetime) -> c.Trade:
    return c.Trade(
        out_trade_no=row.out_trade_no, trade_no=row.trade_no, trade_status=_status(row, now),
        total_fen=row.total_fen, buyer_id=row.buyer_id, gmt_payment=row.paid_at,
    )


_CODE_CHARS = "0123456789abcdefghijklmnopqrstuvwxyz"


def _second(at: datetime) -> datetime:
    return at.replace(microsecond=0)


class SandboxAlipay:
    """Implements ``Alipay`` over its ``alipay_`` tables, for one merchant app."""

    def __init__(
        self, db: Database, clock: Clock, platform: c.PlatformConfig, *, notify_timeout: float = 5.0,
        notify_attempts: int = 3, notify_backoff_seconds: float = 0.05,
    ) -> None:
        self.db = db
        self.clock = clock
        self.platform = platform
        self.notify_attempts = notify_attempts
        self.notify_backoff_seconds = notify_backoff_seconds
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(notify_timeout))

    async def aclose(self) -> None:
        await self._http.aclose()

    def _now(self) -> datetime:
        return _second(self.clock.now())

    async def _find(self, s: AsyncSession, out_trade_no: str, *, lock: bool = False) -> AlipayTrade | None:
        stmt = select(AlipayTrade).where(
            col(AlipayTrade.app_id) == self.platform.app_id, col(AlipayTrade.out_trade_no) == out_trade_no
        )
        return (await s.execute(stmt.with_for_update() if lock else stmt)).scalar_one_or_none()

    async def _trade(self, s: AsyncSession, out_trade_no: str, *, lock: bool = False) -> AlipayTrade:
        row = await self._find(s, out_trade_no, lock=lock)
        if row is None:
            raise wire.reject(c.TRADE_NOT_EXIST, "交易不存在")
        return row

    # The contract ---------------------------------------------------------------------------
    async def create_trade(
        self, *, out_trade_no: str, subject: str, amount_fen: int, buyer_id: str, notify_url: str,
        expires_at: datetime,
    ) -> c.CreatedTrade:
        if not buyer_id:
            raise wire.reject(c.INVALID_PARAMETER, "out_trade_no, subject and buyer_id are required")
        row = await self._open(JSAPI_PAY, out_trade_no, subject, amount_fen, buyer_id, notify_url, expires_at)
        return c.CreatedTrade(row.out_trade_no, row.trade_no)

    async def precreate_trade(
        self, *, out_trade_no: str, subject: str, amount_fen: int, notify_url: str, expires_at: datetime,
    ) -> c.PrecreatedTrade:
        row = await self._open(FACE_TO_FACE_PAYMENT, out_trade_no, subject, amount_fen, "", notify_url, expires_at)
        assert row.qr_code is not None
        return c.PrecreatedTrade(row.out_trade_no, row.qr_code)

    async def _open(
        self, product_code: str, out_trade_no: str, subject: str, amount_fen: int, buyer_id: str, notify_url: str,
        expires_at: datetime,
    ) -> AlipayTrade:
        if not 0 < amount_fen <= MAX_TOTAL_FEN:
            raise wire.reject(c.INVALID_PARAMETER, "total_amount out of [0.01, 100000000]")
        if not out_trade_no or len(out_trade_no) > 64 or not subject:
            raise wire.reject(c.INVALID_PARAMETER, "out_trade_no and subject are required")
        for attempt in range(2):
            try:
                return await self._create(
                    product_code, out_trade_no, subject, amount_fen, buyer_id, notify_url, expires_at
                )
            except IntegrityError:  # the same out_trade_no created at the same moment: read the winner's
                if attempt:
                    raise
        raise AssertionError("unreachable")

    async def _create(
        self, product_code: str, out_trade_no: str, subject: str, amount_fen: int, buyer_id: str, notify_url: str,
        expires_at: datetime,
    ) -> AlipayTrade:
        """A trade, or the one a repeated request made. A precreated trade has no buyer (""); a trade
        of one product is never answered as the other's (CONTEXT_INCONSISTENT)."""
        now = self._now()
        async with self.db.writing() as s:
            row = await self._find(s, out_trade_no)
            if row is not None:
                status = _status(row, now)
                if status in (c.TRADE_SUCCESS, c.TRADE_FINISHED):
                    raise wire.reject(c.TRADE_HAS_SUCCESS, "交易已被支付")
                if status == c.TRADE_CLOSED:
                    raise wire.reject(c.TRADE_HAS_CLOSE, "交易已经关闭")
                held = (row.product_code, row.total_fen, row.subject, row.buyer_id)
                if held != (product_code, amount_fen, subject, buyer_id):
                    raise wire.reject(c.CONTEXT_INCONSISTENT, "交易信息被篡改")
                return row
            trade_no = f"{local_date(now):%Y%m%d}22001{secrets.randbelow(10**15):015d}"
            qr_code = None
            if product_code == FACE_TO_FACE_PAYMENT:
                qr_code = QR_CODE_PREFIX + "bax" + "".join(secrets.choice(_CODE_CHARS) for _ in range(20))
            row = AlipayTrade(
                trade_no=trade_no, app_id=self.platform.app_id, out_trade_no=out_trade_no, subject=subject,
                total_fen=amount_fen, buyer_id=buyer_id, product_code=product_code, qr_code=qr_code,
                notify_url=notify_url, status=c.WAIT_BUYER_PAY, created_at=now, expires_at=_second(expires_at),
            )
            s.add(row)
        return row

    async def query(self, out_trade_no: str) -> c.Trade:
        async with self.db.reading() as s:
            row = await self._trade(s, out_trade_no)
        return to_trade(row, self._now())

    async def close(self, out_trade_no: str) -> None:
        now = self._now()
        async with self.db.writing() as s:
            row = await self._trade(s, out_trade_no, lock=True)
            status = _status(row, now)
            if status in (c.TRADE_SUCCESS, c.TRADE_FINISHED):
                raise wire.reject(c.TRADE_STATUS_ERROR, "交易状态不合法: 已支付")
            if row.status == c.WAIT_BUYER_PAY:
                row.status = c.TRADE_CLOSED
                row.closed_at = min(now, row.expires_at)

    async def refund(
        self, *, out_trade_no: str, out_request_no: str, refund_fen: int, reason: str
    ) -> c.RefundResult:
        if refund_fen <= 0 or not out_request_no:
            raise wire.reject(c.INVALID_PARAMETER, "refund_amount must be positive and out_request_no given")
        now = self._now()
        async with self.db.writing() as s:
            row = await self._trade(s, out_trade_no, lock=True)
            done = (
                await s.execute(select(AlipayRefund).where(
                    col(AlipayRefund.trade_no) == row.trade_no, col(AlipayRefund.out_request_no) == out_request_no
                ))
            ).scalar_one_or_none()
            if done is not None:
                if done.refund_fen != refund_fen:
                    raise wire.reject(c.DISCORDANT_REPEAT_REQUEST, "不一致的请求")
                return c.RefundResult(
                    row.out_trade_no, row.trade_no, out_request_no, refund_fen, row.refunded_fen, fund_change=False
                )
            if row.paid_at is None:
                raise wire.reject(c.TRADE_STATUS_ERROR, "交易状态不合法: 未支付")
            if row.status == c.TRADE_FINISHED:
                raise wire.reject(c.TRADE_HAS_FINISHED, "交易已完结")
            if row.refunded_fen + refund_fen > row.total_fen:
                raise wire.reject(c.REFUND_AMT_NOT_EQUAL_TOTAL, "退款金额超限")
            row.refunded_fen += refund_fen
            if row.refunded_fen == row.total_fen:
                row.status, row.closed_at = c.TRADE_CLOSED, now
            s.add(AlipayRefund(
                trade_no=row.trade_no, out_request_no=out_request_no, refund_fen=refund_fen, reason=reason[:256],
                refunded_at=now,
            ))
            self._record_notification(
                s, row, now, refund_fen=row.refunded_fen, out_biz_no=out_request_no, gmt_refund=now
            )
            return c.RefundResult(
                row.out_trade_no, row.trade_no, out_request_no, refund_fen, row.refunded_fen, fund_change=True
            )

    async def query_refund(self, *, out_trade_no: str, out_request_no: str) -> c.RefundQuery | None:
        async with self.db.reading() as s:
            row = await self._trade(s, out_trade_no)
            done = (
                await s.execute(select(AlipayRefund).where(
                    col(AlipayRefund.trade_no) == row.trade_no, col(AlipayRefund.out_request_no) == out_request_no
                ))
            ).scalar_one_or_none()
        if done is None:
            return None
        return c.RefundQuery(
            row.out_trade_no, row.trade_no, out_request_no, done.refund_fen, row.total_fen, "REFUND_SUCCESS"
        )

    async def bill(self, bill_date: date) -> list[c.BillLine]:
        return wire.parse_bill_zip(await self.bill_file(bill_date))

    def parse_notification(self, form: Mapping[str, str]) -> c.Notification:
        return wire.parse_notification(
            form, app_id=self.platform.app_id, alipay_public_key=self.platform.platform_private_key.public_key()
        )

    # The bill -------------------------------------------------------------------------------
    async def bill_file(self, bill_date: date) -> bytes:
        """The day's bill as the download serves it (a zip of the GBK detail CSV); a day not over yet
        has no bill."""
        if bill_date >= local_date(self.clock.now()):
            raise wire.reject(c.BILL_NOT_EXIST, "账单不存在")
        start = datetime.combine(bill_date, time(), tzinfo=SHANGHAI)
        end = start + timedelta(days=1)
        app = col(AlipayTrade.app_id) == self.platform.app_id
        async with self.db.reading() as s:
            paid = (await s.execute(select(AlipayTrade).where(
                app, col(AlipayTrade.paid_at) >= start, col(AlipayTrade.paid_at) < end
            ))).scalars().all()
            refunds = (await s.execute(
                select(AlipayRefund, AlipayTrade)
                .join(AlipayTrade, col(AlipayTrade.trade_no) == col(AlipayRefund.trade_no))
                .where(app, col(AlipayRefund.refunded_at) >= start, col(AlipayRefund.refunded_at) < end)
            )).all()
        lines = [
            c.BillLine(t.trade_no, t.out_trade_no, "交易", t.subject, t.created_at, t.paid_at, t.total_fen,
                       t.total_fen, "")
            for t in paid if t.paid_at is not None
        ]
        lines += [
            c.BillLine(t.trade_no, t.out_trade_no, "退款", t.subject, t.created_at, r.refunded_at, -r.refund_fen,
                       -r.refund_fen, r.out_request_no)
            for r, t in refunds
        ]
        lines.sort(key=lambda line: (line.finished_at, line.trade_no, line.out_request_no))
        return wire.bill_zip(self.platform.seller_id, bill_date, lines)

    # Admin: the buyer pays, notifies go out ---------------------------------------------------
    async def pay(self, out_trade_no: str, *, deliver: bool = True, buyer_id: str | None = None) -> str:
        """The buyer pays in the Alipay app; returns the notify_id of the notify it causes. A
        precreated trade is paid by whoever scanned its code: ``buyer_id``, by default
        ``SANDBOX_BUYER_ID``; a created trade only by the buyer it was made for."""
        now = self._now()
        async with self.db.writing() as s:
            row = await self._trade(s, out_trade_no, lock=True)
            status = _status(row, now)
            if status == c.TRADE_CLOSED:
                raise wire.reject(c.TRADE_HAS_CLOSE, "交易已经关闭")
            if status != c.WAIT_BUYER_PAY:
                raise wire.reject(c.TRADE_HAS_SUCCESS, "交易已被支付")
            if row.product_code == FACE_TO_FACE_PAYMENT:
                row.buyer_id = buyer_id or SANDBOX_BUYER_ID
            elif buyer_id is not None and buyer_id != row.buyer_id:
                raise wire.reject(c.INVALID_PARAMETER, "the trade is another buyer's")
            row.status, row.paid_at = c.TRADE_SUCCESS, now
            notify_id = self._record_notification(s, row, now)
        if deliver:
            await self.deliver(notify_id)
        return notify_id

    async def pay_code(self, qr_code: str, buyer_id: str | None = None, *, deliver: bool = True) -> str:
        """A buyer scans the kiosk's QR code (a precreated trade's ``qr_code``) and pays it."""
        async with self.db.reading() as s:
            out_trade_no = (await s.execute(
                select(col(AlipayTrade.out_trade_no)).where(
                    col(AlipayTrade.app_id) == self.platform.app_id, col(AlipayTrade.qr_code) == qr_code
                )
            )).scalar_one_or_none()
        if out_trade_no is None:
            raise wire.reject(c.TRADE_NOT_EXIST, "交易不存在")
        return await self.pay(out_trade_no, deliver=deliver, buyer_id=buyer_id)

    def _record_notification(
        self, s: AsyncSession, row: AlipayTrade, now: datetime, *, refund_fen: int | None = None,
        out_biz_no: str | None = None, gmt_refund: datetime | None = None,
    ) -> str:
        notify_id = secrets.token_hex(16)
        form = wire.notification_form(
            self.platform.platform_private_key, app_id=self.platform.app_id, seller_id=self.platform.seller_id,
            notify_id=notify_id, notify_time=now, trade=to_trade(row, now), subject=row.subject,
            gmt_create=row.created_at, refund_fen=refund_fen, out_biz_no=out_biz_no, gmt_refund=gmt_refund,
        )
        s.add(AlipayNotification(
            notify_id=notify_id, trade_no=row.trade_no, notify_url=row.notify_url,
            form_json=json.dumps(form, ensure_ascii=False), created_at=now,
        ))
        return notify_id

    async def _notification(self, s: AsyncSession, notify_id: str, *, lock: bool = False) -> AlipayNotification:
        stmt = select(AlipayNotification).where(col(AlipayNotification.notify_id) == notify_id)
        row = (await s.execute(stmt.with_for_update() if lock else stmt)).scalar_one_or_none()
        if row is None:
            raise wire.reject(c.INVALID_PARAMETER, f"no notify {notify_id}")
        return row

    async def notification_form(self, notify_id: str) -> dict[str, str]:
        async with self.db.reading() as s:
            row = await self._notification(s, notify_id)
        if row is None:
            raise wire.reject(c.INVALID_PARAMETER, f"no notify {notify_id}")
        form: dict[str, str] = json.loads(row.form_json)
        return form

    async def deliver(self, notify_id: str) -> bool:
        """POSTs the notify (again, even if already acknowledged) until the receiver answers
        ``success``, at most ``notify_attempts`` times; True when it did."""
        async with self.db.reading() as s:
            row = await self._notification(s, notify_id)
        form = json.loads(row.form_json)
        acknowledged = False
        attempts = 0
        for attempt in range(self.notify_attempts):
            attempts += 1
            try:
                response = await self._http.post(row.notify_url, data=form)
                acknowledged = response.status_code == 200 and response.text.strip() == c.NOTIFY_ACK
            except httpx.HTTPError as exc:
                log.info("Alipay sandbox notify %s not delivered (%s)", notify_id, type(exc).__name__)
            if acknowledged:
                break
            if attempt + 1 < self.notify_attempts:
                await asyncio.sleep(self.notify_backoff_seconds * 2**attempt)
        async with self.db.writing() as s:
            stored = await self._notification(s, notify_id, lock=True)
            stored.attempts += attempts
            if acknowledged and stored.acknowledged_at is None:
                stored.acknowledged_at = self._now()
        return acknowledged

    async def notifications(self, out_trade_no: str) -> list[str]:
        """The notify_ids a trade caused, oldest first."""
        async with self.db.reading() as s:
            row = await self._trade(s, out_trade_no)
            ids = (await s.execute(
                select(col(AlipayNotification.notify_id))
                .where(col(AlipayNotification.trade_no) == row.trade_no)
                .order_by(col(AlipayNotification.id))
            )).scalars().all()
        return list(ids)

    async def deliver_pending(self) -> int:
        """Sends every notify not yet acknowledged, oldest first; returns how many were."""
        async with self.db.reading() as s:
            ids = (await s.execute(
                select(col(AlipayNotification.notify_id))
                .where(col(AlipayNotification.acknowledged_at).is_(None))
                .order_by(col(AlipayNotification.id))
            )).scalars().all()
        delivered = 0
        for notify_id in ids:
            delivered += await self.deliver(notify_id)
        return delivered


if TYPE_CHECKING:  # mypy proves SandboxAlipay keeps to the contract
    _conforms: c.Alipay = SandboxAlipay(cast(Database, None), cast(Clock, None), cast(c.PlatformConfig, None))
