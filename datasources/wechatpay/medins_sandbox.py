"""The med-ins orders' sandbox, beside the JSAPI one (``SandboxWeChatPay``) whose database, clock,
keys, prepays, refunds and notification delivery it shares: a cash part is a prepay of that sandbox,
and the ``MEDICAL_INSURANCE.SUCCESS`` callback goes out through its ``deliver`` (signed, sealed,
retried), recorded in ``wxpay_notification`` under the order's ``mix_trade_no``.

The back office's ``pay_med_ins`` plays the patient confirming in ``wx.requestMedicalInsurancePay``:
the cash prepay is paid (its own TRANSACTION.SUCCESS goes to its notify_url), then both parts are
settled and the callback is sent. The insurance platform's side (6202) is not called: the order
only carries its ``pay_order_id``.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import asdict
from datetime import datetime
from typing import TYPE_CHECKING, cast

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from datasources.clock import SHANGHAI
from datasources.errors import SourceRejected
from datasources.wechatpay import contract as c
from datasources.wechatpay import medins_contract as m
from datasources.wechatpay import medins_wire, wire
from datasources.wechatpay.sandbox import SandboxWeChatPay
from datasources.wechatpay.tables import WxpayMedInsOrder, WxpayMedInsRefund, WxpayOrder, WxpayRefund

_DIGEST = re.compile(r"[0-9a-f]{32}")
FAIL_REASON = "自费部分未支付，医保结算未完成"  # the sandbox's one way to fail: the cash prepay closed first


def _reject(code: str, detail: str = "") -> SourceRejected:
    return SourceRejected(c.SOURCE, code, detail)


def fingerprint(request: m.MedInsOrderRequest) -> str:
    """SHA-256 of the whole request (payer included, never stored in clear)."""
    canonical = json.dumps(
        asdict(request), sort_keys=True, ensure_ascii=False,
        default=lambda v: wire.rfc3339(v) if isinstance(v, datetime) else str(v),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _check_params(r: m.MedInsOrderRequest) -> None:
    problems = [
        (r.mix_pay_type not in m.MIX_PAY_TYPES, "mix_pay_type is unknown"),
        (r.order_type not in m.ORDER_TYPES, "order_type is unknown"),
        (not 0 < len(r.out_trade_no) <= 64, "out_trade_no is required (≤64)"),
        (not (r.openid and r.serial_no and r.city_id and r.med_inst_no and r.med_inst_name),
         "a required field is empty"),
        (not r.callback_url.startswith(("https://", "http://")), "callback_url must be an absolute URL"),
        (r.med_ins_order_create_time is not None and r.med_ins_order_create_time.tzinfo is None,
         "med_ins_order_create_time needs an offset"),
    ]
    for person in (r.payer, r.relative):
        if person is not None:
            problems.append((not person.name or _DIGEST.fullmatch(person.id_digest) is None,
                             "payer/relative needs a name and a 32-hex id_digest"))
            problems.append((person.card_type not in m.CARD_TYPES, "card_type is unknown"))
    for failed, detail in problems:
        if failed:
            raise _reject(c.PARAM_ERROR, detail)


class SandboxWeChatMedInsPay:
    """Implements ``WeChatMedInsPay`` for ``pay``'s merchant, and pays orders as the patient would."""

    def __init__(self, pay: SandboxWeChatPay) -> None:
        self.pay = pay
        self.db = pay.db
        self.clock = pay.clock
        self.merchant = pay.merchant

    # --- the contract ------------------------------------------------------------------------------
    async def create_med_ins_order(self, request: m.MedInsOrderRequest) -> m.MedInsOrder:
        _check_params(request)
        violation = request.rule_violation()
        if violation is not None:
            raise _reject(m.RULE_LIMIT, violation)
        wanted = fingerprint(request)
        for _ in range(2):
            try:
                async with self.db.writing() as s:
                    row = await self._row(s, out_trade_no=request.out_trade_no)
                    if row is not None:
                        if row.fingerprint != wanted:
                            raise _reject(m.ALREADY_EXISTS, f"out_trade_no {request.out_trade_no} has another order")
                        return await self._view(s, row)
                    if request.prepay_id is not None:
                        await self._check_prepay(s, request)
                    row = self._new_row(request, wanted)
                    s.add(row)
                    await s.flush()
                    return await self._view(s, row)
            except IntegrityError:
                continue  # the same out_trade_no created meanwhile: answer as for a repeated request
        raise _reject(c.SYSTEM_ERROR, "could not create the order")

    async def query_med_ins_order(self, mix_trade_no: str) -> m.MedInsOrder:
        return await self._query(mix_trade_no=mix_trade_no)

    async def query_med_ins_order_by_out_trade_no(self, out_trade_no: str) -> m.MedInsOrder:
        return await self._query(out_trade_no=out_trade_no)

    async def notify_med_ins_refund(self, mix_trade_no: str, refund: m.MedInsRefund) -> None:
        parts = (refund.med_refund_gov_fee, refund.med_refund_self_fee, refund.med_refund_other_fee)
        if any(isinstance(f, bool) or not isinstance(f, int) or f < 0 for f in (*parts, refund.med_refund_total_fee)):
            raise _reject(c.PARAM_ERROR, "refund amounts are non-negative integer fen")
        if refund.med_refund_total_fee != sum(parts) or refund.med_refund_total_fee == 0:
            raise _reject(m.RULE_LIMIT, "med_refund_total_fee is not gov + self + other (and not zero)")
        if not 0 < len(refund.out_refund_no) <= 64 or refund.refund_time.tzinfo is None:
            raise _reject(c.PARAM_ERROR, "out_refund_no (≤64) and refund_time with an offset are required")
        async with self.db.writing() as s:
            row = await self._row(s, mix_trade_no=mix_trade_no, lock=True)
            if row is None:
                raise _reject(c.ORDER_NOT_EXIST, f"no med-ins order {mix_trade_no}")
            told = (await s.execute(
                select(WxpayMedInsRefund).where(col(WxpayMedInsRefund.out_refund_no) == refund.out_refund_no)
            )).scalar_one_or_none()
            if told is not None:
                same = (told.mix_trade_no, told.med_refund_gov_fee, told.med_refund_self_fee,
                        told.med_refund_other_fee) == (mix_trade_no, *parts)
                if not same:
                    raise _reject(m.ALREADY_EXISTS, f"out_refund_no {refund.out_refund_no} was told other amounts")
                return
            if row.med_ins_pay_status != "MED_INS_PAY_SUCCESS":
                raise _reject(c.INVALID_REQUEST, f"the insurance part of {mix_trade_no} is not paid")
            before = (await s.execute(
                select(
                    func.coalesce(func.sum(WxpayMedInsRefund.med_refund_gov_fee), 0),
                    func.coalesce(func.sum(WxpayMedInsRefund.med_refund_self_fee), 0),
                    func.coalesce(func.sum(WxpayMedInsRefund.med_refund_other_fee), 0),
                ).where(col(WxpayMedInsRefund.mix_trade_no) == mix_trade_no)
            )).one()
            paid = (row.med_ins_gov_fee, row.med_ins_self_fee, row.med_ins_other_fee)
            if any(b + p > limit for b, p, limit in zip(before, parts, paid, strict=True)):
                raise _reject(m.RULE_LIMIT, "the insurance refunds exceed what the insurance paid")
            if row.prepay_id is not None and not await self._cash_refund_exists(s, row, refund.out_refund_no):
                raise _reject(c.INVALID_REQUEST, "with a cash part, out_refund_no is the cash refund's")
            s.add(WxpayMedInsRefund(
                out_refund_no=refund.out_refund_no, mix_trade_no=mix_trade_no,
                med_refund_total_fee=refund.med_refund_total_fee, med_refund_gov_fee=parts[0],
                med_refund_self_fee=parts[1], med_refund_other_fee=parts[2], refund_time=refund.refund_time,
                created_at=self.clock.now(),
            ))

    def med_ins_payment(self, mix_trade_no: str, prepay_id: str | None) -> dict[str, str]:
        return medins_wire.med_ins_payment(self.merchant, mix_trade_no, prepay_id, self.clock.now())

    def parse_med_ins_notification(self, headers: dict[str, str], body: bytes) -> m.MedInsNotification:
        return medins_wire.parse_notification(self.merchant, headers, body, self.clock.now())

    # --- the back office -------------------------------------------------------------------------------
    async def pay_med_ins(self, reference: str, *, deliver: bool = True) -> m.MedInsOrder:
        """The patient confirms the order named by its mix_trade_no or out_trade_no. A cash part is paid
        through its prepay first (unless the patient paid it already); a prepay that can no longer be
        paid (closed, expired) fails the order: MIX_PAY_FAIL, and ORDER_CLOSED is raised. Then both
        parts are settled and MEDICAL_INSURANCE.SUCCESS is delivered (unless ``deliver`` is False)."""
        async with self.db.reading() as s:
            row = await self._row(s, mix_trade_no=reference) or await self._row(s, out_trade_no=reference)
        if row is None:
            raise _reject(c.ORDER_NOT_EXIST, f"no med-ins order {reference}")
        cash_failed = None
        if row.prepay_id is not None and row.mix_pay_status == "MIX_PAY_CREATED":
            try:
                await self.pay.pay(row.prepay_id, deliver=deliver)
            except SourceRejected as exc:
                if exc.code == c.ORDER_CLOSED:
                    cash_failed = exc
                elif exc.code != c.ORDERPAID:  # paid by the patient already: fine
                    raise
        async with self.db.writing() as s:
            row = await self._row(s, mix_trade_no=row.mix_trade_no, lock=True)
            assert row is not None
            if row.mix_pay_status != "MIX_PAY_CREATED":
                raise _reject(c.ORDERPAID if row.mix_pay_status == "MIX_PAY_SUCCESS" else c.ORDER_CLOSED,
                              f"med-ins order {row.mix_trade_no} is {row.mix_pay_status}")
            if cash_failed is not None:
                row.mix_pay_status, row.self_pay_status = "MIX_PAY_FAIL", "SELF_PAY_FAIL"
                if row.med_ins_pay_status != "NO_MED_INS_PAY":
                    row.med_ins_pay_status = "MED_INS_PAY_FAIL"
                notify_id = None
            else:
                row.mix_pay_status = "MIX_PAY_SUCCESS"
                if row.self_pay_status != "NO_SELF_PAY":
                    row.self_pay_status = "SELF_PAY_SUCCESS"
                if row.med_ins_pay_status != "NO_MED_INS_PAY":
                    row.med_ins_pay_status = "MED_INS_PAY_SUCCESS"
                row.paid_time = self.clock.now().replace(microsecond=0)
                order = await self._view(s, row)
                notify_id = self.pay._notification(
                    s, m.SUCCESS_EVENT, "医保混合收款成功", row.mix_trade_no, row.callback_url, "mix_trade",
                    medins_wire.order_json(order),
                )
        if notify_id is None:
            assert cash_failed is not None
            raise cash_failed
        if deliver:
            await self.pay.deliver(notify_id)
        return order

    # --- rows ------------------------------------------------------------------------------------------
    def _new_row(self, r: m.MedInsOrderRequest, fingerprint: str) -> WxpayMedInsOrder:
        now = self.clock.now()
        return WxpayMedInsOrder(
            mix_trade_no=now.astimezone(SHANGHAI).strftime("%Y%m%d%H%M%S") + f"{secrets.randbelow(10**16):016d}",
            out_trade_no=r.out_trade_no, fingerprint=fingerprint, mix_pay_type=r.mix_pay_type,
            order_type=r.order_type, appid=self.merchant.appid, openid=r.openid, serial_no=r.serial_no,
            pay_order_id=r.pay_order_id, prepay_id=r.prepay_id, total_fee=r.total_fee,
            med_ins_gov_fee=r.med_ins_gov_fee, med_ins_self_fee=r.med_ins_self_fee,
            med_ins_other_fee=r.med_ins_other_fee, med_ins_cash_fee=r.med_ins_cash_fee,
            wechat_pay_cash_fee=r.wechat_pay_cash_fee, callback_url=r.callback_url, attach=r.attach,
            med_ins_test_env=r.med_ins_test_env, mix_pay_status="MIX_PAY_CREATED",
            self_pay_status="NO_SELF_PAY" if r.mix_pay_type == "INSURANCE_ONLY" else "SELF_PAY_CREATED",
            med_ins_pay_status="NO_MED_INS_PAY" if r.mix_pay_type == "CASH_ONLY" else "MED_INS_PAY_CREATED",
            created_at=now,
        )

    async def _check_prepay(self, s: AsyncSession, r: m.MedInsOrderRequest) -> None:
        """The cash part is the merchant's own JSAPI prepay: same out_trade_no, payer and amount."""
        prepay = (
            await s.execute(select(WxpayOrder).where(col(WxpayOrder.prepay_id) == r.prepay_id))
        ).scalar_one_or_none()
        if prepay is None:
            raise _reject(c.INVALID_REQUEST, "prepay_id is not one of this merchant's prepays")
        if (prepay.out_trade_no, prepay.payer_openid, prepay.amount_fen) != (r.out_trade_no, r.openid,
                                                                             r.wechat_pay_cash_fee):
            raise _reject(c.INVALID_REQUEST, "the prepay's out_trade_no, openid or amount differ from the order's")
        if prepay.trade_state == "CLOSED":
            raise _reject(c.ORDER_CLOSED, "the cash part's prepay is closed")

    async def _cash_refund_exists(self, s: AsyncSession, row: WxpayMedInsOrder, out_refund_no: str) -> bool:
        prepay = (await s.execute(select(WxpayOrder).where(col(WxpayOrder.prepay_id) == row.prepay_id))).scalar_one()
        refund = (await s.execute(
            select(WxpayRefund).where(col(WxpayRefund.out_refund_no) == out_refund_no)
        )).scalar_one_or_none()
        return refund is not None and refund.out_trade_no == prepay.out_trade_no

    async def _view(self, s: AsyncSession, row: WxpayMedInsOrder) -> m.MedInsOrder:
        """The order as answered; refunds show here: the cash part's from its prepay, the insurance
        part's from the refunds told."""
        self_status, med_status, mix_status = row.self_pay_status, row.med_ins_pay_status, row.mix_pay_status
        if mix_status == "MIX_PAY_SUCCESS":
            if row.prepay_id is not None:
                prepay = (await s.execute(
                    select(WxpayOrder).where(col(WxpayOrder.prepay_id) == row.prepay_id)
                )).scalar_one()
                if prepay.refunded_fen >= prepay.amount_fen:
                    self_status = "SELF_PAY_REFUND"
            if med_status != "NO_MED_INS_PAY":
                told = (await s.execute(
                    select(func.coalesce(func.sum(WxpayMedInsRefund.med_refund_total_fee), 0))
                    .where(col(WxpayMedInsRefund.mix_trade_no) == row.mix_trade_no)
                )).scalar_one()
                if told >= row.med_ins_gov_fee + row.med_ins_self_fee + row.med_ins_other_fee:
                    med_status = "MED_INS_PAY_REFUND"
            if self_status in ("SELF_PAY_REFUND", "NO_SELF_PAY") and med_status in ("MED_INS_PAY_REFUND",
                                                                                     "NO_MED_INS_PAY"):
                mix_status = "MIX_PAY_REFUND"
        return m.MedInsOrder(
            mix_trade_no=row.mix_trade_no, mix_pay_status=mix_status, self_pay_status=self_status,
            med_ins_pay_status=med_status, paid_time=row.paid_time, passthrough_response_content=None,
            mix_pay_type=row.mix_pay_type, order_type=row.order_type, appid=row.appid, openid=row.openid,
            out_trade_no=row.out_trade_no, serial_no=row.serial_no, pay_order_id=row.pay_order_id,
            total_fee=row.total_fee, med_ins_gov_fee=row.med_ins_gov_fee, med_ins_self_fee=row.med_ins_self_fee,
            med_ins_other_fee=row.med_ins_other_fee, med_ins_cash_fee=row.med_ins_cash_fee,
            wechat_pay_cash_fee=row.wechat_pay_cash_fee, prepay_id=row.prepay_id, attach=row.attach,
            med_ins_test_env=row.med_ins_test_env,
            med_ins_fail_reason=FAIL_REASON if med_status == "MED_INS_PAY_FAIL" else None,
        )

    async def _query(self, *, mix_trade_no: str | None = None, out_trade_no: str | None = None) -> m.MedInsOrder:
        async with self.db.reading() as s:
            row = await self._row(s, mix_trade_no=mix_trade_no, out_trade_no=out_trade_no)
            if row is None:
                raise _reject(c.ORDER_NOT_EXIST, "no such med-ins order")
            return await self._view(s, row)

    async def _row(
        self, s: AsyncSession, *, mix_trade_no: str | None = None, out_trade_no: str | None = None, lock: bool = False
    ) -> WxpayMedInsOrder | None:
        stmt = select(WxpayMedInsOrder).where(
            col(WxpayMedInsOrder.mix_trade_no) == mix_trade_no
            if mix_trade_no is not None
            else col(WxpayMedInsOrder.out_trade_no) == out_trade_no
        )
        if lock:
            stmt = stmt.with_for_update()
        return cast(WxpayMedInsOrder | None, (await s.execute(stmt)).scalar_one_or_none())


if TYPE_CHECKING:  # mypy proves the sandbox keeps to the contract
    _conforms: m.WeChatMedInsPay = SandboxWeChatMedInsPay(cast(SandboxWeChatPay, None))
