"""The HIS inpatient sandbox: wards, notices, stays, charges and settlements in ``his_`` tables,
committing on its own.

Every write runs in one transaction and is all or none. It first locks what it changes (the notice
for an admission, the stay otherwise), then looks for its reference: a repeat that arrived while
the first was still running waits for it and returns its answer, the one kept in
``his_inpatient_write``. A bed is taken by a conditional update, so of two stays racing for it one
wins and the other is refused BED_TAKEN. The stay's deposit is ``HISBilling``'s INPATIENT account of
its ``admission_id``, changed in the same transaction, with entries of the same kinds (PAYMENT when a
settlement uses it, PAYMENT_REFUND when a cancellation gives it back); the settlement itself is a
``his_payment`` of kind INPATIENT, so billing's ledger and its refunds see it as any other payment.

Faults on demand (``SandboxHISInpatientAdmin.fail_next``) live in the database, so the sandbox
served over HTTP obeys them too: the next call of a write raises ``SourceUnavailable`` (served: a
503) before doing anything, or, ``after_commit``, after committing its work (the answer is lost, as
after a timeout). This is how the BFF's inpatient sagas are tested failing at each step.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from datasources.clock import Clock, local_date
from datasources.errors import SourceRejected, SourceUnavailable
from datasources.his import billing as b
from datasources.his import inpatient as i
from datasources.his import wire
from datasources.his.billing_sandbox import (
    INVOICE_BASE,
    _account_key,
    _amount,
    _check_reference,
    _entry,
    _fingerprint,
    _instant,
    _pk,
)
from datasources.his.billing_tables import HisDepositAccount, HisPayment
from datasources.his.inpatient_tables import (
    HisAdmission,
    HisAdmissionNotice,
    HisBed,
    HisInpatientCharge,
    HisInpatientFault,
    HisInpatientSettlement,
    HisInpatientWrite,
    HisWard,
)
from datasources.his.sandbox import _rowcount
from datasources.his.tables import HisDepartment, HisDoctor, HisPatient
from datasources.store.db import Database

SOURCE = "his"
T = TypeVar("T")

# The writes, which ``fail_next`` can make fail.
WRITES = frozenset(
    {"admit", "convert_to_insurance", "register_discharge", "undo_discharge", "settle", "cancel_settlement"}
)
ADMISSION_PREFIX = "ZY"  # 住院号 = ZY + eight digits
LEDGER_KIND = "INPATIENT"  # HisPayment.kind of a discharge settlement on the billing ledger


def _reject(code: str, detail: str = "") -> SourceRejected:
    return SourceRejected(SOURCE, code, detail)


def admission_number(pk: int) -> str:
    return f"{ADMISSION_PREFIX}{pk:08d}"


def _admission_pk(admission_id: str) -> int | None:
    if not admission_id.startswith(ADMISSION_PREFIX):
        return None
    return _pk(admission_id[len(ADMISSION_PREFIX) :])


def _encoded(value: Any, tp: Any) -> str:
    return json.dumps(wire.encode(value, tp), ensure_ascii=False)


def to_notice(row: HisAdmissionNotice, ward: HisWard, department: HisDepartment) -> i.AdmissionNotice:
    return i.AdmissionNotice(
        code=row.code,
        his_patient_id=str(row.patient_id),
        department_id=str(ward.department_id),
        department_name=department.name,
        ward_id=str(ward.id),
        ward_name=ward.name,
        doctor_id=row.doctor_id,
        doctor_name=row.doctor_name,
        diagnosis_code=row.diagnosis_code,
        diagnosis=row.diagnosis,
        issued_at=row.issued_at,
        valid_until=row.valid_until,
    )


def to_bed(row: HisBed) -> i.Bed:
    return i.Bed(str(row.id), str(row.ward_id), row.bed_no, row.room, row.daily_fee_fen)


def to_fee_item(row: HisInpatientCharge) -> i.FeeItem:
    return i.FeeItem(
        id=str(row.id),
        admission_id=admission_number(row.admission_id),
        day=row.day,
        charged_at=row.charged_at,
        category=row.category,
        code=row.code,
        name=row.name,
        spec=row.spec,
        unit=row.unit,
        quantity=row.quantity,
        unit_price_fen=row.unit_price_fen,
        amount_fen=row.amount_fen,
        insurance_code=row.insurance_code,
        insurance_class=row.insurance_class,
        department_id=row.department_id,
        department_name=row.department_name,
        doctor_id=row.doctor_id,
        doctor_name=row.doctor_name,
    )


def to_receipt(row: HisInpatientSettlement) -> i.DischargeReceipt:
    return i.DischargeReceipt(
        reference=row.reference,
        receipt_no=row.receipt_no,
        admission_id=admission_number(row.admission_id),
        his_patient_id=str(row.patient_id),
        status=row.status,
        total_fen=row.total_fen,
        fund_fen=row.fund_fen,
        personal_account_fen=row.personal_account_fen,
        family_account_fen=row.family_account_fen,
        deposit_used_fen=row.deposit_used_fen,
        self_pay_fen=row.self_pay_fen,
        surplus_fen=row.surplus_fen,
        insurance_settlement_id=row.insurance_settlement_id,
        settled_at=row.settled_at,
        invoice_url=INVOICE_BASE + row.receipt_no,
        cancelled_at=row.cancelled_at,
        cancel_reference=row.cancel_reference,
    )


def _settlement_content(st: i.InpatientSettlement) -> list[Any]:
    return [
        st.reference,
        st.total_fen,
        st.fund_fen,
        st.personal_account_fen,
        st.family_account_fen,
        st.deposit_used_fen,
        st.self_pay_fen,
        st.surplus_fen,
        st.insurance_settlement_id,
        st.self_pay_channel,
        st.channel_trade_no,
        _instant(st.settled_at),
    ]


def _check_parts(st: i.InpatientSettlement, fees_fen: int, admission_type: str) -> None:
    parts = (st.fund_fen, st.personal_account_fen, st.family_account_fen, st.deposit_used_fen, st.self_pay_fen)
    if any(p < 0 for p in (*parts, st.surplus_fen)):
        raise _reject(i.AMOUNT_MISMATCH, "no part is negative")
    if sum(parts) != st.total_fen:
        raise _reject(i.AMOUNT_MISMATCH, f"the parts add up to {sum(parts)}, not the total {st.total_fen}")
    if st.total_fen != fees_fen:
        raise _reject(i.AMOUNT_MISMATCH, f"the stay's fees add up to {fees_fen}, not {st.total_fen}")
    insured = st.fund_fen + st.personal_account_fen + st.family_account_fen
    if admission_type == i.SELF_PAY and (insured or st.insurance_settlement_id):
        raise _reject(i.INSURANCE_MISMATCH, "a self-pay stay has no insurance parts nor setl_id")
    if admission_type == i.INSURANCE and not st.insurance_settlement_id:
        raise _reject(i.INSURANCE_MISMATCH, "an insured stay is settled with the platform's setl_id")
    if st.self_pay_fen and not st.self_pay_channel:
        raise _reject(i.AMOUNT_MISMATCH, "a part paid at discharge names its channel")


def _ledger_payment(st: i.InpatientSettlement, row: HisInpatientSettlement, now: datetime) -> HisPayment:
    """The settlement as a payment of the HIS's cash ledger (``HISBilling.ledger``), which the daily
    reconciliation reads: the part paid at discharge is matched there with the channel's bill by
    this reference, and a refund of it is written back with ``HISBilling.refund`` naming it."""
    insured = st.fund_fen + st.personal_account_fen + st.family_account_fen
    return HisPayment(
        reference=st.reference,
        fingerprint=_fingerprint("settle", row.admission_id, st.reference),
        kind=LEDGER_KIND,
        patient_id=row.patient_id,
        channel=st.self_pay_channel if st.self_pay_fen else b.INSURANCE if insured else b.DEPOSIT,
        total_fen=st.total_fen,
        self_pay_fen=st.self_pay_fen,
        fund_fen=st.fund_fen,
        personal_account_fen=st.personal_account_fen,
        family_account_fen=st.family_account_fen,
        deposit_fen=st.deposit_used_fen,
        channel_trade_no=st.channel_trade_no,
        insurance_settlement_id=st.insurance_settlement_id,
        paid_at=row.settled_at,
        recorded_at=now,
        receipt_no=row.receipt_no,
        deposit_account_id=row.deposit_account_id,
    )


class SandboxHISInpatient:
    """Implements ``HISInpatient`` over its own ``his_`` tables, next to ``SandboxHISBilling``'s deposits."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    # Plumbing ------------------------------------------------------------------------------
    async def _fault(self, method: str, *, after_commit: bool) -> None:
        """Consumes one fault asked for ``method``, if any, and fails the call with it."""
        stmt = select(col(HisInpatientFault.id)).where(
            col(HisInpatientFault.method) == method, col(HisInpatientFault.after_commit) == after_commit
        )
        async with self.db.reading() as s:
            ids = (await s.execute(stmt.order_by(col(HisInpatientFault.id)))).scalars().all()
        for fault_id in ids:
            async with self.db.writing() as s:
                taken = _rowcount(
                    await s.execute(delete(HisInpatientFault).where(col(HisInpatientFault.id) == fault_id))
                )
            if taken:
                raise SourceUnavailable(SOURCE, f"{method}: unavailable (a fault the sandbox was asked for)")

    async def _write(self, method: str, reference: str, work: Callable[[AsyncSession, datetime], Awaitable[T]]) -> T:
        """Runs ``work`` in one transaction, between the faults asked for. A unique key taken by a
        concurrent write at the same moment (a reference, a notice) fails it; run again, it finds
        the winner's row."""
        _check_reference(reference)
        await self._fault(method, after_commit=False)
        for attempt in range(3):
            try:
                async with self.db.writing() as s:
                    result = await work(s, self.clock.now())
                break
            except IntegrityError:
                if attempt == 2:
                    raise
        await self._fault(method, after_commit=True)
        return result

    async def _done(self, s: AsyncSession, reference: str, fingerprint: str, tp: Any) -> Any:
        """The first answer to ``reference``, None when it is new (REFERENCE_REUSED for other content)."""
        stmt = select(HisInpatientWrite).where(col(HisInpatientWrite.reference) == reference)
        row = (await s.execute(stmt.execution_options(populate_existing=True))).scalar_one_or_none()
        if row is None:
            return None
        if row.fingerprint != fingerprint:
            raise _reject(i.REFERENCE_REUSED, f"reference {reference} was recorded with other content")
        return wire.decode(json.loads(row.answer), tp)

    async def _record(
        self,
        s: AsyncSession,
        now: datetime,
        method: str,
        reference: str,
        fingerprint: str,
        admission_pk: int,
        answer: T,
    ) -> T:
        s.add(
            HisInpatientWrite(
                reference=reference,
                fingerprint=fingerprint,
                method=method,
                admission_id=admission_pk,
                answer=_encoded(answer, _RETURNS[method]),
                recorded_at=now,
            )
        )
        await s.flush()
        return answer

    async def _locked(self, s: AsyncSession, admission_id: str) -> HisAdmission | None:
        stmt = select(HisAdmission).where(col(HisAdmission.id) == (_admission_pk(admission_id) or 0))
        return (await s.execute(stmt.with_for_update().execution_options(populate_existing=True))).scalar_one_or_none()

    async def _admissions(self, s: AsyncSession, *where: Any) -> list[i.Admission]:
        stmt = (
            select(HisAdmission, HisAdmissionNotice, HisWard, HisDepartment, HisBed)
            .join(HisAdmissionNotice, col(HisAdmissionNotice.id) == col(HisAdmission.notice_id))
            .join(HisWard, col(HisWard.id) == col(HisAdmission.ward_id))
            .join(HisDepartment, col(HisDepartment.id) == col(HisWard.department_id))
            .join(HisBed, col(HisBed.id) == col(HisAdmission.bed_id))
            .where(*where)
            .order_by(col(HisAdmission.admitted_at).desc(), col(HisAdmission.id).desc())
            .execution_options(populate_existing=True)
        )
        return [
            i.Admission(
                admission_id=admission_number(a.id or 0),
                his_patient_id=str(a.patient_id),
                notice_code=n.code,
                admission_type=a.admission_type,
                insurance_visit_id=a.insurance_visit_id,
                status=a.status,
                admitted_at=a.admitted_at,
                department_id=str(w.department_id),
                department_name=d.name,
                ward_id=str(w.id),
                ward_name=w.name,
                bed_id=str(bed.id),
                bed_no=bed.bed_no,
                doctor_id=n.doctor_id,
                doctor_name=n.doctor_name,
                diagnosis_code=n.diagnosis_code,
                diagnosis=n.diagnosis,
                discharged_at=a.discharged_at,
                discharge_diagnosis=a.discharge_diagnosis,
            )
            for a, n, w, d, bed in (await s.execute(stmt)).all()
        ]

    async def _one(self, s: AsyncSession, row: HisAdmission) -> i.Admission:
        await s.flush()
        (found,) = await self._admissions(s, col(HisAdmission.id) == row.id)
        return found

    # Reads ---------------------------------------------------------------------------------
    async def admission_notice(self, code: str) -> i.AdmissionNotice:
        async with self.db.reading() as s:
            found = (
                await s.execute(
                    select(HisAdmissionNotice, HisWard, HisDepartment)
                    .join(HisWard, col(HisWard.id) == col(HisAdmissionNotice.ward_id))
                    .join(HisDepartment, col(HisDepartment.id) == col(HisWard.department_id))
                    .where(col(HisAdmissionNotice.code) == code)
                )
            ).one_or_none()
            if found is None:
                raise _reject(i.NOTICE_NOT_FOUND, "no such admission notice")
            notice, ward, department = found
            used = (
                await s.execute(select(col(HisAdmission.id)).where(col(HisAdmission.notice_id) == notice.id))
            ).scalar_one_or_none()
        if used is not None:
            raise _reject(i.NOTICE_USED, "a stay was admitted with this notice")
        if notice.valid_until <= self.clock.now():
            raise _reject(i.NOTICE_EXPIRED, "the notice is no longer valid")
        return to_notice(notice, ward, department)

    async def free_beds(self, ward_id: str) -> list[i.Bed]:
        async with self.db.reading() as s:
            ward = await s.get(HisWard, _pk(ward_id) or 0)
            if ward is None:
                raise _reject(i.WARD_NOT_FOUND, f"no ward {ward_id}")
            stmt = select(HisBed).where(col(HisBed.ward_id) == ward.id, col(HisBed.admission_id).is_(None))
            rows = (await s.execute(stmt)).scalars().all()
        return [to_bed(r) for r in sorted(rows, key=lambda r: (len(r.bed_no), r.bed_no, r.id or 0))]

    async def admission(self, admission_id: str) -> i.Admission:
        async with self.db.reading() as s:
            found = await self._admissions(s, col(HisAdmission.id) == (_admission_pk(admission_id) or 0))
        if not found:
            raise _reject(i.ADMISSION_NOT_FOUND, f"no stay {admission_id}")
        return found[0]

    async def admissions_of(self, his_patient_ids: list[str]) -> list[i.Admission]:
        pks = [pk for pk in map(_pk, his_patient_ids) if pk is not None]
        async with self.db.reading() as s:
            return await self._admissions(s, col(HisAdmission.patient_id).in_(pks))

    async def fee_items(self, admission_id: str) -> i.FeeList:
        async with self.db.reading() as s:
            stay = await s.get(HisAdmission, _admission_pk(admission_id) or 0)
            if stay is None:
                raise _reject(i.ADMISSION_NOT_FOUND, f"no stay {admission_id}")
            stmt = (
                select(HisInpatientCharge)
                .where(col(HisInpatientCharge.admission_id) == stay.id)
                .order_by(col(HisInpatientCharge.charged_at), col(HisInpatientCharge.id))
            )
            rows = (await s.execute(stmt)).scalars().all()
        totals: dict[str, int] = {}
        for row in rows:
            totals[row.category] = totals.get(row.category, 0) + row.amount_fen
        return i.FeeList(
            admission_id=admission_number(stay.id or 0),
            items=tuple(to_fee_item(r) for r in rows),
            total_fen=sum(r.amount_fen for r in rows),
            by_category=tuple(i.CategoryTotal(k, totals[k]) for k in sorted(totals)),
            frozen=stay.status != i.ADMITTED,
        )

    async def settlements_by_references(self, references: list[str]) -> list[i.DischargeReceipt]:
        stmt = (
            select(HisInpatientSettlement)
            .where(col(HisInpatientSettlement.reference).in_(references))
            .order_by(col(HisInpatientSettlement.id))
        )
        async with self.db.reading() as s:
            return [to_receipt(r) for r in (await s.execute(stmt)).scalars().all()]

    # Admission -----------------------------------------------------------------------------
    async def admit(
        self,
        notice_code: str,
        *,
        his_patient_id: str,
        bed_id: str,
        admission_type: str,
        insurance_visit_id: str | None,
        reference: str,
    ) -> i.Admission:
        fingerprint = _fingerprint(
            "admit", notice_code, his_patient_id, bed_id, admission_type, insurance_visit_id, reference
        )

        async def work(s: AsyncSession, now: datetime) -> i.Admission:
            stmt = select(HisAdmissionNotice).where(col(HisAdmissionNotice.code) == notice_code)
            notice = (
                await s.execute(stmt.with_for_update().execution_options(populate_existing=True))
            ).scalar_one_or_none()
            done = await self._done(s, reference, fingerprint, i.Admission)
            if done is not None:
                return done  # type: ignore[no-any-return]
            if notice is None:
                raise _reject(i.NOTICE_NOT_FOUND, "no such admission notice")
            if _pk(his_patient_id) != notice.patient_id:
                raise _reject(i.PATIENT_MISMATCH, "the notice was issued to another patient")
            used = (
                await s.execute(select(col(HisAdmission.id)).where(col(HisAdmission.notice_id) == notice.id))
            ).scalar_one_or_none()
            if used is not None:
                raise _reject(i.NOTICE_USED, "a stay was admitted with this notice")
            if notice.valid_until <= now:
                raise _reject(i.NOTICE_EXPIRED, "the notice is no longer valid")
            patient = select(HisPatient).where(col(HisPatient.id) == notice.patient_id).with_for_update()
            await s.execute(patient)  # two notices of one patient admit one after the other
            staying = select(col(HisAdmission.id)).where(
                col(HisAdmission.patient_id) == notice.patient_id, col(HisAdmission.status) != i.SETTLED
            )
            if (await s.execute(staying)).first() is not None:
                raise _reject(i.ALREADY_IN_HOSPITAL, "the patient's stay is not settled yet")
            if admission_type not in (i.SELF_PAY, i.INSURANCE):
                raise _reject(i.INVALID_ADMISSION_TYPE, f"{admission_type!r} is neither SELF_PAY nor INSURANCE")
            if (admission_type == i.INSURANCE) != bool(insurance_visit_id):
                raise _reject(i.INSURANCE_VISIT_REQUIRED, "an insured stay has the platform's mdtrt_id, self-pay none")
            bed = await s.get(HisBed, _pk(bed_id) or 0)
            if bed is None or bed.ward_id != notice.ward_id:
                raise _reject(i.BED_NOT_FOUND, f"no bed {bed_id} in the notice's ward")
            stay = HisAdmission(
                notice_id=notice.id or 0,
                patient_id=notice.patient_id,
                ward_id=notice.ward_id,
                bed_id=bed.id or 0,
                admission_type=admission_type,
                insurance_visit_id=insurance_visit_id or None,
                status=i.ADMITTED,
                admitted_at=now,
            )
            s.add(stay)
            await s.flush()
            taken = await s.execute(
                update(HisBed)
                .where(col(HisBed.id) == bed.id, col(HisBed.admission_id).is_(None))
                .values(admission_id=stay.id)
            )
            if not _rowcount(taken):
                raise _reject(i.BED_TAKEN, f"bed {bed.bed_no} is taken")
            answer = await self._one(s, stay)
            return await self._record(s, now, "admit", reference, fingerprint, stay.id or 0, answer)

        return await self._write("admit", reference, work)

    async def _stay_write(
        self,
        method: str,
        admission_id: str,
        reference: str,
        fingerprint: str,
        tp: Any,
        change: Callable[[AsyncSession, datetime, HisAdmission], Awaitable[Any]],
    ) -> Any:
        """A write on one stay: locked, the reference looked for, ``change`` made, the answer kept."""

        async def work(s: AsyncSession, now: datetime) -> Any:
            stay = await self._locked(s, admission_id)
            done = await self._done(s, reference, fingerprint, tp)
            if done is not None:
                return done
            if stay is None:
                raise _reject(i.ADMISSION_NOT_FOUND, f"no stay {admission_id}")
            answer = await change(s, now, stay)
            if answer is None:
                answer = await self._one(s, stay)
            return await self._record(s, now, method, reference, fingerprint, stay.id or 0, answer)

        return await self._write(method, reference, work)

    async def convert_to_insurance(self, admission_id: str, insurance_visit_id: str, reference: str) -> i.Admission:
        fingerprint = _fingerprint("convert_to_insurance", admission_id, insurance_visit_id, reference)

        async def change(s: AsyncSession, now: datetime, stay: HisAdmission) -> None:
            if stay.status != i.ADMITTED:
                raise _reject(i.NOT_ADMITTED, f"the stay is {stay.status}")
            if stay.admission_type == i.INSURANCE:
                raise _reject(i.ALREADY_INSURED, "the stay is insured already")
            if not insurance_visit_id:
                raise _reject(i.INSURANCE_VISIT_REQUIRED, "the platform's mdtrt_id is required")
            stay.admission_type = i.INSURANCE
            stay.insurance_visit_id = insurance_visit_id

        result: i.Admission = await self._stay_write(
            "convert_to_insurance", admission_id, reference, fingerprint, i.Admission, change
        )
        return result

    # Discharge -----------------------------------------------------------------------------
    async def register_discharge(
        self, admission_id: str, *, discharged_at: datetime, diagnosis: str, reference: str
    ) -> i.Admission:
        fingerprint = _fingerprint("register_discharge", admission_id, _instant(discharged_at), diagnosis, reference)

        async def change(s: AsyncSession, now: datetime, stay: HisAdmission) -> None:
            if stay.status != i.ADMITTED:
                raise _reject(i.NOT_ADMITTED, f"the stay is {stay.status}")
            if discharged_at.tzinfo is None or discharged_at < stay.admitted_at:
                raise _reject(i.INVALID_DISCHARGE_TIME, "the discharge is an instant after the admission")
            stay.status = i.DISCHARGE_REGISTERED
            stay.discharged_at = discharged_at
            stay.discharge_diagnosis = diagnosis[:255]
            await s.execute(
                update(HisBed)
                .where(col(HisBed.id) == stay.bed_id, col(HisBed.admission_id) == stay.id)
                .values(admission_id=None)
            )

        result: i.Admission = await self._stay_write(
            "register_discharge", admission_id, reference, fingerprint, i.Admission, change
        )
        return result

    async def undo_discharge(self, admission_id: str, reference: str) -> i.Admission:
        fingerprint = _fingerprint("undo_discharge", admission_id, reference)

        async def change(s: AsyncSession, now: datetime, stay: HisAdmission) -> None:
            if stay.status == i.SETTLED:
                raise _reject(i.ALREADY_SETTLED, "a settled stay cannot be called back")
            if stay.status != i.DISCHARGE_REGISTERED:
                raise _reject(i.NOT_DISCHARGE_REGISTERED, f"the stay is {stay.status}")
            taken = await s.execute(
                update(HisBed)
                .where(col(HisBed.id) == stay.bed_id, col(HisBed.admission_id).is_(None))
                .values(admission_id=stay.id)
            )
            if not _rowcount(taken):
                raise _reject(i.BED_TAKEN, "the stay's bed went to another stay")
            stay.status = i.ADMITTED
            stay.discharged_at = None
            stay.discharge_diagnosis = ""

        result: i.Admission = await self._stay_write(
            "undo_discharge", admission_id, reference, fingerprint, i.Admission, change
        )
        return result

    # Settlement ----------------------------------------------------------------------------
    async def _deposit(self, s: AsyncSession, stay: HisAdmission) -> HisDepositAccount | None:
        key = _account_key(stay.patient_id, b.INPATIENT, admission_number(stay.id or 0))
        stmt = select(HisDepositAccount).where(col(HisDepositAccount.account_key) == key)
        return (await s.execute(stmt.with_for_update().execution_options(populate_existing=True))).scalar_one_or_none()

    async def settle(self, admission_id: str, settlement: i.InpatientSettlement) -> i.DischargeReceipt:
        """The fees are summed afresh under the stay's lock; the deposit account is locked before its
        balance is read, so a top-up running at the same moment is either counted or waits."""
        st = settlement
        fingerprint = _fingerprint("settle", admission_id, _settlement_content(st))

        async def change(s: AsyncSession, now: datetime, stay: HisAdmission) -> i.DischargeReceipt:
            if stay.status == i.SETTLED:
                raise _reject(i.ALREADY_SETTLED, "the stay is settled")
            if stay.status != i.DISCHARGE_REGISTERED:
                raise _reject(i.NOT_DISCHARGE_REGISTERED, "the discharge is registered before settlement")
            charges = select(col(HisInpatientCharge.amount_fen)).where(col(HisInpatientCharge.admission_id) == stay.id)
            fees = sum((await s.execute(charges)).scalars().all())
            _check_parts(st, fees, stay.admission_type)
            account = await self._deposit(s, stay)
            balance = account.balance_fen if account else 0
            if st.deposit_used_fen > balance:
                raise _reject(i.INSUFFICIENT_DEPOSIT, f"the stay's deposit holds {balance}")
            if st.surplus_fen != balance - st.deposit_used_fen:
                raise _reject(i.AMOUNT_MISMATCH, f"{balance - st.deposit_used_fen} of the deposit is left over")
            if st.self_pay_fen and st.surplus_fen:
                raise _reject(i.AMOUNT_MISMATCH, "the deposit is used up before anything is paid at discharge")
            on_ledger = select(col(HisPayment.id)).where(col(HisPayment.reference) == st.reference)
            if (await s.execute(on_ledger)).first() is not None:
                raise _reject(i.REFERENCE_REUSED, f"reference {st.reference} is a payment of HIS billing")
            if account is not None and st.deposit_used_fen:
                account.balance_fen -= st.deposit_used_fen
                s.add(_entry(account, "PAYMENT", st.reference, -st.deposit_used_fen, now))
            row = HisInpatientSettlement(
                reference=st.reference,
                admission_id=stay.id or 0,
                patient_id=stay.patient_id,
                status=i.IN_FORCE,
                total_fen=st.total_fen,
                fund_fen=st.fund_fen,
                personal_account_fen=st.personal_account_fen,
                family_account_fen=st.family_account_fen,
                deposit_used_fen=st.deposit_used_fen,
                self_pay_fen=st.self_pay_fen,
                surplus_fen=st.surplus_fen,
                insurance_settlement_id=st.insurance_settlement_id,
                self_pay_channel=st.self_pay_channel,
                channel_trade_no=st.channel_trade_no,
                deposit_account_id=account.id if account else None,
                settled_at=st.settled_at or now,
                recorded_at=now,
                receipt_no="",
            )
            s.add(row)
            await s.flush()
            row.receipt_no = f"ZJ{local_date(now):%Y%m%d}{row.id:08d}"
            if st.total_fen:
                s.add(_ledger_payment(st, row, now))
            stay.status = i.SETTLED
            await s.flush()
            return to_receipt(row)

        result: i.DischargeReceipt = await self._stay_write(
            "settle", admission_id, st.reference, fingerprint, i.DischargeReceipt, change
        )
        return result

    async def cancel_settlement(
        self, admission_id: str, *, settlement_reference: str, reference: str
    ) -> i.SettlementCancellation:
        fingerprint = _fingerprint("cancel_settlement", admission_id, settlement_reference, reference)

        async def change(s: AsyncSession, now: datetime, stay: HisAdmission) -> i.SettlementCancellation:
            stmt = select(HisInpatientSettlement).where(
                col(HisInpatientSettlement.reference) == settlement_reference,
                col(HisInpatientSettlement.admission_id) == stay.id,
                col(HisInpatientSettlement.status) == i.IN_FORCE,
            )
            row = (
                await s.execute(stmt.with_for_update().execution_options(populate_existing=True))
            ).scalar_one_or_none()
            if row is None:
                raise _reject(i.SETTLEMENT_NOT_FOUND, f"no settlement {settlement_reference} in force of the stay")
            if row.deposit_used_fen:
                account = await self._deposit(s, stay)
                if account is None:  # the settlement took from it, so it exists
                    raise AssertionError("the stay's deposit account vanished")
                account.balance_fen += row.deposit_used_fen
                s.add(_entry(account, "PAYMENT_REFUND", reference, row.deposit_used_fen, now))
            row.status = i.CANCELLED
            row.cancelled_at = now
            row.cancel_reference = reference
            stay.status = i.DISCHARGE_REGISTERED
            await s.flush()
            return i.SettlementCancellation(reference, settlement_reference, admission_id, row.deposit_used_fen, now)

        result: i.SettlementCancellation = await self._stay_write(
            "cancel_settlement", admission_id, reference, fingerprint, i.SettlementCancellation, change
        )
        return result


