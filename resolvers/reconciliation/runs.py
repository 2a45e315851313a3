"""Running a day's reconciliation for one channel, keeping every run, and reading them back.

A run is a row before it reads anything (RUNNING), so a run that dies half-way is still in the log;
it ends OK, DISCREPANCIES, or FAILED when a side could not be read (a channel's bill exists only
once the day is over). Running a day again never touches an earlier run: it makes a new one.

The HIS books a write-back when it receives it, so a payment made at 23:59 and written back after
midnight is on the next day's HIS ledger: the ledgers of the day before and after are read too, and
a line there counts for this day when the channel or the BFF puts its payment or refund on this day.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from datasources.clock import local_date, local_datetime
from datasources.errors import SourceRejected, SourceUnavailable
from datasources.his import billing as b
from datasources.store.models import PaymentOrder, PaymentRefund, ReconciliationItem, ReconciliationRun
from resolvers.deps import Deps
from resolvers.errors import DomainError, InvalidInput, NotAllowed, NotFound
from resolvers.payments import orders as o
from resolvers.payments import refunds as r
from resolvers.reconciliation import compare as cmp

log = logging.getLogger(__name__)

RUNNING, OK, DISCREPANCIES, FAILED = "RUNNING", "OK", "DISCREPANCIES", "FAILED"
OPERATOR, SCHEDULE = "OPERATOR", "SCHEDULE"
CHANNELS = ("WECHAT_PAY", "ALIPAY")
# The BFF's orders whose cash goes through the channel's merchant account: a WeChat medical-insurance
# order's cash part is a WeChat Pay trade of the same number.
ORDER_CHANNELS = {"WECHAT_PAY": ("WECHAT_PAY", "WECHAT_MED_INS"), "ALIPAY": ("ALIPAY",)}


class SideUnreadable(Exception):
    """One side of the day could not be read; the run is FAILED with this reason."""


@dataclass(frozen=True, slots=True)
class Run:
    id: int
    day: date
    channel: str
    status: str
    started_by: str
    started_by_account_id: int | None
    totals: cmp.Totals | None
    failure: str | None
    started_at: datetime
    finished_at: datetime | None
    items: list[ReconciliationItem]


def _to_run(row: ReconciliationRun, items: list[ReconciliationItem]) -> Run:
    assert row.id is not None
    raw = json.loads(row.totals)
    totals = cmp.Totals(**{k: cmp.Side(**v) for k, v in raw.items()}) if raw else None
    return Run(
        id=row.id, day=row.day, channel=row.channel, status=row.status, started_by=row.started_by,
        started_by_account_id=row.started_by_account_id, totals=totals, failure=row.failure,
        started_at=row.started_at, finished_at=row.finished_at, items=items,
    )


async def reconcile(
    deps: Deps, day: date, channel: str, *, started_by: str = OPERATOR, account_id: int | None = None,
    schedule_key: str | None = None,
) -> Run:
    """Compares ``day`` (Asia/Shanghai) of ``channel`` across the three sides and records the run.
    For a payment made at the channel that the BFF never took (the order is open or closed here) and
    the HIS never recorded, a full refund waits for an operator's approval."""
    if channel not in CHANNELS:
        raise InvalidInput("channel", "Reconciliation covers WECHAT_PAY and ALIPAY.")
    if day >= local_date(deps.clock.now()):
        raise InvalidInput("day", "A day can be reconciled once it is over: the channels' bills come the day after.")
    payments = deps.payments
    if payments is None or channel not in payments.channels:
        raise NotAllowed(f"Payments by {channel} are not enabled at this hospital.", "CHANNEL_NOT_ENABLED")
    run = ReconciliationRun(
        day=day, channel=channel, status=RUNNING, started_by=started_by, started_by_account_id=account_id,
        schedule_key=schedule_key, started_at=deps.clock.now(),
    )
    async with deps.db.writing() as s:  # IntegrityError: another process runs this schedule_key
        s.add(run)
    assert run.id is not None
    try:
        read = await _read(deps, day, channel)
        findings = cmp.compare(read)
        items = [await _act(deps, payments, read, f) for f in findings]
    except SideUnreadable as exc:
        log.warning("reconciliation run %s (%s, %s) failed: %s", run.id, day, channel, exc)
        await _finish(deps, run.id, FAILED, None, [], failure=str(exc))
        return await load(deps, run.id)
    except Exception:
        await _finish(deps, run.id, FAILED, None, [], failure="An unexpected error; see the BFF's log.")
        raise
    await _finish(deps, run.id, DISCREPANCIES if items else OK, cmp.totals(read), items)
    log.info("reconciliation run %s (%s, %s): %d discrepancies", run.id, day, channel, len(items))
    return await load(deps, run.id)


