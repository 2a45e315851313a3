"""Payment orders: one collection of money, from opening at the channel to the HIS write-back.

    CREATED ──open at channel──▶ PAYING ──channel says paid──▶ PAID ──HIS write-back──▶ SETTLED
       └───────────────┴── not paid in time / replaced ──▶ CLOSED          │                  │
                                                  HIS refuses: REFUNDING ◀─┘   refunded in full: REFUNDED

Every transition is a conditional UPDATE on the status it leaves, so when a notification, its
duplicate, the mini-program's "I paid" and the sweeper all arrive at once, exactly one of them
moves the order and tells the patient. The channel's query is the truth; a notification only
says "look now". The write-back is idempotent at the HIS (the order number is its reference), so a
write-back that timed out is simply tried again by the sweeper.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from datasources.clock import SHANGHAI
from datasources.errors import SourceRejected, SourceUnavailable
from datasources.his import billing as b
from datasources.store.models import PaymentOrder
from resolvers import notifications
from resolvers.deps import Deps
from resolvers.errors import NotAllowed, NotFound, OrderClosed, ServiceUnavailable
from resolvers.payments.channels import PaymentChannel

log = logging.getLogger(__name__)

CREATED, PAYING, PAID, SETTLED, CLOSED = "CREATED", "PAYING", "PAID", "SETTLED", "CLOSED"
REFUNDING, REFUNDED = "REFUNDING", "REFUNDED"  # all of it going back / back
OPEN = (CREATED, PAYING)
REGISTRATION, BILLS, DEPOSIT = "REGISTRATION", "BILLS", "DEPOSIT"
CHANNEL_DOWN = "The payment service is not answering; please try again in a moment."
HIS_CHANNEL = {
    "WECHAT_PAY": b.WECHAT_PAY, "ALIPAY": b.ALIPAY, "WECHAT_MED_INS": b.WECHAT_PAY, "INSURANCE": b.INSURANCE,
    "WECHAT_NATIVE": b.WECHAT_PAY, "ALIPAY_QR": b.ALIPAY,
}
# Outside /callbacks/: the channels sign with their own keys, not as apps of the gateway.
NOTIFY_PREFIX = "/payments/notify/"
LINK_PREFIX = "/pay/"
NOTIFY_PATHS = {
    "WECHAT_PAY": "wechatpay", "ALIPAY": "alipay", "WECHAT_MED_INS": "wechatpay-medins", "INSURANCE": "",
    "WECHAT_NATIVE": "wechatpay", "ALIPAY_QR": "alipay",
}


@dataclass(frozen=True, slots=True)
class Payable:
    """What an order pays for, as its purpose module worked it out and checked it."""

    purpose: str
    subject: dict[str, Any]
    open_subject: str  # unique while an order for it is open
    patient_id: int
    his_patient_id: str
    description: str
    total_fen: int
    pay_by: datetime  # the order closes then (a registration's hold, at the latest)


@dataclass(frozen=True, slots=True)
class Order:
    order_no: str
    account_id: int
    patient_id: int
    his_patient_id: str
    purpose: str
    subject: dict[str, Any]
    channel: str
    description: str
    total_fen: int
    self_pay_fen: int
    insurance_fen: int
    fund_fen: int
    personal_account_fen: int
    family_account_fen: int
    insurance_order: str | None
    insurance_status: str | None
    refunded_fen: int
    status: str
    channel_ref: str | None
    channel_trade_no: str | None
    his_receipt_no: str | None
    invoice_url: str | None
    problem: str | None
    created_at: datetime
    expires_at: datetime
    paid_at: datetime | None
    settled_at: datetime | None
    closed_at: datetime | None


def to_order(row: PaymentOrder) -> Order:
    return Order(
        order_no=row.order_no, account_id=row.account_id, patient_id=row.patient_id,
        his_patient_id=row.his_patient_id, purpose=row.purpose, subject=json.loads(row.subject),
        channel=row.channel, description=row.description, total_fen=row.total_fen,
        self_pay_fen=row.self_pay_fen, insurance_fen=row.insurance_fen, fund_fen=row.fund_fen,
        personal_account_fen=row.personal_account_fen, family_account_fen=row.family_account_fen,
        insurance_order=row.insurance_order, insurance_status=row.insurance_status, refunded_fen=row.refunded_fen,
        status=row.status, channel_ref=row.channel_ref, channel_trade_no=row.channel_trade_no,
        his_receipt_no=row.his_receipt_no, invoice_url=row.invoice_url, problem=row.problem,
        created_at=row.created_at, expires_at=row.expires_at, paid_at=row.paid_at, settled_at=row.settled_at,
        closed_at=row.closed_at,
    )


def new_number(prefix: str, now: datetime) -> str:
    """``P20261130143000`` + 10 random digits: 25 characters, inside every channel's limit, sortable by time."""
    return f"{prefix}{now.astimezone(SHANGHAI):%Y%m%d%H%M%S}{secrets.randbelow(10**10):010d}"


