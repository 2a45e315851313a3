"""Refunds by the original route: the HIS agrees first (nothing dispensed or performed), then the
channel returns the money; each part of a mixed payment goes back to where it came from.

A refund is a row before it is a call: the amount is reserved on the order in the same
transaction (``refunded_fen`` counts refunds under way and done, so two refunds never together
pass what was paid), and the refund number is the channel's out_refund_no, so asking again after a
crash or a timeout never returns money twice. A refund that needs an operator's approval waits
in PENDING_APPROVAL; one the channel or the HIS refuses is FAILED and gives its reservation back.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from datasources.errors import SourceRejected, SourceUnavailable
from datasources.his import billing as b
from datasources.store.models import PaymentOrder, PaymentRefund
from resolvers import notifications
from resolvers.deps import Deps
from resolvers.errors import NotAllowed, RefundExceedsPaid
from resolvers.payments import orders as o

log = logging.getLogger(__name__)

PENDING_APPROVAL, REQUESTED, PROCESSING = "PENDING_APPROVAL", "REQUESTED", "PROCESSING"
SUCCEEDED, FAILED, REJECTED = "SUCCEEDED", "FAILED", "REJECTED"
UNDER_WAY = (REQUESTED, PROCESSING)
# What a caller records in the transaction of an operator's decision (the audit record, last).
Decided = Callable[[AsyncSession, datetime, "Refund"], Awaitable[None]]
# A medical-insurance order's cash is refunded through the ordinary refund API, notified as such.
REFUND_NOTIFIED_AS = {"WECHAT_MED_INS": "WECHAT_PAY", "WECHAT_NATIVE": "WECHAT_PAY"}
PATIENT_CANCELLED, NOT_PAYABLE_AT_HIS, OPERATOR, RECONCILIATION = (
    "PATIENT_CANCELLED", "NOT_PAYABLE_AT_HIS", "OPERATOR", "RECONCILIATION",
)


@dataclass(frozen=True, slots=True)
class Refund:
    refund_no: str
    order_no: str
    amount_fen: int
    self_pay_fen: int
    insurance_fen: int
    reason: str
    cause: str
    bill_ids: tuple[str, ...]
    status: str
    failure: str | None
    created_at: datetime
    succeeded_at: datetime | None


def to_refund(row: PaymentRefund) -> Refund:
    return Refund(
        refund_no=row.refund_no, order_no=row.order_no, amount_fen=row.amount_fen, self_pay_fen=row.self_pay_fen,
        insurance_fen=row.insurance_fen, reason=row.reason, cause=row.cause,
        bill_ids=tuple(json.loads(row.bill_ids)), status=row.status, failure=row.failure,
        created_at=row.created_at, succeeded_at=row.succeeded_at,
    )


def refundable(order: o.Order) -> int:
    """What can still go back: the cash, and the insurance part once the platform took it."""
    insured = order.insurance_fen if order.insurance_status in ("PAID", "REFUNDED") else 0
    return max(0, order.self_pay_fen + insured - order.refunded_fen)


async def request(
    deps: Deps, payments: o.Payments, order: o.Order, *, amount_fen: int, reason: str, cause: str,
    bill_ids: tuple[str, ...] = (), requested_by: int | None = None, needs_approval: bool = False,
) -> Refund:
    """Reserves ``amount_fen`` of the order and records the refund; runs it unless it needs approval.
    An order the insurance paid part of is refunded whole: the platform returns its part only whole (6203)."""
    if amount_fen <= 0:
        raise NotAllowed("A refund is a positive amount.", "NOTHING_TO_REFUND")
    now = deps.clock.now()
    async with deps.db.writing() as s:
        fresh = (await s.execute(o.select_order(order.order_no).with_for_update())).scalar_one()
        current = o.to_order(fresh)
        left = refundable(current)
        if fresh.status not in (o.PAID, o.SETTLED, o.REFUNDING) or amount_fen > left:
            raise RefundExceedsPaid(left if fresh.status in (o.PAID, o.SETTLED, o.REFUNDING) else 0)
        insurance = current.insurance_fen if current.insurance_status == "PAID" else 0
        if insurance and amount_fen != left:
            raise NotAllowed("A payment made partly with insurance is refunded in full.", "REFUND_IN_FULL_ONLY")
        # Optimistic: the row was read under FOR UPDATE (PostgreSQL); on SQLite the write lock serializes.
        reserved = await s.execute(
            update(PaymentOrder)
            .where(col(PaymentOrder.order_no) == order.order_no, col(PaymentOrder.refunded_fen) == fresh.refunded_fen)
            .values(refunded_fen=col(PaymentOrder.refunded_fen) + amount_fen, updated_at=now)
        )
        if not reserved.rowcount:  # type: ignore[attr-defined]
            raise RefundExceedsPaid(left)
        row = PaymentRefund(
            refund_no=o.new_number("R", now), order_no=order.order_no, amount_fen=amount_fen,
            self_pay_fen=amount_fen - insurance, insurance_fen=insurance, reason=reason[:128], cause=cause,
            bill_ids=json.dumps(list(bill_ids)), status=PENDING_APPROVAL if needs_approval else REQUESTED,
            requested_by=requested_by, created_at=now, updated_at=now,
        )
        s.add(row)
    if not needs_approval:
        return await execute(deps, payments, row.refund_no)
    return to_refund(row)


async def load(deps: Deps, refund_no: str) -> Refund | None:
    async with deps.db.reading() as s:
        row = (
            await s.execute(select(PaymentRefund).where(col(PaymentRefund.refund_no) == refund_no))
        ).scalar_one_or_none()
    return None if row is None else to_refund(row)


async def of_orders(deps: Deps, order_nos: list[str]) -> list[list[Refund]]:
    async with deps.db.reading() as s:
        rows = (
            await s.execute(
                select(PaymentRefund).where(col(PaymentRefund.order_no).in_(order_nos)).order_by(col(PaymentRefund.id))
            )
        ).scalars().all()
    grouped: dict[str, list[Refund]] = {n: [] for n in order_nos}
    for r in rows:
        grouped[r.order_no].append(to_refund(r))
    return [grouped[n] for n in order_nos]


async def _set(deps: Deps, refund_no: str, from_: tuple[str, ...], **values: object) -> bool:
    async with deps.db.writing() as s:
        result = await s.execute(
            update(PaymentRefund)
            .where(col(PaymentRefund.refund_no) == refund_no, col(PaymentRefund.status).in_(from_))
            .values(updated_at=deps.clock.now(), **values)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


async def _fail(deps: Deps, refund: Refund, why: str) -> None:
    """The refund will not happen: its reservation goes back to the order."""
    now = deps.clock.now()
    async with deps.db.writing() as s:
        moved = await s.execute(
            update(PaymentRefund)
            .where(col(PaymentRefund.refund_no) == refund.refund_no, col(PaymentRefund.status).in_(UNDER_WAY))
            .values(status=FAILED, failure=why[:256], updated_at=now)
        )
        if moved.rowcount:  # type: ignore[attr-defined]
            await s.execute(
                update(PaymentOrder)
                .where(col(PaymentOrder.order_no) == refund.order_no)
                .values(refunded_fen=col(PaymentOrder.refunded_fen) - refund.amount_fen, updated_at=now)
            )


async def execute(deps: Deps, payments: o.Payments, refund_no: str) -> Refund:
    """Moves a refund on as far as it can go now; safe to repeat. HIS first, then the cash through the
    channel, then the insurance part through the platform."""
    refund = await load(deps, refund_no)
    assert refund is not None
    order = await o.load(deps, refund.order_no)
    assert order is not None
    if refund.status not in UNDER_WAY:
        return refund
    if order.settled_at is not None and not await _his_agreed(deps, refund_no):  # the HIS recorded it
        try:
            await _his_refund(deps, order, refund)
        except SourceRejected as exc:
            await _fail(deps, refund, f"the HIS refused: {exc.code}")
            raise NotAllowed(_his_refusal(exc.code), exc.code) from exc
        except SourceUnavailable:
            return refund  # the sweeper asks again
        await _set(deps, refund_no, UNDER_WAY, his_written_back_at=deps.clock.now())
    # The cash first (a WeChat medical-insurance order is told of the insurance refund under the cash
    # refund's number, so that one must exist), then the insurance part, then it is done.
    cash = "SUCCEEDED"
    refund_id: str | None = None
    if refund.self_pay_fen > 0:
        channel = payments.channel(order.channel)
        try:
            if refund.status == PROCESSING:
                state = await channel.refund_state(order_no=order.order_no, refund_no=refund_no)
            else:
                state = await channel.refund(
                    order_no=order.order_no, refund_no=refund_no, amount_fen=refund.self_pay_fen,
                    total_fen=order.self_pay_fen, reason=refund.reason,
                    notify_url=payments.notify_url(REFUND_NOTIFIED_AS.get(order.channel, order.channel)),
                )
        except SourceUnavailable:
            return refund
        except SourceRejected as exc:
            log.error("%s refused refund %s of order %s: %s", order.channel, refund_no, order.order_no, exc.code)
            await _fail(deps, refund, f"{order.channel} refused: {exc.code}")
            return await load(deps, refund_no) or refund
        if state is not None and state.status == "FAILED":
            await _fail(deps, refund, f"{order.channel} could not return the money")
            return await load(deps, refund_no) or refund
        cash = "PROCESSING" if state is None or state.status == "PROCESSING" else "SUCCEEDED"
        refund_id = state.refund_id if state else None
        if cash == "PROCESSING":
            await _set(deps, refund_no, (REQUESTED,), status=PROCESSING, channel_refund_id=refund_id)
    if refund.insurance_fen and order.insurance_status == "PAID":
        from resolvers.payments import insured  # 6203, the insurance part back to the fund and accounts

        try:
            if not await insured.refund_insurance(deps, order, refund_no, refund.reason):
                return await load(deps, refund_no) or refund  # the platform is down: the sweeper asks again
        except SourceRejected as exc:
            # The cash may be on its way back already: not FAILED (that would free the amount), but
            # left under way and logged loudly, for the reconciliation and an operator.
            log.error("the insurance platform refused refund %s of order %s: %s", refund_no, order.order_no, exc.code)
            await _set(deps, refund_no, UNDER_WAY, failure=f"the insurance platform refused: {exc.code}")
            return await load(deps, refund_no) or refund
    if cash == "SUCCEEDED":
        await succeeded(deps, refund_no, refund_id)
    return await load(deps, refund_no) or refund


async def _his_agreed(deps: Deps, refund_no: str) -> bool:
    async with deps.db.reading() as s:
        row = (
            await s.execute(select(PaymentRefund).where(col(PaymentRefund.refund_no) == refund_no))
        ).scalar_one()
    return row.his_written_back_at is not None


async def _his_refund(deps: Deps, order: o.Order, refund: Refund) -> None:
    billing = deps.sources.billing
    if billing is None:
        raise SourceUnavailable("his", "billing is not configured")
    record = b.RefundRecord(
        reference=refund.refund_no, payment_reference=order.order_no, amount_fen=refund.amount_fen,
        self_pay_fen=refund.self_pay_fen, insurance_fen=refund.insurance_fen, reason=refund.reason,
        refunded_at=deps.clock.now(), bill_ids=refund.bill_ids,
    )
    if order.purpose == o.DEPOSIT:  # out of the deposit's balance, against the top-up it came with
        await billing.refund_deposit(
            order.his_patient_id, order.subject["kind"], order.subject.get("admissionId"), record
        )
    else:
        await billing.refund(record)


def _his_refusal(code: str) -> str:
    return {
        b.INSUFFICIENT_DEPOSIT: "The deposit no longer holds this much (it paid for care meanwhile).",
        b.NOT_REFUNDABLE: "Part of this was already dispensed or performed, so it cannot be refunded here.",
        b.REFUND_EXCEEDS_PAID: "The hospital has already refunded this.",
    }.get(code, "The hospital could not record this refund; please ask at the cashier.")


async def succeeded(deps: Deps, refund_no: str, channel_refund_id: str | None) -> None:
    """The money is back: recorded once, the order REFUNDED when nothing of it is left, the patient told."""
    now = deps.clock.now()
    async with deps.db.writing() as s:
        moved = await s.execute(
            update(PaymentRefund)
            .where(col(PaymentRefund.refund_no) == refund_no, col(PaymentRefund.status).in_(UNDER_WAY))
            .values(status=SUCCEEDED, succeeded_at=now, updated_at=now, channel_refund_id=channel_refund_id)
        )
        if not moved.rowcount:  # type: ignore[attr-defined]
            return
        refund = (await s.execute(select(PaymentRefund).where(col(PaymentRefund.refund_no) == refund_no))).scalar_one()
        order = (
            await s.execute(select(PaymentOrder).where(col(PaymentOrder.order_no) == refund.order_no))
        ).scalar_one()
        done = (
            await s.execute(
                select(col(PaymentRefund.amount_fen)).where(
                    col(PaymentRefund.order_no) == order.order_no, col(PaymentRefund.status) == SUCCEEDED
                )
            )
        ).scalars().all()
        if sum(done) >= order.self_pay_fen + (order.insurance_fen if order.insurance_status == "REFUNDED" else 0):
            order.status = o.REFUNDED
            order.updated_at = now
        notifications.add(
            s, account_id=order.account_id, kind="REFUND_SUCCEEDED", title="Refund made",
            body=f"{order.description}: {refund.amount_fen / 100:.2f} yuan refunded to your original payment method. "
            + refund.reason,
            at=now,
        )


def not_pending(found: Refund | None) -> NotAllowed:
    if found is None:
        return NotAllowed("No such refund.", "NOT_FOUND")
    return NotAllowed(
        f"This refund is {found.status.lower().replace('_', ' ')}, not waiting for approval.", "NOT_PENDING"
    )


async def approve(
    deps: Deps, payments: o.Payments, refund_no: str, *, operator_id: int, also: Decided | None = None
) -> Refund:
    """An operator lets a refund waiting for approval run. ``also`` runs in the transaction that records
    the decision, only if this call made it (two operators deciding at once decide once): the audit
    record goes there."""
    found = await load(deps, refund_no)
    if found is None or found.status != PENDING_APPROVAL:
        raise not_pending(found)
    now = deps.clock.now()
    async with deps.db.writing() as s:
        moved = await s.execute(
            update(PaymentRefund)
            .where(col(PaymentRefund.refund_no) == refund_no, col(PaymentRefund.status) == PENDING_APPROVAL)
            .values(status=REQUESTED, approved_by=operator_id, updated_at=now)
        )
        if moved.rowcount and also is not None:  # type: ignore[attr-defined]
            await also(s, now, found)
    if not moved.rowcount:  # type: ignore[attr-defined]
        raise not_pending(await load(deps, refund_no))
    return await execute(deps, payments, refund_no)


async def reject(
    deps: Deps, refund_no: str, *, operator_id: int, reason: str, also: Decided | None = None
) -> Refund:
    """An operator refuses a refund waiting for approval; the amount it held goes back to the order."""
    found = await load(deps, refund_no)
    if found is None or found.status != PENDING_APPROVAL:
        raise not_pending(found)
    now = deps.clock.now()
    async with deps.db.writing() as s:
        moved = await s.execute(
            update(PaymentRefund)
            .where(col(PaymentRefund.refund_no) == refund_no, col(PaymentRefund.status) == PENDING_APPROVAL)
            .values(status=REJECTED, approved_by=operator_id, failure=reason[:256], updated_at=now)
        )
        if moved.rowcount:  # type: ignore[attr-defined]
            await s.execute(
                update(PaymentOrder)
                .where(col(PaymentOrder.order_no) == found.order_no)
                .values(refunded_fen=col(PaymentOrder.refunded_fen) - found.amount_fen, updated_at=now)
            )
            if also is not None:
                await also(s, now, found)
    if not moved.rowcount:  # type: ignore[attr-defined]
        raise not_pending(await load(deps, refund_no))
    return await load(deps, refund_no) or found


async def sweep(deps: Deps, payments: o.Payments) -> int:
    async with deps.db.reading() as s:
        due = (
            await s.execute(
                select(col(PaymentRefund.refund_no)).where(col(PaymentRefund.status).in_(UNDER_WAY)).limit(200)
            )
        ).scalars().all()
    for refund_no in due:
        try:
            await execute(deps, payments, refund_no)
        except NotAllowed:
            pass  # failed for good, recorded
        except Exception:
            log.exception("sweeping refund %s failed; next round", refund_no)
    return len(due)