async def reconcile_scheduled(deps: Deps, day: date) -> list[Run]:
    """The daily job: each enabled channel once per day, however many BFF processes try."""
    done: list[Run] = []
    for channel in CHANNELS:
        if deps.payments is None or channel not in deps.payments.channels:
            continue
        try:
            done.append(await reconcile(deps, day, channel, started_by=SCHEDULE,
                                        schedule_key=f"{SCHEDULE}:{day.isoformat()}:{channel}"))
        except IntegrityError:
            continue  # another process has it
    return done


async def _read(deps: Deps, day: date, channel: str) -> cmp.Day:
    channel_lines = await _channel_lines(deps, day, channel)
    his_near = await _his_lines(deps, day, channel)
    start, end = local_datetime(day, 0), local_datetime(day + timedelta(days=1), 0)
    async with deps.db.reading() as s:
        paid = (await s.execute(select(PaymentOrder).where(
            col(PaymentOrder.channel).in_(ORDER_CHANNELS[channel]), col(PaymentOrder.paid_at) >= start,
            col(PaymentOrder.paid_at) < end,
            col(PaymentOrder.status).in_(cmp.PAID_STATES),
        ))).scalars().all()
        refunded = (await s.execute(
            select(PaymentRefund).join(PaymentOrder, col(PaymentOrder.order_no) == col(PaymentRefund.order_no)).where(
                col(PaymentOrder.channel).in_(ORDER_CHANNELS[channel]), col(PaymentRefund.status) == r.SUCCEEDED,
                col(PaymentRefund.succeeded_at) >= start, col(PaymentRefund.succeeded_at) < end,
            )
        )).scalars().all()
        named = channel_lines + [x for _, x in his_near]
        order_nos = {x.reference for x in named if x.entry == cmp.PAYMENT} - {p.order_no for p in paid}
        refund_nos = {x.reference for x in named if x.entry == cmp.REFUND} - {x.refund_no for x in refunded}
        more_orders = (await s.execute(
            select(PaymentOrder).where(col(PaymentOrder.order_no).in_(sorted(order_nos)))
        )).scalars().all() if order_nos else []
        more_refunds = (await s.execute(
            select(PaymentRefund).where(col(PaymentRefund.refund_no).in_(sorted(refund_nos)))
        )).scalars().all() if refund_nos else []
        waiting = {order_no: refund_no for order_no, refund_no in (await s.execute(
            select(col(PaymentRefund.order_no), col(PaymentRefund.refund_no)).where(
                col(PaymentRefund.status) == r.PENDING_APPROVAL,
                col(PaymentRefund.order_no).in_(sorted({p.order_no for p in [*paid, *more_orders]})),
            )
        )).all()}
    orders = {p.order_no: o.to_order(p) for p in [*paid, *more_orders]}
    refunds = {x.refund_no: x for x in [*refunded, *more_refunds]}
    day_orders = frozenset(p.order_no for p in paid)
    day_refunds = frozenset(x.refund_no for x in refunded)
    on_channel = {x.reference for x in channel_lines}

    def belongs(offset: int, line: cmp.Line) -> bool:
        this_day = line.reference in on_channel or line.reference in day_orders or line.reference in day_refunds
        if offset != 0:
            return this_day
        anchor = (orders[line.reference].paid_at if line.reference in orders else None) if line.entry == cmp.PAYMENT \
            else (refunds[line.reference].succeeded_at if line.reference in refunds else None)
        return this_day or anchor is None or local_date(anchor) == day

    his_lines = [x for offset, x in his_near if belongs(offset, x)]
    return cmp.Day(channel, channel_lines, his_lines, orders, refunds, day_orders, day_refunds, waiting)