@dataclass(frozen=True, slots=True)
class Institution:
    """The hospital as the insurance platform and the channels' medical-insurance orders know it."""

    org_code: str = "H44010600001"  # 定点医药机构编码
    name: str = "示范医院"


class AlreadyOpen(Exception):
    """Another order is open for the same thing."""


@dataclass(slots=True)
class Payments:
    """The channels by code and the write-back of each purpose; built once by the app."""

    channels: Mapping[str, PaymentChannel]
    order_timeout: timedelta = timedelta(minutes=15)
    # After this long, a PAID order whose write-back keeps failing is still retried, but logged loudly.
    write_back_patience: timedelta = timedelta(minutes=30)
    # Extra write-backs by purpose (the purpose modules register theirs); REGISTRATION and BILLS built in.
    write_backs: dict[str, Callable[[Deps, Order], Awaitable[b.Receipt | None]]] = field(default_factory=dict)
    # Where the channels reach this BFF (PUBLIC_BASE_URL); in development, learned from the first request.
    public_base_url: str = ""
    institution: Institution = field(default_factory=Institution)

    def link(self, order_no: str) -> str:
        """The order's payment page (聚合支付): opened in WeChat or Alipay, or scanned from its QR code."""
        return f"{self.public_base_url.rstrip('/')}{LINK_PREFIX}{order_no}" if self.public_base_url else ""

    def notify_url(self, channel_code: str) -> str:
        if not self.public_base_url:
            return ""
        return f"{self.public_base_url.rstrip('/')}{NOTIFY_PREFIX}{NOTIFY_PATHS[channel_code]}"

    def channel(self, code: str) -> PaymentChannel:
        found = self.channels.get(code)
        if found is None:
            raise NotAllowed(f"Payments by {code} are not enabled at this hospital.", "CHANNEL_NOT_ENABLED")
        return found


async def load(deps: Deps, order_no: str) -> Order | None:
    async with deps.db.reading() as s:
        row = (await s.execute(select(PaymentOrder).where(col(PaymentOrder.order_no) == order_no))).scalar_one_or_none()
    return None if row is None else to_order(row)


async def owned(deps: Deps, *, account_id: int, order_no: str) -> Order:
    order = await load(deps, order_no)
    if order is None or order.account_id != account_id:
        raise NotFound("No such payment on this account.")
    return order


async def orders_of(deps: Deps, account_id: int, *, limit: int = 50) -> list[Order]:
    async with deps.db.reading() as s:
        rows = (
            await s.execute(
                select(PaymentOrder)
                .where(col(PaymentOrder.account_id) == account_id)
                .order_by(col(PaymentOrder.created_at).desc(), col(PaymentOrder.id).desc())
                .limit(limit)
            )
        ).scalars().all()
    return [to_order(r) for r in rows]


def select_order(order_no: str) -> Any:
    return select(PaymentOrder).where(col(PaymentOrder.order_no) == order_no)


