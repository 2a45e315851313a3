"""Operators decide on refunds waiting for approval (those reconciliation proposed, and any other):
approved, the refund runs by the original route; rejected, with a reason, the amount it held goes
back to the order. Each decision is audited in the transaction that records it, and resolves the
reconciliation items that proposed the refund.

The transitions are ``refunds.approve`` and ``refunds.reject`` (conditional on PENDING_APPROVAL,
so two operators deciding at once decide once); the audit record and the items go into the
transaction that records the decision, through their ``also``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from datasources.store.models import PaymentOrder, PaymentRefund, ReconciliationItem
from resolvers.apps import Audited
from resolvers.deps import Deps
from resolvers.errors import DomainError, InvalidInput, NotAllowed, NotFound
from resolvers.payments import orders as o
from resolvers.payments import refunds as r

MAX_BATCH = 50


@dataclass(frozen=True, slots=True)
class PendingRefund:
    refund_no: str
    order_no: str
    channel: str
    amount_fen: int
    reason: str
    cause: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Decision:
    """One refund of a batch: approved (``refund`` says how far it got) or not (``error`` says why)."""

    refund_no: str
    refund: r.Refund | None
    error: DomainError | None


async def pending_refunds(deps: Deps, *, limit: int = 200) -> list[PendingRefund]:
    async with deps.db.reading() as s:
        rows = (await s.execute(
            select(PaymentRefund, col(PaymentOrder.channel))
            .join(PaymentOrder, col(PaymentOrder.order_no) == col(PaymentRefund.order_no))
            .where(col(PaymentRefund.status) == r.PENDING_APPROVAL)
            .order_by(col(PaymentRefund.created_at), col(PaymentRefund.id))
            .limit(limit)
        )).all()
    return [
        PendingRefund(x.refund_no, x.order_no, channel, x.amount_fen, x.reason, x.cause, x.created_at)
        for x, channel in rows
    ]


async def _decided(
    s: AsyncSession, audited: Audited, at: datetime, action: str, refund: r.Refund, **detail: object
) -> None:
    """In the decision's transaction: the items that proposed the refund resolved, then the audit record."""
    await s.execute(
        update(ReconciliationItem)
        .where(col(ReconciliationItem.refund_no) == refund.refund_no, col(ReconciliationItem.resolved_at).is_(None))
        .values(resolved_at=at, resolved_by=audited.actor_account_id)
    )
    await audited.record(s, at, action, "payment_refund", refund.refund_no, {
        "refundNo": refund.refund_no, "orderNo": refund.order_no, "amountFen": refund.amount_fen, **detail,
    })


async def approve(deps: Deps, payments: o.Payments, refund_nos: Sequence[str], *, audited: Audited) -> list[Decision]:
    """One after the other, each on its own: one refused never stops the others."""
    numbers = list(dict.fromkeys(refund_nos))
    if not numbers or len(numbers) > MAX_BATCH:
        raise InvalidInput("refundNos", f"Approve between 1 and {MAX_BATCH} refunds at a time.")
    assert audited.actor_account_id is not None
    decisions: list[Decision] = []
    for refund_no in numbers:
        try:
            refund = await _approve_one(deps, payments, refund_no, audited, audited.actor_account_id)
        except DomainError as exc:
            decisions.append(Decision(refund_no, None, exc))
        else:
            decisions.append(Decision(refund_no, refund, None))
    return decisions


async def _approve_one(
    deps: Deps, payments: o.Payments, refund_no: str, audited: Audited, operator_id: int
) -> r.Refund:
    async def decided(s: AsyncSession, at: datetime, refund: r.Refund) -> None:
        await _decided(s, audited, at, "refund.approved", refund)

    return await r.approve(deps, payments, refund_no, operator_id=operator_id, also=decided)


async def reject(deps: Deps, refund_no: str, *, reason: str, audited: Audited) -> r.Refund:
    reason = reason.strip()
    if not reason:
        raise InvalidInput("reason", "Say why the refund is rejected.")
    assert audited.actor_account_id is not None

    async def decided(s: AsyncSession, at: datetime, refund: r.Refund) -> None:
        await _decided(s, audited, at, "refund.rejected", refund, reason=reason[:256])

    return await r.reject(deps, refund_no, operator_id=audited.actor_account_id, reason=reason, also=decided)


async def resolve_item(deps: Deps, item_id: int, *, note: str, audited: Audited) -> ReconciliationItem:
    """An operator closes a discrepancy handled outside the BFF (at the channel's back office, at the
    HIS cashier); the note says how, in the audit record."""
    note = note.strip()
    if not note:
        raise InvalidInput("note", "Say how the discrepancy was handled.")
    now = deps.clock.now()
    async with deps.db.writing() as s:
        item = (await s.execute(
            select(ReconciliationItem).where(col(ReconciliationItem.id) == item_id)
        )).scalar_one_or_none()
        if item is None:
            raise NotFound("No such discrepancy.")
        moved = await s.execute(
            update(ReconciliationItem)
            .where(col(ReconciliationItem.id) == item_id, col(ReconciliationItem.resolved_at).is_(None))
            .values(resolved_at=now, resolved_by=audited.actor_account_id)
        )
        if not moved.rowcount:  # type: ignore[attr-defined]
            raise NotAllowed("This discrepancy is already resolved.", "ALREADY_RESOLVED")
        await audited.record(s, now, "reconciliation.resolved", "reconciliation_item", str(item_id), {
            "runId": item.run_id, "kind": item.kind, "reference": item.reference, "note": note[:512],
        })
    item.resolved_at, item.resolved_by = now, audited.actor_account_id
    return item