async def _channel_lines(deps: Deps, day: date, channel: str) -> list[cmp.Line]:
    sources = deps.sources
    try:
        if channel == "WECHAT_PAY":
            assert sources.wechatpay is not None
            return [
                cmp.Line(cmp.PAYMENT, x.out_trade_no, x.out_trade_no, x.settlement_total_fen, x.trade_state,
                         x.trade_time, x.transaction_id)
                if x.trade_state != "REFUND" else
                cmp.Line(cmp.REFUND, x.out_refund_no, x.out_trade_no, x.refund_fen, x.trade_state, x.trade_time,
                         x.refund_id)
                for x in await sources.wechatpay.trade_bill(day)
            ]
        assert sources.alipay is not None
        return [
            cmp.Line(cmp.PAYMENT, x.out_trade_no, x.out_trade_no, x.amount_fen, "TRADE_SUCCESS", x.finished_at,
                     x.trade_no)
            if not x.out_request_no else
            cmp.Line(cmp.REFUND, x.out_request_no, x.out_trade_no, -x.amount_fen, "REFUND_SUCCESS", x.finished_at,
                     x.trade_no)
            for x in await sources.alipay.bill(day)
        ]
    except SourceRejected as exc:
        raise SideUnreadable(f"{cmp.NAMES[channel]} gave no bill for {day}: {exc.code}") from exc
    except SourceUnavailable as exc:
        raise SideUnreadable(f"{cmp.NAMES[channel]} is not answering") from exc


async def _his_lines(deps: Deps, day: date, channel: str) -> list[tuple[int, cmp.Line]]:
    """The HIS ledger lines of this channel on the day and the days either side, with their offset."""
    billing = deps.sources.billing
    if billing is None:
        raise SideUnreadable("the HIS billing is not configured")
    his_channel = o.HIS_CHANNEL[channel]
    today = local_date(deps.clock.now())
    lines: list[tuple[int, cmp.Line]] = []
    for offset in (-1, 0, 1):
        when = day + timedelta(days=offset)
        if when > today:
            continue
        try:
            ledger: Sequence[b.LedgerEntry] = await billing.ledger(when)
        except (SourceRejected, SourceUnavailable) as exc:
            raise SideUnreadable(f"the HIS ledger of {when} could not be read") from exc
        lines += [
            (offset, cmp.Line(cmp.PAYMENT if e.kind == "PAYMENT" else cmp.REFUND, e.reference, e.payment_reference,
                              e.self_pay_fen, "RECORDED", e.at, e.receipt_no))
            for e in ledger if e.channel == his_channel
        ]
    return lines


async def _act(deps: Deps, payments: o.Payments, day: cmp.Day, f: cmp.Finding) -> ReconciliationItem:
    """A finding becomes an item; a proposed refund is made now, to wait for an operator's approval."""
    item = ReconciliationItem(
        run_id=0, kind=f.kind, entry=f.entry, reference=f.reference[:64], order_no=f.order_no[:64],
        channel_fen=f.channel_fen, his_fen=f.his_fen, bff_fen=f.bff_fen, channel_status=f.channel_status,
        his_status=f.his_status, bff_status=f.bff_status, reason=f.reason[:256], action=f.action,
        refund_no=f.refund_no,
    )
    if f.action != cmp.PROPOSE_REFUND:
        return item
    line = next(x for x in day.channel_lines if x.entry == cmp.PAYMENT and x.reference == f.reference)
    try:
        refund = await _propose_refund(deps, payments, day.orders[f.reference], line)
    except DomainError as exc:
        item.action, item.reason = cmp.MANUAL, f"{f.reason} No refund was proposed: {exc.message}"[:256]
        return item
    item.action, item.refund_no = cmp.REFUND_PENDING_APPROVAL, refund.refund_no
    return item