_RETURNS: dict[str, Any] = {
    "admit": i.Admission,
    "convert_to_insurance": i.Admission,
    "register_discharge": i.Admission,
    "undo_discharge": i.Admission,
    "settle": i.DischargeReceipt,
    "cancel_settlement": i.SettlementCancellation,
}


class SandboxHISInpatientAdmin:
    """What the hospital's own staff do in the inpatient department: wards and beds set up, doctors
    issue admission notices, the wards charge the stays. And what tests need: ``fail_next``. For
    demo data and tests; not part of the ``HISInpatient`` contract the BFF calls."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def add_ward(
        self, name: str, department_id: str, beds: Sequence[str], *, daily_fee_fen: int = 5000, room: str = ""
    ) -> str:
        """A ward of the department with these bed numbers, all free."""
        async with self.db.writing() as s:
            if await s.get(HisDepartment, _pk(department_id) or 0) is None:
                raise ValueError(f"no department {department_id}")
            ward = HisWard(name=name, department_id=_pk(department_id) or 0)
            s.add(ward)
            await s.flush()
            s.add_all(HisBed(ward_id=ward.id or 0, bed_no=n, room=room, daily_fee_fen=daily_fee_fen) for n in beds)
            return str(ward.id)

    async def issue_notice(
        self,
        his_patient_id: str,
        ward_id: str,
        diagnosis: str,
        valid_until: datetime,
        *,
        doctor_id: str | None = None,
        diagnosis_code: str = "",
        at: datetime | None = None,
    ) -> str:
        """A doctor's admission notice into the ward; returns its code (the QR payload)."""
        if valid_until.tzinfo is None:
            raise ValueError("valid_until is an instant with its offset")
        async with self.db.writing() as s:
            if await s.get(HisPatient, _pk(his_patient_id) or 0) is None:
                raise ValueError(f"no patient {his_patient_id}")
            if await s.get(HisWard, _pk(ward_id) or 0) is None:
                raise ValueError(f"no ward {ward_id}")
            doctor_name = ""
            if doctor_id is not None:
                doctor = await s.get(HisDoctor, _pk(doctor_id) or 0)
                if doctor is None:
                    raise ValueError(f"no doctor {doctor_id}")
                doctor_name = doctor.name
            code = f"RY{secrets.token_hex(8).upper()}"
            s.add(
                HisAdmissionNotice(
                    code=code,
                    patient_id=_pk(his_patient_id) or 0,
                    ward_id=_pk(ward_id) or 0,
                    doctor_id=doctor_id or "",
                    doctor_name=doctor_name,
                    diagnosis_code=diagnosis_code,
                    diagnosis=diagnosis,
                    issued_at=at or datetime.now(UTC),
                    valid_until=valid_until,
                )
            )
            return code

    async def add_charge(
        self,
        admission_id: str,
        item: b.BillItem,
        at: datetime,
        *,
        category: str,
        department_id: str | None = None,
        doctor_id: str | None = None,
    ) -> str:
        """A line of the stay's daily list, billed by its ward's department and the notice's doctor
        unless named; refused once the discharge is registered (the fees are frozen)."""
        if category not in i.CATEGORIES:
            raise ValueError(f"category {category!r} is not a medChrgitmType code")
        _amount(item)
        async with self.db.writing() as s:
            stmt = select(HisAdmission).where(col(HisAdmission.id) == (_admission_pk(admission_id) or 0))
            stay = (await s.execute(stmt.with_for_update())).scalar_one_or_none()
            if stay is None:
                raise ValueError(f"no stay {admission_id}")
            if stay.status != i.ADMITTED:
                raise ValueError(f"the stay is {stay.status}: its fees are frozen")
            ward = await s.get(HisWard, stay.ward_id)
            notice = await s.get(HisAdmissionNotice, stay.notice_id)
            department_pk = _pk(department_id) if department_id is not None else ward.department_id if ward else None
            department = await s.get(HisDepartment, department_pk or 0)
            if department is None or notice is None:
                raise ValueError(f"no department {department_id}")
            doctor_name = notice.doctor_name
            if doctor_id is not None:
                doctor = await s.get(HisDoctor, _pk(doctor_id) or 0)
                if doctor is None:
                    raise ValueError(f"no doctor {doctor_id}")
                doctor_name = doctor.name
            row = HisInpatientCharge(
                admission_id=stay.id or 0,
                charged_at=at,
                day=local_date(at),
                category=category,
                code=item.code,
                name=item.name,
                spec=item.spec,
                unit=item.unit,
                quantity=item.quantity,
                unit_price_fen=item.unit_price_fen,
                amount_fen=item.amount_fen,
                insurance_code=item.insurance_code,
                insurance_class=item.insurance_class,
                department_id=str(department.id),
                department_name=department.name,
                doctor_id=doctor_id if doctor_id is not None else notice.doctor_id,
                doctor_name=doctor_name,
            )
            s.add(row)
            await s.flush()
            return str(row.id)

    async def charge_bed_day(self, admission_id: str, at: datetime) -> str:
        """A day of the stay's bed at the bed's own daily fee (床位费), as the ward's nightly run books it."""
        async with self.db.reading() as s:
            stay = await s.get(HisAdmission, _admission_pk(admission_id) or 0)
            bed = await s.get(HisBed, stay.bed_id) if stay else None
        if bed is None:
            raise ValueError(f"no stay {admission_id}")
        item = b.BillItem(
            "110900001", "床位费", "", "日", "1", bed.daily_fee_fen, bed.daily_fee_fen, "001109000010000", "A"
        )
        return await self.add_charge(admission_id, item, at, category=i.BED)

    async def add_demo_day(self, admission_id: str, at: datetime) -> list[str]:
        """What a day in cardiology charges a stay: the bed, first-class nursing, an infusion and a
        blood count, with national catalogue codes; for the demo hospital and the flows' tests."""
        lines = [await self.charge_bed_day(admission_id, at)]
        for item, category in (
            (b.BillItem("120100002", "一级护理", "", "日", "1", 2800, 2800, "001201000020000", "A"), i.NURSING),
            (
                b.BillItem(
                    "X-B05BB01", "氯化钠注射液", "0.9%*250ml", "袋", "2", 350, 700, "XB05BBH054B002010100152", "A"
                ),
                i.WESTERN_MEDICINE,
            ),
            (b.BillItem("250101001", "血常规", "", "次", "1", 2000, 2000, "002501010010000", "A"), i.LABORATORY),
        ):
            lines.append(await self.add_charge(admission_id, item, at, category=category))
        return lines

    async def fail_next(self, method: str, *, after_commit: bool = False) -> None:
        """The next call of the write ``method`` is unavailable (``SourceUnavailable``; over HTTP a
        503): before doing anything, or with ``after_commit`` once its work is committed, so the
        caller does not learn that it was done. Each call asks for one failure."""
        if method not in WRITES:
            raise ValueError(f"{method!r} is not one of the writes: {', '.join(sorted(WRITES))}")
        async with self.db.writing() as s:
            s.add(HisInpatientFault(method=method, after_commit=after_commit, created_at=datetime.now(UTC)))


if TYPE_CHECKING:  # mypy proves the sandbox keeps to the contract

    def _conforms(db: Database, clock: Clock) -> i.HISInpatient:
        return SandboxHISInpatient(db, clock)
