"""The comparison itself, with no I/O: a day's payments and refunds as the channel's bill, the HIS
ledger and the BFF tell them, matched by the BFF's numbers (order_no = out_trade_no; refund_no =
out_refund_no / out_request_no), and every reference they do not tell alike as one finding.

Amounts are the part that moves through the channel (``self_pay_fen``): what insurance paid is
reconciled with the insurance platform, not here.

A finding names the first thing wrong with a reference (one line per payment or refund for the
operator, with all three sides' amounts and states on it), why in words, and what to do. Some
differences are not discrepancies: a payment the HIS refused and the BFF refunded in full was never
meant to reach the HIS ledger, nor its refund.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from datasources.store.models import PaymentRefund
from resolvers.payments import orders as o
from resolvers.payments import refunds as r

PAYMENT, REFUND = "PAYMENT", "REFUND"
MISSING_AT_CHANNEL, MISSING_AT_HIS, MISSING_AT_BFF = "MISSING_AT_CHANNEL", "MISSING_AT_HIS", "MISSING_AT_BFF"
AMOUNT_MISMATCH, STATUS_MISMATCH = "AMOUNT_MISMATCH", "STATUS_MISMATCH"
KINDS = (MISSING_AT_CHANNEL, MISSING_AT_HIS, MISSING_AT_BFF, AMOUNT_MISMATCH, STATUS_MISMATCH)
# What to do about a finding. PROPOSE_REFUND becomes REFUND_PENDING_APPROVAL once the refund exists.
PROPOSE_REFUND, REFUND_PENDING_APPROVAL = "PROPOSE_REFUND", "REFUND_PENDING_APPROVAL"
AWAIT_BFF = "AWAIT_BFF"  # the BFF's sweeper finishes it (a write-back retried, a refund asked about again)
MANUAL = "MANUAL"  # someone looks at the channel's back office and the HIS
PAID_STATES = (o.PAID, o.SETTLED, o.REFUNDING, o.REFUNDED)
NAMES = {"WECHAT_PAY": "WeChat Pay", "ALIPAY": "Alipay"}


@dataclass(frozen=True, slots=True)
class Line:
    """One payment or refund as the channel or the HIS tells it."""

    entry: str  # PAYMENT or REFUND
    reference: str  # order_no for a payment, refund_no for a refund
    order_no: str
    amount_fen: int  # positive, refunds too
    status: str  # the side's own word: SUCCESS, REFUND, TRADE_SUCCESS, RECORDED
    at: datetime
    trade_no: str = ""


@dataclass(frozen=True, slots=True)
class Side:
    payments: int = 0
    payments_fen: int = 0
    refunds: int = 0
    refunds_fen: int = 0

    @staticmethod
    def of(lines: Iterable[tuple[str, int]]) -> Side:
        counts = {PAYMENT: [0, 0], REFUND: [0, 0]}
        for entry, fen in lines:
            counts[entry][0] += 1
            counts[entry][1] += fen
        return Side(counts[PAYMENT][0], counts[PAYMENT][1], counts[REFUND][0], counts[REFUND][1])


@dataclass(frozen=True, slots=True)
class Totals:
    channel: Side
    his: Side
    bff: Side


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str
    entry: str
    reference: str
    order_no: str
    channel_fen: int | None
    his_fen: int | None
    bff_fen: int | None
    channel_status: str | None
    his_status: str | None
    bff_status: str | None
    reason: str
    action: str
    refund_no: str | None = None  # the refund waiting for approval that answers it


@dataclass(frozen=True, slots=True)
class Day:
    """Everything read for one day and channel; ``bff_*`` hold the BFF's records of the day and every
    record a channel or HIS line names, whatever its day."""

    channel: str
    channel_lines: list[Line]
    his_lines: list[Line]
    orders: Mapping[str, o.Order]
    refunds: Mapping[str, PaymentRefund]
    day_orders: frozenset[str]  # paid on the day, by the BFF's paid_at
    day_refunds: frozenset[str]  # succeeded on the day, by the BFF's succeeded_at
    waiting: Mapping[str, str]  # order_no → its refund waiting for approval


def totals(day: Day) -> Totals:
    bff = [(PAYMENT, day.orders[n].self_pay_fen) for n in day.day_orders]
    bff += [(REFUND, day.refunds[n].self_pay_fen) for n in day.day_refunds]
    return Totals(
        channel=Side.of((x.entry, x.amount_fen) for x in day.channel_lines),
        his=Side.of((x.entry, x.amount_fen) for x in day.his_lines),
        bff=Side.of(bff),
    )


def compare(day: Day) -> list[Finding]:
    findings: list[Finding] = []
    for entry, bff_day in ((PAYMENT, day.day_orders), (REFUND, day.day_refunds)):
        at_channel = {x.reference: x for x in day.channel_lines if x.entry == entry}
        at_his = {x.reference: x for x in day.his_lines if x.entry == entry}
        for reference in sorted(set(at_channel) | set(at_his) | bff_day):
            c, h = at_channel.get(reference), at_his.get(reference)
            if entry == PAYMENT:
                found = _payment(day.channel, reference, c, h, day.orders.get(reference), day.waiting.get(reference))
            else:
                found = _refund(day.channel, reference, c, h, day.refunds.get(reference))
            if found is not None:
                findings.append(found)
    return findings


def _finding(
    kind: str, entry: str, reference: str, order_no: str, c: Line | None, h: Line | None,
    bff_fen: int | None, bff_status: str | None, reason: str, action: str = MANUAL, refund_no: str | None = None,
) -> Finding:
    return Finding(
        kind=kind, entry=entry, reference=reference, order_no=order_no,
        channel_fen=c.amount_fen if c else None, his_fen=h.amount_fen if h else None, bff_fen=bff_fen,
        channel_status=c.status if c else None, his_status=h.status if h else None, bff_status=bff_status,
        reason=reason, action=action, refund_no=refund_no,
    )


def _payment(
    channel: str, ref: str, c: Line | None, h: Line | None, order: o.Order | None, waiting: str | None
) -> Finding | None:
    name = NAMES[channel]

    def found(kind: str, reason: str, action: str = MANUAL) -> Finding:
        return _finding(kind, PAYMENT, ref, ref, c, h, order.self_pay_fen if order else None,
                        order.status if order else None, reason, action,
                        waiting if action == REFUND_PENDING_APPROVAL else None)

    if order is None:
        if c is not None:
            return found(MISSING_AT_BFF, f"Paid at {name}; the BFF never made this order."
                         + ("" if h else " The HIS has no record of it either."))
        return found(MISSING_AT_CHANNEL, f"Recorded at the HIS only: neither {name} nor the BFF has this payment.")
    if order.status not in PAID_STATES:
        if c is None:
            return found(MISSING_AT_CHANNEL, f"Recorded at the HIS, not paid at {name}, {order.status} in the BFF.")
        if h is None:
            return found(STATUS_MISMATCH, f"Paid at {name} but {order.status} in the BFF and never recorded at the "
                         "HIS: the money should go back to the patient.", PROPOSE_REFUND)
        return found(STATUS_MISMATCH, f"Paid at {name} and recorded at the HIS, but {order.status} in the BFF.")
    if c is None:
        return found(MISSING_AT_CHANNEL, f"Paid in the BFF ({order.status}), not on {name}'s bill for the day.")
    if h is None:
        if order.settled_at is not None:
            return found(MISSING_AT_HIS, f"Paid at {name} and written back (receipt {order.his_receipt_no}), "
                         "but not on the HIS ledger.")
        if order.status == o.PAID:
            return found(MISSING_AT_HIS, f"Paid at {name}, not yet recorded at the HIS: the BFF keeps trying.",
                         AWAIT_BFF)
        if order.status == o.REFUNDING:
            return found(STATUS_MISMATCH, f"Paid at {name}, never recorded at the HIS, and the refund to the "
                         "patient is not finished.", REFUND_PENDING_APPROVAL if waiting else MANUAL)
        return None  # refunded in full: the HIS was never meant to have it
    if not c.amount_fen == h.amount_fen == order.self_pay_fen:
        return found(AMOUNT_MISMATCH, f"{name} took {c.amount_fen} fen, the HIS recorded {h.amount_fen} fen, "
                     f"the BFF asked {order.self_pay_fen} fen.")
    return None


def _refund(channel: str, ref: str, c: Line | None, h: Line | None, refund: PaymentRefund | None) -> Finding | None:
    name = NAMES[channel]
    order_no = c.order_no if c else h.order_no if h else refund.order_no if refund else ""

    def found(kind: str, reason: str, action: str = MANUAL) -> Finding:
        return _finding(kind, REFUND, ref, order_no, c, h, refund.self_pay_fen if refund else None,
                        refund.status if refund else None, reason, action)

    if refund is None:
        if c is not None:
            return found(MISSING_AT_BFF, f"Refunded at {name}; the BFF never made this refund.")
        return found(MISSING_AT_CHANNEL, f"Refunded at the HIS only: neither {name} nor the BFF has this refund.")
    if refund.status != r.SUCCEEDED:
        if c is None:
            return found(MISSING_AT_CHANNEL, f"Recorded at the HIS; {name} has not returned the money "
                         f"({refund.status} in the BFF).")
        finishing = refund.status in r.UNDER_WAY
        return found(STATUS_MISMATCH, f"Refunded at {name} but {refund.status} in the BFF.",
                     AWAIT_BFF if finishing else MANUAL)
    if c is None:
        return found(MISSING_AT_CHANNEL, f"Refunded in the BFF, not on {name}'s bill for the day.")
    if h is None:
        if refund.his_written_back_at is not None:
            return found(MISSING_AT_HIS, f"Refunded at {name}, not at the HIS: the HIS agreed to it, but its "
                         "ledger does not show it.")
        return None  # the payment never reached the HIS, so neither does its refund
    if not c.amount_fen == h.amount_fen == refund.self_pay_fen:
        return found(AMOUNT_MISMATCH, f"{name} returned {c.amount_fen} fen, the HIS recorded {h.amount_fen} fen, "
                     f"the BFF asked {refund.self_pay_fen} fen.")
    return None