async def insert(deps: Deps, row: PaymentOrder) -> None:
    """A new order; ``AlreadyOpen`` when one is open for the same thing."""
    try:
        async with deps.db.writing() as s:
            s.add(row)
    except IntegrityError:
        raise AlreadyOpen(row.open_subject) from None


async def close_everywhere(deps: Deps, channel: PaymentChannel, order_no: str) -> None:
    """An order that will not be paid: closed at the channel (it may hold it) and here."""
    await _close_quietly(channel, order_no)
    await _move(deps, order_no, OPEN, status=CLOSED, open_subject=None, closed_at=deps.clock.now())


async def move(deps: Deps, order_no: str, from_: tuple[str, ...], **values: Any) -> bool:
    return await _move(deps, order_no, from_, **values)


async def _move(deps: Deps, order_no: str, from_: tuple[str, ...], **values: Any) -> bool:
    """The one way an order changes state: only from the states named, so one caller wins."""
    async with deps.db.writing() as s:
        result = await s.execute(
            update(PaymentOrder)
            .where(col(PaymentOrder.order_no) == order_no, col(PaymentOrder.status).in_(from_))
            .values(updated_at=deps.clock.now(), **values)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


async def start(
    deps: Deps, payments: Payments, *, account_id: int, payable: Payable, channel_code: str, payer: str
) -> Order:
    """Opens an order for ``payable`` at the channel, or returns the one already open for it.

    An order open for the same thing through another channel, or for another amount (a deposit
    top-up changed), is closed first; if it turns out to be paid, that payment is confirmed instead."""
    channel = payments.channel(channel_code)
    now = deps.clock.now()
    if payable.total_fen <= 0:
        raise NotAllowed("There is nothing to pay.", "NOTHING_TO_PAY")
    existing = await open_for(deps, payable.open_subject)
    if existing is not None:
        same = existing.subject == payable.subject and existing.total_fen == payable.total_fen
        if same and existing.channel == channel_code and existing.status == PAYING and existing.expires_at > now:
            return existing
        settled = await retire(deps, payments, existing)
        if settled is not None and settled.status in (PAID, SETTLED):
            raise NotAllowed("This has just been paid.", "ALREADY_PAID")
    expires_at = min(payable.pay_by, now + payments.order_timeout)
    if expires_at <= now + timedelta(seconds=30):
        raise OrderClosed("The time to pay has run out; book again.")
    row = PaymentOrder(
        order_no=new_number("P", now), account_id=account_id, patient_id=payable.patient_id,
        his_patient_id=payable.his_patient_id, purpose=payable.purpose,
        subject=json.dumps(payable.subject, sort_keys=True), open_subject=payable.open_subject,
        channel=channel_code, description=payable.description, total_fen=payable.total_fen,
        self_pay_fen=payable.total_fen, status=CREATED, created_at=now, expires_at=expires_at, updated_at=now,
    )
    try:
        async with deps.db.writing() as s:
            s.add(row)
    except IntegrityError:
        # Another request opened one for the same thing a moment ago: that one is the order.
        raced = await open_for(deps, payable.open_subject)
        if raced is None:
            raise ServiceUnavailable("Another payment for this was just started; try again.") from None
        return raced
    try:
        ref = await channel.open(
            order_no=row.order_no, description=payable.description, amount_fen=payable.total_fen, payer=payer,
            notify_url=payments.notify_url(channel_code), expires_at=expires_at,
        )
    except (SourceRejected, SourceUnavailable) as exc:
        # The channel may or may not hold the order: close it there too, and here.
        await _close_quietly(channel, row.order_no)
        await _move(deps, row.order_no, OPEN, status=CLOSED, open_subject=None, closed_at=deps.clock.now())
        if isinstance(exc, SourceRejected):
            log.warning("%s refused to open order %s: %s", channel_code, row.order_no, exc.code)
        raise ServiceUnavailable(CHANNEL_DOWN) from exc
    await _move(deps, row.order_no, (CREATED,), status=PAYING, channel_ref=ref)
    opened = await load(deps, row.order_no)
    assert opened is not None
    return opened


async def open_for(deps: Deps, open_subject: str) -> Order | None:
    async with deps.db.reading() as s:
        row = (
            await s.execute(select(PaymentOrder).where(col(PaymentOrder.open_subject) == open_subject))
        ).scalar_one_or_none()
    return None if row is None else to_order(row)


async def _close_quietly(channel: PaymentChannel, order_no: str) -> None:
    try:
        await channel.close(order_no)
    except (SourceRejected, SourceUnavailable) as exc:
        log.info("could not close order %s at %s: %s", order_no, channel.code, type(exc).__name__)


async def retire(deps: Deps, payments: Payments, order: Order) -> Order | None:
    """Ends an open order: confirmed if the channel says it was paid, otherwise closed there and here."""
    confirmed = await confirm(deps, payments, order.order_no)
    if confirmed.status not in OPEN:
        return confirmed
    channel = payments.channel(order.channel)
    try:
        await channel.close(order.order_no)
    except SourceRejected:
        return await confirm(deps, payments, order.order_no)  # paid in between
    except SourceUnavailable as exc:
        raise ServiceUnavailable(CHANNEL_DOWN) from exc
    await _move(deps, order.order_no, OPEN, status=CLOSED, open_subject=None, closed_at=deps.clock.now())
    if order.insurance_status is not None:
        from resolvers.payments import insured  # the insurance part of a mixed order

        await insured.cancel_upload(deps, order.order_no)
    return await load(deps, order.order_no)


def client_parameters(payments: Payments, order: Order) -> dict[str, str]:
    if order.status != PAYING or order.channel_ref is None:
        return {}
    return payments.channel(order.channel).client_parameters(order.channel_ref)


async def confirm(deps: Deps, payments: Payments, order_no: str) -> Order:
    """Asks the channel how the order stands and moves it on: PAID, then written back to the HIS.
    Safe to call any number of times, from anywhere, concurrently."""
    order = await load(deps, order_no)
    if order is None:
        raise NotFound("No such payment.")
    if order.status in OPEN or order.status == CLOSED:
        try:
            state = await payments.channel(order.channel).state(order_no)
        except SourceUnavailable:
            return order  # the notification will come again, the sweeper will ask again
        if state.paid:
            if await _move(
                deps, order_no, (CREATED, PAYING, CLOSED), status=PAID, open_subject=None,
                channel_trade_no=state.trade_no, paid_at=state.paid_at or deps.clock.now(),
            ):
                log.info("order %s paid through %s", order_no, order.channel)
                if state.paid_fen is not None and state.paid_fen != order.self_pay_fen:
                    log.error("order %s: the channel took %s fen, the order asked %s", order_no, state.paid_fen,
                              order.self_pay_fen)
        elif state.closed and order.status in OPEN:
            await _move(deps, order_no, OPEN, status=CLOSED, open_subject=None, closed_at=deps.clock.now())
        order = await load(deps, order_no) or order
    if order.status == PAID:
        await write_back(deps, payments, order)
        order = await load(deps, order_no) or order
    return order


async def write_back(deps: Deps, payments: Payments, order: Order) -> None:
    """Tells the HIS; on success the order is SETTLED and the patient told, once. A refusal (the
    registration expired meanwhile, the bill was paid at the counter) refunds the patient in full."""
    from resolvers.payments import insured, refunds  # the other halves of this flow

    if order.insurance_status == insured.UPLOADED:
        await insured.settle_insurance(deps, payments, order)
        fresh = await load(deps, order.order_no)
        if fresh is None or fresh.status != PAID or fresh.insurance_status != insured.PAID:
            return
        order = fresh
    try:
        receipt = await _write_back_call(deps, payments, order)
    except SourceUnavailable:
        await _count_attempt(deps, order)
        return
    except SourceRejected as exc:
        if await _move(deps, order.order_no, (PAID,), status=REFUNDING, problem=exc.code[:64]):
            log.warning("HIS refused order %s (%s): refunding it in full", order.order_no, exc.code)
            moved = await load(deps, order.order_no)
            assert moved is not None
            await refunds.request(
                deps, payments, moved, amount_fen=refunds.refundable(moved), reason=_refused_reason(exc.code),
                cause=refunds.NOT_PAYABLE_AT_HIS,
            )
        return
    now = deps.clock.now()
    async with deps.db.writing() as s:
        result = await s.execute(
            update(PaymentOrder)
            .where(col(PaymentOrder.order_no) == order.order_no, col(PaymentOrder.status) == PAID)
            .values(
                status=SETTLED, settled_at=now, updated_at=now,
                his_receipt_no=receipt.receipt_no if receipt else None,
                invoice_url=receipt.invoice_url if receipt else None,
            )
        )
        if result.rowcount:  # type: ignore[attr-defined]
            notifications.add(
                s, account_id=order.account_id, kind="PAYMENT_SUCCEEDED", title="Payment received",
                body=f"{order.description}: {order.total_fen / 100:.2f} yuan paid.", at=now,
            )


def _refused_reason(code: str) -> str:
    return {
        b.REGISTRATION_NOT_PAYABLE: "The time to pay for the registration had ended.",
        b.BILL_NOT_PAYABLE: "The bill had already been settled.",
    }.get(code, "The hospital could not record this payment.")


async def _write_back_call(deps: Deps, payments: Payments, order: Order) -> b.Receipt | None:
    billing = deps.sources.billing
    if billing is None:
        raise SourceUnavailable("his", "billing is not configured")
    channel = HIS_CHANNEL.get(order.channel, order.channel)
    if order.insurance_fen and order.self_pay_fen:
        channel = b.MIXED
    record = b.PaymentRecord(
        reference=order.order_no, channel=channel, total_fen=order.total_fen, self_pay_fen=order.self_pay_fen,
        fund_fen=order.fund_fen, personal_account_fen=order.personal_account_fen,
        family_account_fen=order.family_account_fen, channel_trade_no=order.channel_trade_no or "",
        insurance_settlement_id=order.insurance_order or "", paid_at=order.paid_at,
    )
    if order.purpose == REGISTRATION:
        return await billing.pay_registration(str(order.subject["registrationId"]), record)
    if order.purpose == BILLS:
        return await billing.pay_bills([str(i) for i in order.subject["billIds"]], record)
    custom = payments.write_backs.get(order.purpose)
    if custom is None:
        raise SourceRejected("his", "UNKNOWN_PURPOSE", order.purpose)
    return await custom(deps, order)


async def _count_attempt(deps: Deps, order: Order) -> None:
    async with deps.db.writing() as s:
        await s.execute(
            update(PaymentOrder)
            .where(col(PaymentOrder.order_no) == order.order_no)
            .values(write_back_attempts=col(PaymentOrder.write_back_attempts) + 1)
        )
    if order.paid_at and deps.clock.now() - order.paid_at > timedelta(minutes=30):
        log.error("order %s paid but still not recorded at the HIS; retrying", order.order_no)


async def sweep(deps: Deps, payments: Payments) -> int:
    """One round of the background work: open orders past their time are confirmed or closed;
    paid ones not yet written back are tried again. Returns how many orders it looked at."""
    now = deps.clock.now()
    async with deps.db.reading() as s:
        due = (
            await s.execute(
                select(col(PaymentOrder.order_no)).where(
                    (col(PaymentOrder.status).in_(OPEN) & (col(PaymentOrder.expires_at) <= now))
                    | (col(PaymentOrder.status) == PAID)
                ).limit(200)
            )
        ).scalars().all()
    for order_no in due:
        try:
            order = await confirm(deps, payments, order_no)
            if order.status in OPEN and order.expires_at <= now:
                await retire(deps, payments, order)
        except Exception:
            log.exception("sweeping order %s failed; next round", order_no)
    return len(due)