async def _propose_refund(deps: Deps, payments: o.Payments, order: o.Order, line: cmp.Line) -> r.Refund:
    """The BFF learns the payment it missed (paid_at, the channel's trade number) and puts the order
    to REFUNDING, conditionally on the state it had, so a late confirmation and this never both win;
    then the full refund is recorded, waiting for approval."""
    now = deps.clock.now()
    if order.status in o.OPEN and order.expires_at > now:
        raise NotAllowed("The order is still open; it may yet be confirmed.", "ORDER_OPEN")
    async with deps.db.writing() as s:
        moved = await s.execute(
            update(PaymentOrder)
            .where(col(PaymentOrder.order_no) == order.order_no, col(PaymentOrder.status) == order.status)
            .values(status=o.REFUNDING, open_subject=None, paid_at=line.at, channel_trade_no=line.trade_no or None,
                    problem=r.RECONCILIATION, updated_at=now)
        )
    if not moved.rowcount:  # type: ignore[attr-defined]
        raise NotAllowed("The order changed while it was reconciled.", "ORDER_CHANGED")
    moved_order = await o.load(deps, order.order_no)
    assert moved_order is not None
    log.warning("order %s paid at %s but %s here: full refund waiting for approval", order.order_no,
                order.channel, order.status)
    return await r.request(
        deps, payments, moved_order, amount_fen=line.amount_fen, cause=r.RECONCILIATION, needs_approval=True,
        reason="Reconciliation: paid after the order had ended; returned in full.",
    )


async def _finish(
    deps: Deps, run_id: int, status: str, totals: cmp.Totals | None, items: list[ReconciliationItem],
    failure: str | None = None,
) -> None:
    async with deps.db.writing() as s:
        await s.execute(
            update(ReconciliationRun).where(col(ReconciliationRun.id) == run_id).values(
                status=status, totals=json.dumps(asdict(totals)) if totals else "{}", failure=failure,
                finished_at=deps.clock.now(),
            )
        )
        for item in items:
            item.run_id = run_id
            s.add(item)


async def load(deps: Deps, run_id: int) -> Run:
    found = await runs_by_ids(deps, [run_id])
    if not found:
        raise NotFound("No such reconciliation run.")
    return found[0]


async def runs_by_ids(deps: Deps, run_ids: list[int]) -> list[Run]:
    async with deps.db.reading() as s:
        rows = (await s.execute(
            select(ReconciliationRun).where(col(ReconciliationRun.id).in_(run_ids))
            .order_by(col(ReconciliationRun.id).desc())
        )).scalars().all()
    return await _with_items(deps, list(rows))


async def runs_of(deps: Deps, *, day: date | None = None, channel: str | None = None, limit: int = 50) -> list[Run]:
    """Newest first; every run of a day is listed, not only the last."""
    query = select(ReconciliationRun).order_by(col(ReconciliationRun.id).desc()).limit(limit)
    if day is not None:
        query = query.where(col(ReconciliationRun.day) == day)
    if channel is not None:
        query = query.where(col(ReconciliationRun.channel) == channel)
    async with deps.db.reading() as s:
        rows = (await s.execute(query)).scalars().all()
    return await _with_items(deps, list(rows))


async def _with_items(deps: Deps, rows: list[ReconciliationRun]) -> list[Run]:
    """All the runs' items in one query, whatever the number of runs."""
    ids = [row.id for row in rows]
    grouped: dict[int | None, list[ReconciliationItem]] = {i: [] for i in ids}
    if ids:
        async with deps.db.reading() as s:
            items = (await s.execute(
                select(ReconciliationItem).where(col(ReconciliationItem.run_id).in_(ids))
                .order_by(col(ReconciliationItem.id))
            )).scalars().all()
        for item in items:
            grouped[item.run_id].append(item)
    return [_to_run(row, grouped[row.id]) for row in rows]
