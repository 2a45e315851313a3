"""The HIS billing sandbox: bills, write-backs and deposits in ``his_`` tables, committing on its own.

Every write-back runs in one transaction and is all or none. Idempotency per reference rests on
the unique ``reference`` of ``his_payment`` and ``his_refund`` and on row locks taken before
anything is decided: a write-back waits for whoever holds the bills, the registration, the payment
or the deposit account, then looks for its reference again, so a repeat that arrives while the
first is still running returns the first answer instead of a refusal. On SQLite the write
transactions are serialized anyway (BEGIN IMMEDIATE); ``FOR UPDATE`` is what PostgreSQL needs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from datasources.clock import Clock, local_date, local_datetime
from datasources.errors import SourceRejected
from datasources.his import billing as b
from datasources.his.billing_tables import (
    HisBill,
    HisBillItem,
    HisDepositAccount,
    HisDepositEntry,
    HisPayment,
    HisRefund,
)
from datasources.his.sandbox import _rowcount
from datasources.his.tables import HisCard, HisPatient, HisRegistration
from datasources.store.db import Database

SOURCE = "his"
T = TypeVar("T")

# What a payment paid for (HisPayment.kind).
FOR_BILLS = "BILLS"
FOR_REGISTRATION = "REGISTRATION"
FOR_DEPOSIT = "DEPOSIT"

# A reference that is empty or longer than the HIS stores: not in the contract's codes, because a
# BFF that keeps to its own numbering never sends one.
INVALID_REFERENCE = "INVALID_REFERENCE"
REFERENCE_MAX = 64

# A registration's fee can be paid while the visit is on or done; pay-later visits pay afterwards.
PAYABLE_STATES = ("BOOKED", "CHECKED_IN", "CALLED", "COMPLETED")
UNSETTLED = ("UNPAID", "PAY_LATER")
INVOICE_BASE = "https://einvoice.his-sandbox.invalid/"
CATEGORIES = (b.PRESCRIPTION, b.LAB, b.EXAM, b.TREATMENT)


def _reject(code: str, detail: str = "") -> SourceRejected:
    return SourceRejected(SOURCE, code, detail)


def _pk(value: str | None) -> int | None:
    """An id as the HIS numbers them; anything else (``"²"`` and ``"１"`` are digits to ``isdigit``) is no id."""
    return int(value) if value is not None and value.isascii() and value.isdigit() else None


def _instant(at: datetime | None) -> str | None:
    return at.astimezone(UTC).isoformat() if at is not None else None


def _fingerprint(*parts: Any) -> str:
    """What "the same content" means for a repeated reference: every field as sent, instants in UTC."""
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode()).hexdigest()


def _payment_content(p: b.PaymentRecord) -> list[Any]:
    return [
        p.reference,
        p.channel,
        p.total_fen,
        p.self_pay_fen,
        p.fund_fen,
        p.personal_account_fen,
        p.family_account_fen,
        p.deposit_fen,
        p.channel_trade_no,
        p.insurance_settlement_id,
        _instant(p.paid_at),
    ]


def _refund_content(r: b.RefundRecord) -> list[Any]:
    return [
        r.reference,
        r.payment_reference,
        r.amount_fen,
        r.self_pay_fen,
        r.insurance_fen,
        r.reason,
        _instant(r.refunded_at),
        sorted(set(r.bill_ids)),
    ]


def _check_reference(reference: str) -> None:
    if not reference or len(reference) > REFERENCE_MAX:
        raise _reject(INVALID_REFERENCE, f"a reference has 1 to {REFERENCE_MAX} characters")


def _check_parts(p: b.PaymentRecord) -> None:
    parts = (p.self_pay_fen, p.fund_fen, p.personal_account_fen, p.family_account_fen, p.deposit_fen)
    if p.total_fen <= 0 or any(part < 0 for part in parts):
        raise _reject(b.AMOUNT_MISMATCH, "the total is positive and no part is negative")
    if sum(parts) != p.total_fen:
        raise _reject(b.AMOUNT_MISMATCH, f"the parts add up to {sum(parts)}, not the total {p.total_fen}")


def _joined(ids: Sequence[int]) -> str:
    return ",".join(str(i) for i in sorted(ids))


def _split(text: str) -> tuple[str, ...]:
    return tuple(i for i in text.split(",") if i)


def _repeat(row: HisPayment | HisRefund, fingerprint: str) -> None:
    if row.fingerprint != fingerprint:
        raise _reject(b.REFERENCE_REUSED, f"reference {row.reference} was recorded with other content")


def to_item(row: HisBillItem) -> b.BillItem:
    return b.BillItem(
        code=row.code,
        name=row.name,
        spec=row.spec,
        unit=row.unit,
        quantity=row.quantity,
        unit_price_fen=row.unit_price_fen,
        amount_fen=row.amount_fen,
        insurance_code=row.insurance_code,
        insurance_class=row.insurance_class,
    )


def to_bill(row: HisBill, items: list[HisBillItem]) -> b.Bill:
    return b.Bill(
        id=str(row.id),
        his_patient_id=str(row.patient_id),
        card_no=row.card_no,
        registration_id=str(row.registration_id) if row.registration_id is not None else None,
        department_id=row.department_id,
        doctor_id=row.doctor_id,
        category=row.category,
        title=row.title,
        total_fen=row.total_fen,
        items=tuple(to_item(i) for i in sorted(items, key=lambda i: i.position)),
        status=row.status,
        created_at=row.created_at,
        paid_at=row.paid_at,
        payment_reference=row.payment_reference,
        executed=row.executed,
    )


def to_receipt(row: HisPayment) -> b.Receipt:
    return b.Receipt(
        reference=row.reference,
        receipt_no=row.receipt_no,
        his_patient_id=str(row.patient_id),
        bill_ids=_split(row.bill_ids),
        registration_id=str(row.registration_id) if row.registration_id is not None else None,
        total_fen=row.total_fen,
        paid_at=row.paid_at,
        invoice_url=INVOICE_BASE + row.receipt_no,
    )


def to_refund(row: HisRefund) -> b.RefundRecord:
    return b.RefundRecord(
        reference=row.reference,
        payment_reference=row.payment_reference,
        amount_fen=row.amount_fen,
        self_pay_fen=row.self_pay_fen,
        insurance_fen=row.insurance_fen,
        reason=row.reason,
        refunded_at=row.refunded_at,
        bill_ids=_split(row.bill_ids),
    )


def to_account(
    row: HisDepositAccount, balance_fen: int | None = None, arrears_fen: int | None = None
) -> b.DepositAccount:
    return b.DepositAccount(
        his_patient_id=str(row.patient_id),
        kind=row.kind,
        admission_id=row.admission_id,
        balance_fen=row.balance_fen if balance_fen is None else balance_fen,
        arrears_fen=row.arrears_fen if arrears_fen is None else arrears_fen,
    )


def _account_key(patient_pk: int, kind: str, admission_id: str | None) -> str:
    if kind == b.OUTPATIENT and admission_id is None:
        return f"{patient_pk}:{b.OUTPATIENT}"
    if kind == b.INPATIENT and admission_id:
        return f"{patient_pk}:{b.INPATIENT}:{admission_id}"
    raise _reject(b.DEPOSIT_ACCOUNT_NOT_FOUND, "an outpatient account has no admission, an inpatient one has one")


async def _account(
    s: AsyncSession, his_patient_id: str, kind: str, admission_id: str | None, now: datetime, *, create: bool
) -> HisDepositAccount:
    """The account, locked; created on first use when ``create`` (a concurrent creation surfaces as
    IntegrityError, and the write is tried again)."""
    patient_pk = _pk(his_patient_id)
    if patient_pk is None:
        raise _reject(b.DEPOSIT_ACCOUNT_NOT_FOUND, f"no HIS patient {his_patient_id}")
    key = _account_key(patient_pk, kind, admission_id)
    stmt = select(HisDepositAccount).where(col(HisDepositAccount.account_key) == key)
    row = (await s.execute(stmt.with_for_update().execution_options(populate_existing=True))).scalar_one_or_none()
    if row is not None:
        return row
    if not create or await s.get(HisPatient, patient_pk) is None:
        raise _reject(b.DEPOSIT_ACCOUNT_NOT_FOUND, f"no {kind.lower()} deposit account for patient {his_patient_id}")
    row = HisDepositAccount(
        account_key=key, patient_id=patient_pk, kind=kind, admission_id=admission_id, created_at=now
    )
    s.add(row)
    await s.flush()
    return row


def _entry(
    account: HisDepositAccount, kind: str, reference: str, amount: int, now: datetime, cleared: int = 0
) -> HisDepositEntry:
    return HisDepositEntry(
        account_id=account.id or 0,
        kind=kind,
        reference=reference,
        amount_fen=amount,
        arrears_cleared_fen=cleared,
        balance_after_fen=account.balance_fen,
        arrears_after_fen=account.arrears_fen,
        at=now,
    )


class SandboxHISBilling:
    """Implements ``HISBilling`` over its own ``his_`` tables, next to ``SandboxHIS``'s registrations."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    async def _write(self, work: Callable[[AsyncSession, datetime], Awaitable[T]]) -> T:
        """Runs ``work`` in one transaction. A unique key taken by a concurrent write at the same
        moment (a reference, a new deposit account) fails it; run again, it finds the winner's row."""
        for attempt in range(3):
            try:
                async with self.db.writing() as s:
                    return await work(s, self.clock.now())
            except IntegrityError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    # Reads ---------------------------------------------------------------------------------
    async def _with_items(self, s: AsyncSession, rows: Sequence[HisBill]) -> list[b.Bill]:
        if not rows:
            return []
        stmt = select(HisBillItem).where(col(HisBillItem.bill_id).in_([r.id for r in rows]))
        items: dict[int, list[HisBillItem]] = {}
        for item in (await s.execute(stmt)).scalars().all():
            items.setdefault(item.bill_id, []).append(item)
        return [to_bill(r, items.get(r.id or 0, [])) for r in rows]

    async def pending_bills(self, his_patient_ids: list[str]) -> list[b.Bill]:
        pks = [pk for pk in map(_pk, his_patient_ids) if pk is not None]
        stmt = (
            select(HisBill)
            .where(col(HisBill.patient_id).in_(pks), col(HisBill.status) == b.UNPAID)
            .order_by(col(HisBill.created_at), col(HisBill.id))
        )
        async with self.db.reading() as s:
            return await self._with_items(s, (await s.execute(stmt)).scalars().all())

    async def bills_by_ids(self, ids: list[str]) -> list[b.Bill]:
        pks = [pk for pk in map(_pk, ids) if pk is not None]
        async with self.db.reading() as s:
            rows = (
                await s.execute(select(HisBill).where(col(HisBill.id).in_(pks)).order_by(col(HisBill.id)))
            ).scalars()
            return await self._with_items(s, rows.all())

    async def receipts_by_references(self, references: list[str]) -> list[b.Receipt]:
        stmt = select(HisPayment).where(col(HisPayment.reference).in_(references)).order_by(col(HisPayment.id))
        async with self.db.reading() as s:
            rows = (await s.execute(stmt)).scalars().all()
        return [to_receipt(r) for r in rows]

    async def ledger(self, day: date) -> list[b.LedgerEntry]:
        """By the instant the HIS recorded each write-back (its 记账 time), which is also ``at``: a
        payment made at 23:59 and written back after midnight is on the next day's ledger."""
        start, end = local_datetime(day, 0), local_datetime(day + timedelta(days=1), 0)
        async with self.db.reading() as s:
            payments = (
                (
                    await s.execute(
                        select(HisPayment).where(
                            col(HisPayment.recorded_at) >= start, col(HisPayment.recorded_at) < end
                        )
                    )
                )
                .scalars()
                .all()
            )
            refunds = (
                await s.execute(
                    select(HisRefund, HisPayment)
                    .join(HisPayment, col(HisPayment.id) == col(HisRefund.payment_id))
                    .where(col(HisRefund.recorded_at) >= start, col(HisRefund.recorded_at) < end)
                )
            ).all()
        entries = [
            b.LedgerEntry(
                kind="PAYMENT",
                reference=p.reference,
                payment_reference=p.reference,
                channel=p.channel,
                amount_fen=p.total_fen,
                self_pay_fen=p.self_pay_fen,
                channel_trade_no=p.channel_trade_no,
                receipt_no=p.receipt_no,
                at=p.recorded_at,
            )
            for p in payments
        ] + [
            b.LedgerEntry(
                kind="REFUND",
                reference=r.reference,
                payment_reference=r.payment_reference,
                channel=p.channel,
                amount_fen=r.amount_fen,
                self_pay_fen=r.self_pay_fen,
                channel_trade_no=p.channel_trade_no,
                receipt_no=r.receipt_no,
                at=r.recorded_at,
            )
            for r, p in refunds
        ]
        return sorted(entries, key=lambda e: (e.at, e.kind, e.reference))

    async def deposit_accounts(self, his_patient_ids: list[str]) -> list[b.DepositAccount]:
        """An outpatient account nobody has used yet reads as empty; it is stored on first use."""
        pks = sorted({pk for pk in map(_pk, his_patient_ids) if pk is not None})
        async with self.db.reading() as s:
            known = (await s.execute(select(col(HisPatient.id)).where(col(HisPatient.id).in_(pks)))).scalars().all()
            rows = (
                (await s.execute(select(HisDepositAccount).where(col(HisDepositAccount.patient_id).in_(pks))))
                .scalars()
                .all()
            )
        out: list[b.DepositAccount] = []
        for patient_pk in sorted(int(k) for k in known if k is not None):
            mine = sorted(
                (r for r in rows if r.patient_id == patient_pk), key=lambda r: (r.kind != b.OUTPATIENT, r.id or 0)
            )
            if not any(r.kind == b.OUTPATIENT for r in mine):
                out.append(b.DepositAccount(str(patient_pk), b.OUTPATIENT, None, 0, 0))
            out += [to_account(r) for r in mine]
        return out

    # Payments ------------------------------------------------------------------------------
    async def _payment(self, s: AsyncSession, reference: str) -> HisPayment | None:
        stmt = select(HisPayment).where(col(HisPayment.reference) == reference)
        return (await s.execute(stmt.execution_options(populate_existing=True))).scalar_one_or_none()

    async def _record_payment(
        self,
        s: AsyncSession,
        now: datetime,
        p: b.PaymentRecord,
        fingerprint: str,
        kind: str,
        patient_pk: int,
        **links: Any,
    ) -> HisPayment:
        """Claims the reference (the unique key) and numbers the receipt."""
        row = HisPayment(
            reference=p.reference,
            fingerprint=fingerprint,
            kind=kind,
            patient_id=patient_pk,
            channel=p.channel,
            total_fen=p.total_fen,
            self_pay_fen=p.self_pay_fen,
            fund_fen=p.fund_fen,
            personal_account_fen=p.personal_account_fen,
            family_account_fen=p.family_account_fen,
            deposit_fen=p.deposit_fen,
            channel_trade_no=p.channel_trade_no,
            insurance_settlement_id=p.insurance_settlement_id,
            paid_at=p.paid_at or now,
            recorded_at=now,
            receipt_no="",
            **links,
        )
        s.add(row)
        await s.flush()
        row.receipt_no = f"SF{local_date(now):%Y%m%d}{row.id:08d}"
        await s.flush()
        return row

    async def _take_deposit(self, s: AsyncSession, now: datetime, patient_pk: int, p: b.PaymentRecord) -> int | None:
        """The part paid from the outpatient deposit leaves its balance; None when there is none."""
        if not p.deposit_fen:
            return None
        account = await _account(s, str(patient_pk), b.OUTPATIENT, None, now, create=True)
        if account.balance_fen < p.deposit_fen:
            raise _reject(b.INSUFFICIENT_DEPOSIT, f"the deposit holds {account.balance_fen}, not {p.deposit_fen}")
        account.balance_fen -= p.deposit_fen
        s.add(_entry(account, "PAYMENT", p.reference, -p.deposit_fen, now))
        return account.id

    async def pay_bills(self, bill_ids: list[str], payment: b.PaymentRecord) -> b.Receipt:
        _check_reference(payment.reference)
        named = sorted(set(bill_ids))
        fingerprint = _fingerprint("pay_bills", named, _payment_content(payment))

        async def work(s: AsyncSession, now: datetime) -> b.Receipt:
            done = await self._payment(s, payment.reference)
            if done is None:
                pks = [pk for pk in map(_pk, named) if pk is not None]
                stmt = select(HisBill).where(col(HisBill.id).in_(pks)).order_by(col(HisBill.id))
                bills = (
                    (await s.execute(stmt.with_for_update().execution_options(populate_existing=True))).scalars().all()
                )
                done = await self._payment(s, payment.reference)  # written while we waited for the bills?
            if done is not None:
                _repeat(done, fingerprint)
                return to_receipt(done)
            if not named or len(bills) != len(named):
                missing = sorted(set(named) - {str(r.id) for r in bills})
                raise _reject(b.BILL_NOT_FOUND, f"no bills {', '.join(missing)}" if missing else "no bills named")
            if len({r.patient_id for r in bills}) > 1:
                raise _reject(b.BILLS_OF_SEVERAL_PATIENTS, "one payment covers the bills of one patient")
            settled = [str(r.id) for r in bills if r.status != b.UNPAID]
            if settled:
                raise _reject(b.BILL_NOT_PAYABLE, f"bills {', '.join(settled)} are not unpaid")
            _check_parts(payment)
            total = sum(r.total_fen for r in bills)
            if payment.total_fen != total:
                raise _reject(b.AMOUNT_MISMATCH, f"the bills add up to {total}, not {payment.total_fen}")
            patient_pk = bills[0].patient_id
            account_id = await self._take_deposit(s, now, patient_pk, payment)
            row = await self._record_payment(
                s,
                now,
                payment,
                fingerprint,
                FOR_BILLS,
                patient_pk,
                bill_ids=_joined(pks),
                deposit_account_id=account_id,
            )
            result = await s.execute(
                update(HisBill)
                .where(col(HisBill.id).in_(pks), col(HisBill.status) == b.UNPAID)
                .values(status=b.PAID, paid_at=row.paid_at, payment_reference=payment.reference)
            )
            if _rowcount(result) != len(pks):
                raise _reject(b.BILL_NOT_PAYABLE, "a bill was settled meanwhile")
            return to_receipt(row)

        return await self._write(work)

    async def pay_registration(self, registration_id: str, payment: b.PaymentRecord) -> b.Receipt:
        _check_reference(payment.reference)
        fingerprint = _fingerprint("pay_registration", registration_id, _payment_content(payment))
        pk = _pk(registration_id)

        async def work(s: AsyncSession, now: datetime) -> b.Receipt:
            done = await self._payment(s, payment.reference)
            if done is None:
                stmt = select(HisRegistration).where(col(HisRegistration.id) == pk)
                reg = (
                    await s.execute(stmt.with_for_update().execution_options(populate_existing=True))
                ).scalar_one_or_none()
                done = await self._payment(s, payment.reference)
            if done is not None:
                _repeat(done, fingerprint)
                return to_receipt(done)
            if reg is None or reg.status in ("LOCKED", "RELEASED"):
                raise _reject(b.REGISTRATION_NOT_PAYABLE, f"no registration {registration_id}")
            if reg.fee_fen <= 0:
                raise _reject(b.REGISTRATION_NOT_PAYABLE, "the registration is free")
            if reg.status not in PAYABLE_STATES:
                raise _reject(b.REGISTRATION_NOT_PAYABLE, f"the registration is {reg.status}")
            if reg.payment_status not in UNSETTLED:
                raise _reject(b.REGISTRATION_NOT_PAYABLE, f"the registration's payment status is {reg.payment_status}")
            if reg.hold_expires_at is not None and reg.hold_expires_at <= now:
                raise _reject(b.REGISTRATION_NOT_PAYABLE, "the registration's hold has expired")
            _check_parts(payment)
            if payment.total_fen != reg.fee_fen:
                raise _reject(b.AMOUNT_MISMATCH, f"the fee is {reg.fee_fen}, not {payment.total_fen}")
            account_id = await self._take_deposit(s, now, reg.patient_id, payment)
            row = await self._record_payment(
                s,
                now,
                payment,
                fingerprint,
                FOR_REGISTRATION,
                reg.patient_id,
                registration_id=reg.id,
                deposit_account_id=account_id,
            )
            # Conditional, as the expiry sweep's: an expired hold and a payment cannot both win.
            result = await s.execute(
                update(HisRegistration)
                .where(
                    col(HisRegistration.id) == reg.id,
                    col(HisRegistration.status).in_(PAYABLE_STATES),
                    col(HisRegistration.payment_status).in_(UNSETTLED),
                    or_(col(HisRegistration.hold_expires_at).is_(None), col(HisRegistration.hold_expires_at) > now),
                )
                .values(payment_status=b.PAID, hold_expires_at=None)
            )
            if not _rowcount(result):
                raise _reject(b.REGISTRATION_NOT_PAYABLE, "the registration changed meanwhile")
            return to_receipt(row)

        return await self._write(work)

    # Refunds -------------------------------------------------------------------------------
    async def _refund_row(self, s: AsyncSession, reference: str) -> HisRefund | None:
        stmt = select(HisRefund).where(col(HisRefund.reference) == reference)
        return (await s.execute(stmt.execution_options(populate_existing=True))).scalar_one_or_none()

    async def _locked_payment(self, s: AsyncSession, reference: str) -> HisPayment | None:
        stmt = select(HisPayment).where(col(HisPayment.reference) == reference)
        return (await s.execute(stmt.with_for_update().execution_options(populate_existing=True))).scalar_one_or_none()

    async def _refunded_parts(self, s: AsyncSession, payment_id: int) -> tuple[int, int, int]:
        row = (
            await s.execute(
                select(
                    func.coalesce(func.sum(col(HisRefund.self_pay_fen)), 0),
                    func.coalesce(func.sum(col(HisRefund.insurance_fen)), 0),
                    func.coalesce(func.sum(col(HisRefund.deposit_fen)), 0),
                ).where(col(HisRefund.payment_id) == payment_id)
            )
        ).one()
        return int(row[0]), int(row[1]), int(row[2])

    async def _check_refund(self, s: AsyncSession, pay: HisPayment, r: b.RefundRecord) -> int:
        """Never beyond what was paid, part by part; returns the part going back to the deposit."""
        if r.amount_fen <= 0 or r.self_pay_fen < 0 or r.insurance_fen < 0:
            raise _reject(b.AMOUNT_MISMATCH, "the amount is positive and no part is negative")
        to_deposit = r.amount_fen - r.self_pay_fen - r.insurance_fen
        if to_deposit < 0 or (to_deposit and not pay.deposit_fen):
            raise _reject(b.AMOUNT_MISMATCH, "self-paid and insurance parts add up to the amount")
        if r.amount_fen > pay.total_fen - pay.refunded_fen:
            raise _reject(b.REFUND_EXCEEDS_PAID, f"{pay.total_fen - pay.refunded_fen} is left to refund")
        self_pay, insurance, deposit = await self._refunded_parts(s, pay.id or 0)
        insured = pay.fund_fen + pay.personal_account_fen + pay.family_account_fen
        if (
            self_pay + r.self_pay_fen > pay.self_pay_fen
            or insurance + r.insurance_fen > insured
            or deposit + to_deposit > pay.deposit_fen
        ):
            raise _reject(b.REFUND_EXCEEDS_PAID, "a part exceeds what was paid that way")
        return to_deposit

    async def _refund_bills(self, s: AsyncSession, pay: HisPayment, r: b.RefundRecord) -> list[int]:
        stmt = select(HisBill).where(col(HisBill.id).in_([int(i) for i in _split(pay.bill_ids)]))
        bills = {str(row.id): row for row in (await s.execute(stmt.with_for_update())).scalars().all()}
        named = sorted(set(r.bill_ids)) or sorted(i for i, row in bills.items() if row.status == b.PAID)
        strangers = [i for i in named if i not in bills]
        if strangers:
            raise _reject(b.BILL_NOT_FOUND, f"bills {', '.join(strangers)} are not of payment {pay.reference}")
        if any(bills[i].status != b.PAID for i in named):
            raise _reject(b.REFUND_EXCEEDS_PAID, "a bill named is already refunded")
        executed = [i for i in named if bills[i].executed]
        if executed:
            raise _reject(b.NOT_REFUNDABLE, f"bills {', '.join(executed)} were dispensed or performed")
        total = sum(bills[i].total_fen for i in named)
        if total != r.amount_fen:
            raise _reject(b.AMOUNT_MISMATCH, f"the bills refunded add up to {total}, not {r.amount_fen}")
        pks = [int(i) for i in named]
        result = await s.execute(
            update(HisBill)
            .where(col(HisBill.id).in_(pks), col(HisBill.status) == b.PAID, col(HisBill.executed).is_(False))
            .values(status=b.REFUNDED)
        )
        if _rowcount(result) != len(pks):
            raise _reject(b.NOT_REFUNDABLE, "a bill changed meanwhile")
        return pks

    async def _record_refund(
        self,
        s: AsyncSession,
        now: datetime,
        r: b.RefundRecord,
        fingerprint: str,
        pay: HisPayment,
        *,
        bill_pks: Sequence[int] = (),
        to_deposit: int = 0,
        account: HisDepositAccount | None = None,
    ) -> HisRefund:
        result = await s.execute(
            update(HisPayment)
            .where(
                col(HisPayment.id) == pay.id, col(HisPayment.refunded_fen) + r.amount_fen <= col(HisPayment.total_fen)
            )
            .values(refunded_fen=col(HisPayment.refunded_fen) + r.amount_fen)
        )
        if not _rowcount(result):
            raise _reject(b.REFUND_EXCEEDS_PAID, "refunded meanwhile")
        row = HisRefund(
            reference=r.reference,
            fingerprint=fingerprint,
            payment_id=pay.id or 0,
            payment_reference=pay.reference,
            amount_fen=r.amount_fen,
            self_pay_fen=r.self_pay_fen,
            insurance_fen=r.insurance_fen,
            deposit_fen=to_deposit,
            reason=r.reason[:255],
            bill_ids=_joined(bill_pks),
            refunded_at=r.refunded_at or now,
            recorded_at=now,
            receipt_no="",
            balance_after_fen=account.balance_fen if account else None,
            arrears_after_fen=account.arrears_fen if account else None,
        )
        s.add(row)
        await s.flush()
        row.receipt_no = f"TF{local_date(now):%Y%m%d}{row.id:08d}"
        await s.flush()
        return row

    async def refund(self, refund: b.RefundRecord) -> b.RefundRecord:
        """A bill payment is refunded bill by bill (``bill_ids``, or every bill still paid when empty);
        a registration fee by any amount up to what is left, its payment status REFUNDED once all is.
        What the payment took from the deposit goes back to it: the amount less the self-paid and
        insurance parts. The answer is the refund as recorded: its time, and the bills it refunded."""
        _check_reference(refund.reference)
        fingerprint = _fingerprint("refund", _refund_content(refund))

        async def work(s: AsyncSession, now: datetime) -> b.RefundRecord:
            done = await self._refund_row(s, refund.reference)
            if done is None:
                pay = await self._locked_payment(s, refund.payment_reference)
                done = await self._refund_row(s, refund.reference)
            if done is not None:
                _repeat(done, fingerprint)
                return to_refund(done)
            if pay is None:
                raise _reject(b.PAYMENT_NOT_FOUND, f"no payment {refund.payment_reference}")
            if pay.kind == FOR_DEPOSIT:
                raise _reject(b.NOT_REFUNDABLE, "a deposit top-up is refunded with refund_deposit")
            to_deposit = await self._check_refund(s, pay, refund)
            bill_pks: list[int] = []
            if pay.kind == FOR_BILLS:
                bill_pks = await self._refund_bills(s, pay, refund)
            elif refund.bill_ids:
                raise _reject(b.BILL_NOT_FOUND, f"payment {pay.reference} paid a registration, not bills")
            all_of_it = pay.refunded_fen + refund.amount_fen == pay.total_fen
            row = await self._record_refund(s, now, refund, fingerprint, pay, bill_pks=bill_pks, to_deposit=to_deposit)
            if pay.kind == FOR_REGISTRATION and all_of_it:
                await s.execute(
                    update(HisRegistration)
                    .where(
                        col(HisRegistration.id) == pay.registration_id, col(HisRegistration.payment_status) == b.PAID
                    )
                    .values(payment_status=b.REFUNDED)
                )
            if to_deposit:
                account = await _account(s, str(pay.patient_id), b.OUTPATIENT, None, now, create=True)
                account.balance_fen += to_deposit
                s.add(_entry(account, "PAYMENT_REFUND", refund.reference, to_deposit, now))
            return to_refund(row)

        return await self._write(work)

    # Deposits ------------------------------------------------------------------------------
    async def top_up_deposit(
        self, his_patient_id: str, kind: str, admission_id: str | None, payment: b.PaymentRecord
    ) -> b.DepositAccount:
        """Returns the account as this top-up left it, also when repeated."""
        _check_reference(payment.reference)
        fingerprint = _fingerprint("top_up_deposit", his_patient_id, kind, admission_id, _payment_content(payment))

        async def work(s: AsyncSession, now: datetime) -> b.DepositAccount:
            done = await self._payment(s, payment.reference)
            if done is None:
                _check_parts(payment)
                if payment.deposit_fen:
                    raise _reject(b.AMOUNT_MISMATCH, "a top-up is not paid from the deposit")
                account = await _account(s, his_patient_id, kind, admission_id, now, create=True)
                done = await self._payment(s, payment.reference)
            if done is not None:
                _repeat(done, fingerprint)
                return await self._snapshot(s, done.deposit_account_id, done.balance_after_fen, done.arrears_after_fen)
            cleared = min(account.arrears_fen, payment.total_fen)
            account.arrears_fen -= cleared
            account.balance_fen += payment.total_fen - cleared
            await self._record_payment(
                s,
                now,
                payment,
                fingerprint,
                FOR_DEPOSIT,
                account.patient_id,
                deposit_account_id=account.id,
                balance_after_fen=account.balance_fen,
                arrears_after_fen=account.arrears_fen,
            )
            s.add(_entry(account, "TOP_UP", payment.reference, payment.total_fen, now, cleared))
            return to_account(account)

        return await self._write(work)

    async def _snapshot(
        self, s: AsyncSession, account_id: int | None, balance: int | None, arrears: int | None
    ) -> b.DepositAccount:
        account = await s.get(HisDepositAccount, account_id or 0)
        if account is None:  # the reference paid bills or a registration, not a top-up
            raise _reject(b.REFERENCE_REUSED, "the reference was recorded for another purpose")
        return to_account(account, balance, arrears)

    async def refund_deposit(
        self, his_patient_id: str, kind: str, admission_id: str | None, refund: b.RefundRecord
    ) -> b.DepositAccount:
        """Back by the route it came: ``payment_reference`` names a top-up of this account, and no
        more than that top-up brought in (REFUND_EXCEEDS_PAID) nor than the balance holds
        (INSUFFICIENT_DEPOSIT) goes out. Returns the account as this refund left it."""
        _check_reference(refund.reference)
        fingerprint = _fingerprint("refund_deposit", his_patient_id, kind, admission_id, _refund_content(refund))

        async def work(s: AsyncSession, now: datetime) -> b.DepositAccount:
            done = await self._refund_row(s, refund.reference)
            if done is None:
                account = await _account(s, his_patient_id, kind, admission_id, now, create=False)
                done = await self._refund_row(s, refund.reference)
            if done is not None:
                _repeat(done, fingerprint)
                top_up = await s.get(HisPayment, done.payment_id)
                account_id = top_up.deposit_account_id if top_up else None
                return await self._snapshot(s, account_id, done.balance_after_fen, done.arrears_after_fen)
            if refund.amount_fen <= 0 or refund.self_pay_fen + refund.insurance_fen != refund.amount_fen:
                raise _reject(b.AMOUNT_MISMATCH, "the amount is positive and its parts add up to it")
            if refund.bill_ids:
                raise _reject(b.BILL_NOT_FOUND, "a deposit refund names no bills")
            top_up = await self._locked_payment(s, refund.payment_reference)
            if top_up is None or top_up.kind != FOR_DEPOSIT or top_up.deposit_account_id != account.id:
                raise _reject(b.PAYMENT_NOT_FOUND, f"no top-up {refund.payment_reference} of this account")
            if refund.amount_fen > top_up.total_fen - top_up.refunded_fen:
                raise _reject(b.REFUND_EXCEEDS_PAID, f"{top_up.total_fen - top_up.refunded_fen} is left of the top-up")
            if refund.amount_fen > account.balance_fen:
                raise _reject(b.INSUFFICIENT_DEPOSIT, f"the balance is {account.balance_fen}")
            account.balance_fen -= refund.amount_fen
            await self._record_refund(s, now, refund, fingerprint, top_up, account=account)
            s.add(_entry(account, "REFUND", refund.reference, -refund.amount_fen, now))
            return to_account(account)

        return await self._write(work)


def _amount(item: b.BillItem) -> None:
    """quantity × unit price = amount, exactly: a bill's items are what the HIS charges."""
    try:
        quantity = Decimal(item.quantity)
    except InvalidOperation:
        raise ValueError(f"quantity {item.quantity!r} is not a decimal") from None
    if not quantity.is_finite() or quantity <= 0 or "e" in item.quantity.lower():
        raise ValueError(f"quantity {item.quantity!r} is not a positive decimal")
    if quantity * item.unit_price_fen != item.amount_fen:
        raise ValueError(f"{item.code}: {item.quantity} × {item.unit_price_fen} is not {item.amount_fen}")


class SandboxHISBillingAdmin:
    """What the hospital's own staff do in HIS billing: doctors' orders become bills, the pharmacy
    dispenses, the cashier voids, the wards record arrears. For demo data and tests; not part of
    the ``HISBilling`` contract the BFF calls."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def add_bill(
        self,
        his_patient_id: str,
        card_no: str,
        *,
        registration_id: str | None = None,
        department_id: str,
        doctor_id: str,
        category: str,
        title: str,
        items: Sequence[b.BillItem],
        at: datetime,
    ) -> str:
        """A bill of the patient's card (of a visit of theirs, when given), its total the items' sum."""
        if category not in CATEGORIES:
            raise ValueError(f"category {category!r} is not one of {', '.join(CATEGORIES)}")
        if not items:
            raise ValueError("a bill has items")
        for item in items:
            _amount(item)
        patient_pk = _pk(his_patient_id)
        async with self.db.writing() as s:
            card = await s.get(HisCard, card_no)
            if patient_pk is None or card is None or card.patient_id != patient_pk:
                raise ValueError(f"card {card_no} is not a card of patient {his_patient_id}")
            registration_pk = _pk(registration_id)
            if registration_id is not None:
                registration = await s.get(HisRegistration, registration_pk or 0)
                if registration is None or registration.patient_id != patient_pk:
                    raise ValueError(f"registration {registration_id} is not a visit of patient {his_patient_id}")
            bill = HisBill(
                patient_id=patient_pk,
                card_no=card_no,
                registration_id=registration_pk,
                department_id=department_id,
                doctor_id=doctor_id,
                category=category,
                title=title,
                total_fen=sum(i.amount_fen for i in items),
                status=b.UNPAID,
                created_at=at,
            )
            s.add(bill)
            await s.flush()
            s.add_all(
                HisBillItem(
                    bill_id=bill.id or 0,
                    position=n,
                    code=i.code,
                    name=i.name,
                    spec=i.spec,
                    unit=i.unit,
                    quantity=i.quantity,
                    unit_price_fen=i.unit_price_fen,
                    amount_fen=i.amount_fen,
                    insurance_code=i.insurance_code,
                    insurance_class=i.insurance_class,
                )
                for n, i in enumerate(items)
            )
            return str(bill.id)

    async def mark_executed(self, bill_id: str) -> None:
        """Dispensed or performed (已发药 / 已执行): no longer refundable."""
        async with self.db.writing() as s:
            result = await s.execute(
                update(HisBill)
                .where(col(HisBill.id) == (_pk(bill_id) or 0), col(HisBill.status).in_((b.UNPAID, b.PAID)))
                .values(executed=True)
            )
            if not _rowcount(result):
                raise ValueError(f"bill {bill_id} is unknown, refunded or voided")

    async def void_bill(self, bill_id: str) -> None:
        """A doctor withdraws an order that was not paid (作废)."""
        async with self.db.writing() as s:
            result = await s.execute(
                update(HisBill)
                .where(col(HisBill.id) == (_pk(bill_id) or 0), col(HisBill.status) == b.UNPAID)
                .values(status=b.VOIDED)
            )
            if not _rowcount(result):
                raise ValueError(f"bill {bill_id} is unknown or not unpaid")

    async def add_demo_bills(
        self,
        his_patient_id: str,
        card_no: str,
        *,
        department_id: str,
        doctor_id: str,
        at: datetime,
        registration_id: str | None = None,
    ) -> list[str]:
        """What a morning in cardiology leaves a patient to pay: a prescription, a lab test and an
        ECG, with national catalogue codes; for the demo hospital."""
        orders = (
            (
                b.PRESCRIPTION,
                "门诊西药处方",
                [
                    b.BillItem(
                        "X-B01AC06",
                        "阿司匹林肠溶片",
                        "100mg*30片",
                        "盒",
                        "2",
                        1550,
                        3100,
                        "XB01ACA056A001010100483",
                        "A",
                    ),
                    b.BillItem(
                        "X-C10AA05", "阿托伐他汀钙片", "20mg*7片", "盒", "1", 3270, 3270, "XC10AAA067A001010104415", "B"
                    ),
                ],
            ),
            (
                b.LAB,
                "血脂四项",
                [b.BillItem("250301001", "血脂四项", "", "次", "1", 4800, 4800, "002503010010000", "A")],
            ),
            (
                b.EXAM,
                "常规心电图",
                [b.BillItem("310701001", "常规心电图检查", "十二通道", "次", "1", 2500, 2500, "003107010010000", "A")],
            ),
        )
        return [
            await self.add_bill(
                his_patient_id,
                card_no,
                registration_id=registration_id,
                department_id=department_id,
                doctor_id=doctor_id,
                category=category,
                title=title,
                items=items,
                at=at,
            )
            for category, title, items in orders
        ]

    async def add_arrears(
        self,
        his_patient_id: str,
        fen: int,
        *,
        kind: str = b.OUTPATIENT,
        admission_id: str | None = None,
        at: datetime | None = None,
    ) -> None:
        """The patient owes the hospital ``fen`` more (本院欠费); the next top-up clears it first."""
        if fen <= 0:
            raise ValueError("arrears are a positive amount")
        now = at or datetime.now(UTC)
        for attempt in range(2):
            try:
                async with self.db.writing() as s:
                    account = await _account(s, his_patient_id, kind, admission_id, now, create=True)
                    account.arrears_fen += fen
                    s.add(_entry(account, "ARREARS", "", fen, now))
                return
            except IntegrityError:
                if attempt:
                    raise


if TYPE_CHECKING:  # mypy proves the sandbox keeps to the contract

    def _conforms(db: Database, clock: Clock) -> b.HISBilling:
        return SandboxHISBilling(db, clock)
