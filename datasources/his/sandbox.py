"""The HIS sandbox: a working HIS in the database, committing on its own like a remote system."""

from __future__ import annotations

import base64
from datetime import date, datetime, timedelta
from typing import Any, cast

from sqlalchemy import and_, or_, select, update
from sqlalchemy.engine import CursorResult, Result
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from datasources.clock import Clock, local_datetime
from datasources.errors import SourceRejected
from datasources.his import contract as c
from datasources.his.tables import (
    HisCampus,
    HisCard,
    HisDepartment,
    HisDoctor,
    HisPatient,
    HisRegistration,
    HisSchedule,
    HisSlot,
)
from datasources.store.db import Database

SOURCE = "his"
ACTIVE = ("LOCKED", "BOOKED", "CHECKED_IN", "CALLED")


def _ids(ids: list[str]) -> list[int]:
    out = []
    for value in ids:
        if value.isdigit():
            out.append(int(value))
    return out


def _rowcount(result: Result[Any]) -> int:
    """Rows an UPDATE matched: how conditional updates tell who won."""
    return int(cast(CursorResult[Any], result).rowcount)


def _reject(code: str, detail: str = "") -> SourceRejected:
    return SourceRejected(SOURCE, code, detail)


def to_campus(row: HisCampus) -> c.Campus:
    return c.Campus(
        id=str(row.id),
        name=row.name,
        address=row.address,
        latitude=row.latitude,
        longitude=row.longitude,
        coordinate_system=row.coordinate_system,
    )


def to_department(row: HisDepartment) -> c.Department:
    return c.Department(
        id=str(row.id),
        campus_id=str(row.campus_id),
        parent_id=str(row.parent_id) if row.parent_id is not None else None,
        name=row.name,
        introduction=row.introduction,
    )


def to_doctor(row: HisDoctor) -> c.Doctor:
    return c.Doctor(
        id=str(row.id),
        name=row.name,
        title=row.title,
        specialty=row.specialty,
        introduction=row.introduction,
        avatar_url=row.avatar_url,
        department_id=str(row.department_id),
        internet_hospital_url=row.internet_hospital_url,
    )


def to_slot(row: HisSlot) -> c.Slot:
    return c.Slot(
        id=str(row.id),
        schedule_id=str(row.schedule_id),
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        capacity=row.capacity,
        booked=row.booked,
    )


def to_schedule(row: HisSchedule, slots: list[HisSlot]) -> c.Schedule:
    return c.Schedule(
        id=str(row.id),
        doctor_id=str(row.doctor_id),
        department_id=str(row.department_id),
        campus_id=str(row.campus_id),
        day=row.day,
        period=row.period,
        fee_fen=row.fee_fen,
        average_consult_minutes=row.average_consult_minutes,
        slots=tuple(to_slot(s) for s in sorted(slots, key=lambda s: s.starts_at)),
    )


def to_registration(row: HisRegistration) -> c.Registration:
    return c.Registration(
        id=str(row.id),
        slot_id=str(row.slot_id),
        schedule_id=str(row.schedule_id),
        doctor_id=str(row.doctor_id),
        department_id=str(row.department_id),
        campus_id=str(row.campus_id),
        his_patient_id=str(row.patient_id),
        card_no=row.card_no,
        kind=row.kind,
        status=row.status,
        payment_status=row.payment_status,
        fee_fen=row.fee_fen,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        created_at=row.created_at,
        hold_expires_at=row.hold_expires_at,
        queue_number=row.queue_number,
        checked_in_at=row.checked_in_at,
        cancelled_at=row.cancelled_at,
    )


def _encode_cursor(row: HisRegistration) -> str:
    return base64.urlsafe_b64encode(f"{row.starts_at.isoformat()}|{row.id}".encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        starts, _, ident = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        return datetime.fromisoformat(starts), int(ident)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _reject("INVALID_CURSOR", "the cursor is not one this list returned") from exc


class SandboxHIS:
    """Implements ``HIS`` over its own ``his_`` tables."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    # Catalog -------------------------------------------------------------------------------
    async def campuses(self) -> list[c.Campus]:
        async with self.db.reading() as s:
            rows = (await s.execute(select(HisCampus).order_by(col(HisCampus.id)))).scalars().all()
        return [to_campus(r) for r in rows]

    async def departments(self, campus_id: str | None = None) -> list[c.Department]:
        stmt = select(HisDepartment).order_by(col(HisDepartment.id))
        if campus_id is not None:
            stmt = stmt.where(col(HisDepartment.campus_id).in_(_ids([campus_id])))
        async with self.db.reading() as s:
            rows = (await s.execute(stmt)).scalars().all()
        return [to_department(r) for r in rows]

    async def departments_by_ids(self, ids: list[str]) -> list[c.Department]:
        async with self.db.reading() as s:
            stmt = select(HisDepartment).where(col(HisDepartment.id).in_(_ids(ids)))
            rows = (await s.execute(stmt)).scalars().all()
        return [to_department(r) for r in rows]

    async def doctors(
        self, *, department_id: str | None, campus_id: str | None, after: str | None, first: int
    ) -> list[c.Doctor]:
        stmt = select(HisDoctor).order_by(col(HisDoctor.id)).limit(first)
        if department_id is not None:
            stmt = stmt.where(col(HisDoctor.department_id).in_(_ids([department_id])))
        if campus_id is not None:
            stmt = stmt.join(HisDepartment, col(HisDepartment.id) == col(HisDoctor.department_id)).where(
                col(HisDepartment.campus_id).in_(_ids([campus_id]))
            )
        if after is not None and after.isdigit():
            stmt = stmt.where(col(HisDoctor.id) > int(after))
        async with self.db.reading() as s:
            rows = (await s.execute(stmt)).scalars().all()
        return [to_doctor(r) for r in rows]

    async def doctors_by_ids(self, ids: list[str]) -> list[c.Doctor]:
        async with self.db.reading() as s:
            stmt = select(HisDoctor).where(col(HisDoctor.id).in_(_ids(ids)))
            rows = (await s.execute(stmt)).scalars().all()
        return [to_doctor(r) for r in rows]

    async def _with_slots(self, s: AsyncSession, schedules: list[HisSchedule]) -> list[c.Schedule]:
        if not schedules:
            return []
        ids = [sc.id for sc in schedules]
        slots = (await s.execute(select(HisSlot).where(col(HisSlot.schedule_id).in_(ids)))).scalars().all()
        by_schedule: dict[int, list[HisSlot]] = {}
        for slot in slots:
            by_schedule.setdefault(slot.schedule_id, []).append(slot)
        return [to_schedule(sc, by_schedule.get(sc.id or 0, [])) for sc in schedules]

    async def schedules(
        self,
        *,
        date_from: date,
        date_to: date,
        department_id: str | None = None,
        doctor_ids: list[str] | None = None,
        campus_id: str | None = None,
    ) -> list[c.Schedule]:
        stmt = (
            select(HisSchedule)
            .where(col(HisSchedule.day) >= date_from, col(HisSchedule.day) <= date_to)
            .order_by(col(HisSchedule.day), col(HisSchedule.period), col(HisSchedule.doctor_id))
        )
        for column, values in (
            (col(HisSchedule.department_id), [department_id] if department_id is not None else None),
            (col(HisSchedule.doctor_id), doctor_ids),
            (col(HisSchedule.campus_id), [campus_id] if campus_id is not None else None),
        ):
            if values is not None:
                stmt = stmt.where(column.in_(_ids(values)))
        async with self.db.reading() as s:
            rows = list((await s.execute(stmt)).scalars().all())
            return await self._with_slots(s, rows)

    async def schedules_by_ids(self, ids: list[str]) -> list[c.Schedule]:
        async with self.db.reading() as s:
            stmt = select(HisSchedule).where(col(HisSchedule.id).in_(_ids(ids)))
            rows = list((await s.execute(stmt)).scalars().all())
            return await self._with_slots(s, rows)

    async def slots_by_ids(self, ids: list[str]) -> list[c.Slot]:
        async with self.db.reading() as s:
            stmt = select(HisSlot).where(col(HisSlot.id).in_(_ids(ids)))
            rows = (await s.execute(stmt)).scalars().all()
        return [to_slot(r) for r in rows]

    # Patient records -----------------------------------------------------------------------
    async def find_cards(self, *, name: str, document_number: str) -> list[c.MedicalCard]:
        stmt = (
            select(HisCard, HisPatient)
            .join(HisPatient, col(HisPatient.id) == col(HisCard.patient_id))
            .where(col(HisPatient.document_number) == document_number.strip().upper(), col(HisPatient.name) == name)
            .order_by(col(HisCard.created_at))
        )
        async with self.db.reading() as s:
            rows = (await s.execute(stmt)).all()
        return [
            c.MedicalCard(
                card_no=card.card_no,
                card_type=card.card_type,
                his_patient_id=str(person.id),
                name=person.name,
                created_at=card.created_at,
            )
            for card, person in rows
        ]

    async def create_record(self, record: c.PatientRecordInput) -> c.MedicalCard:
        now = self.clock.now()
        try:
            async with self.db.writing() as s:
                person = HisPatient(
                    name=record.name,
                    document_type=record.document_type,
                    document_number=record.document_number.strip().upper(),
                    gender=record.gender,
                    birth_date=record.birth_date,
                    phone=record.phone,
                    nationality=record.nationality,
                    address=record.address,
                    created_at=now,
                )
                s.add(person)
                await s.flush()
                card = HisCard(
                    card_no=f"9{person.id:011d}", patient_id=person.id or 0, card_type="MEDICAL_CARD", created_at=now
                )
                s.add(card)
        except IntegrityError as exc:
            raise _reject(c.RECORD_EXISTS, "a record with this document number exists; find its cards") from exc
        return c.MedicalCard(
            card_no=card.card_no,
            card_type=card.card_type,
            his_patient_id=str(person.id),
            name=person.name,
            created_at=now,
        )

    # Registration --------------------------------------------------------------------------
    async def lock_slot(
        self, *, slot_id: str, his_patient_id: str, card_no: str, kind: str, lock_seconds: int
    ) -> c.SlotLock:
        now = self.clock.now()
        slot_pk = _ids([slot_id])[0] if _ids([slot_id]) else -1
        try:
            async with self.db.writing() as s:
                taken = await self._take_place(s, slot_pk)
                if not taken:
                    # Expired holds give their places back before the slot is declared full.
                    await self._release(s, now, slot_pk=slot_pk)
                    taken = await self._take_place(s, slot_pk)
                if not taken:
                    exists = await s.get(HisSlot, slot_pk)
                    if exists is None:
                        raise _reject(c.SLOT_NOT_FOUND, f"slot {slot_id} does not exist")
                    raise _reject(c.SLOT_FULL, f"slot {slot_id} has no places left")
                slot = await s.get(HisSlot, slot_pk)
                schedule = await s.get(HisSchedule, slot.schedule_id) if slot else None
                assert slot is not None and schedule is not None
                if slot.ends_at <= now:
                    raise _reject(c.INVALID_STATE, "the slot has already ended")
                patient_pk = _ids([his_patient_id])
                if not patient_pk or await s.get(HisPatient, patient_pk[0]) is None:
                    raise _reject(c.PATIENT_NOT_FOUND, f"no HIS patient {his_patient_id}")
                row = HisRegistration(
                    slot_id=slot_pk,
                    schedule_id=schedule.id or 0,
                    doctor_id=schedule.doctor_id,
                    department_id=schedule.department_id,
                    campus_id=schedule.campus_id,
                    patient_id=patient_pk[0],
                    card_no=card_no,
                    kind=kind,
                    status="LOCKED",
                    fee_fen=schedule.fee_fen,
                    starts_at=slot.starts_at,
                    ends_at=slot.ends_at,
                    created_at=now,
                    lock_expires_at=now + timedelta(seconds=lock_seconds),
                    active_key=f"{patient_pk[0]}:{schedule.id}",
                )
                s.add(row)
                await s.flush()
        except IntegrityError as exc:
            raise _reject(c.ALREADY_REGISTERED, "this patient already holds a registration for this session") from exc
        assert row.lock_expires_at is not None
        return c.SlotLock(id=str(row.id), slot_id=slot_id, expires_at=row.lock_expires_at)

    async def _take_place(self, s: AsyncSession, slot_pk: int) -> bool:
        result = await s.execute(
            update(HisSlot)
            .where(col(HisSlot.id) == slot_pk, col(HisSlot.booked) < col(HisSlot.capacity))
            .values(booked=col(HisSlot.booked) + 1)
        )
        return bool(_rowcount(result))

    async def confirm_registration(
        self, *, lock_id: str, payment_status: str, hold_expires_at: datetime | None
    ) -> c.Registration:
        now = self.clock.now()
        async with self.db.writing() as s:
            result = await s.execute(
                update(HisRegistration)
                .where(
                    col(HisRegistration.id).in_(_ids([lock_id])),
                    col(HisRegistration.status) == "LOCKED",
                    col(HisRegistration.lock_expires_at) > now,
                )
                .values(
                    status="BOOKED",
                    payment_status=payment_status,
                    hold_expires_at=hold_expires_at,
                    lock_expires_at=None,
                )
            )
            if not _rowcount(result):
                raise _reject(c.LOCK_NOT_FOUND, f"lock {lock_id} is unknown, expired or already used")
            row = await s.get(HisRegistration, int(lock_id))
            assert row is not None
            return to_registration(row)

    async def unlock_slot(self, lock_id: str) -> None:
        async with self.db.writing() as s:
            rows = (
                (
                    await s.execute(
                        select(HisRegistration).where(
                            col(HisRegistration.id).in_(_ids([lock_id])),
                            col(HisRegistration.status) == "LOCKED",
                        )
                    )
                )
                .scalars()
                .all()
            )
            for row in rows:
                await self._end(s, row, "RELEASED", self.clock.now())

    async def _end(self, s: AsyncSession, row: HisRegistration, status: str, now: datetime) -> bool:
        """Moves an active registration to a final state and gives its place back, exactly once."""
        result = await s.execute(
            update(HisRegistration)
            .where(
                col(HisRegistration.id) == row.id,
                col(HisRegistration.status) == row.status,
                # A payment committed since the row was read wins over an expiry sweep.
                col(HisRegistration.payment_status) == row.payment_status,
            )
            .values(status=status, active_key=None, cancelled_at=now)
        )
        if not _rowcount(result):
            return False
        await s.execute(update(HisSlot).where(col(HisSlot.id) == row.slot_id).values(booked=col(HisSlot.booked) - 1))
        row.status = status
        row.cancelled_at = now
        return True

    async def check_in(self, registration_id: str) -> c.Registration:
        now = self.clock.now()
        async with self.db.writing() as s:
            row = await self._registration(s, registration_id)
            if row.status != "BOOKED":
                raise _reject(c.INVALID_STATE, f"registration is {row.status}, only BOOKED can check in")
            number = (
                await s.execute(
                    update(HisSchedule)
                    .where(col(HisSchedule.id) == row.schedule_id)
                    .values(last_queue_number=col(HisSchedule.last_queue_number) + 1)
                    .returning(col(HisSchedule.last_queue_number))
                )
            ).scalar_one()
            result = await s.execute(
                update(HisRegistration)
                .where(col(HisRegistration.id) == row.id, col(HisRegistration.status) == "BOOKED")
                .values(status="CHECKED_IN", queue_number=number, checked_in_at=now)
            )
            if not _rowcount(result):
                raise _reject(c.INVALID_STATE, "registration changed while checking in")
            await s.refresh(row)
            return to_registration(row)

    async def cancel_registration(self, registration_id: str) -> c.Registration:
        now = self.clock.now()
        async with self.db.writing() as s:
            row = await self._registration(s, registration_id)
            if row.status != "BOOKED" or not await self._end(s, row, "CANCELLED", now):
                raise _reject(c.INVALID_STATE, f"registration is {row.status}, only BOOKED can be cancelled")
            return to_registration(row)

    async def release_expired(self) -> list[c.Registration]:
        async with self.db.writing() as s:
            released = await self._release(s, self.clock.now())
        return [to_registration(r) for r in released]

    async def _release(self, s: AsyncSession, now: datetime, *, slot_pk: int | None = None) -> list[HisRegistration]:
        stmt = select(HisRegistration).where(
            or_(
                and_(col(HisRegistration.status) == "LOCKED", col(HisRegistration.lock_expires_at) <= now),
                and_(
                    col(HisRegistration.status) == "BOOKED",
                    col(HisRegistration.payment_status) == "UNPAID",
                    col(HisRegistration.hold_expires_at) <= now,
                ),
            )
        )
        if slot_pk is not None:
            stmt = stmt.where(col(HisRegistration.slot_id) == slot_pk)
        released = []
        for row in (await s.execute(stmt)).scalars().all():
            if await self._end(s, row, "EXPIRED", now):
                released.append(row)
        return released

    async def _registration(self, s: AsyncSession, registration_id: str) -> HisRegistration:
        pk = _ids([registration_id])
        row = await s.get(HisRegistration, pk[0]) if pk else None
        if row is None or row.status in ("LOCKED", "RELEASED"):
            raise _reject(c.REGISTRATION_NOT_FOUND, f"no registration {registration_id}")
        return row

    async def registrations_by_ids(self, ids: list[str]) -> list[c.Registration]:
        async with self.db.reading() as s:
            stmt = select(HisRegistration).where(
                col(HisRegistration.id).in_(_ids(ids)),
                col(HisRegistration.status).not_in(("LOCKED", "RELEASED")),
            )
            rows = (await s.execute(stmt)).scalars().all()
        return [to_registration(r) for r in rows]

    async def registrations_of_patients(
        self, his_patient_ids: list[str], flt: c.RegistrationFilter, *, after: str | None, first: int
    ) -> c.RegistrationPage:
        ascending = flt.upcoming_from is not None
        order = (
            (col(HisRegistration.starts_at).asc(), col(HisRegistration.id).asc())
            if ascending
            else (col(HisRegistration.starts_at).desc(), col(HisRegistration.id).desc())
        )
        stmt = (
            select(HisRegistration)
            .where(
                col(HisRegistration.patient_id).in_(_ids(his_patient_ids)),
                col(HisRegistration.status).not_in(("LOCKED", "RELEASED")),
            )
            .order_by(*order)
            .limit(first + 1)
        )
        if flt.statuses:
            stmt = stmt.where(col(HisRegistration.status).in_(flt.statuses))
        if flt.upcoming_from is not None:
            stmt = stmt.where(col(HisRegistration.ends_at) > flt.upcoming_from)
        if flt.date_from is not None:
            stmt = stmt.where(col(HisRegistration.starts_at) >= _day_start(flt.date_from))
        if flt.date_to is not None:
            stmt = stmt.where(col(HisRegistration.starts_at) < _day_start(flt.date_to + timedelta(days=1)))
        if after:
            at, ident = _decode_cursor(after)
            if ascending:
                stmt = stmt.where(
                    or_(
                        col(HisRegistration.starts_at) > at,
                        and_(col(HisRegistration.starts_at) == at, col(HisRegistration.id) > ident),
                    )
                )
            else:
                stmt = stmt.where(
                    or_(
                        col(HisRegistration.starts_at) < at,
                        and_(col(HisRegistration.starts_at) == at, col(HisRegistration.id) < ident),
                    )
                )
        async with self.db.reading() as s:
            rows = list((await s.execute(stmt)).scalars().all())
        return c.RegistrationPage(
            items=[to_registration(r) for r in rows[:first]],
            cursors=[_encode_cursor(r) for r in rows[:first]],
            has_more=len(rows) > first,
        )

    # Queue ---------------------------------------------------------------------------------
    async def queue_snapshots(self, schedule_ids: list[str]) -> list[c.QueueSnapshot]:
        pks = _ids(schedule_ids)
        async with self.db.reading() as s:
            schedules = (await s.execute(select(HisSchedule).where(col(HisSchedule.id).in_(pks)))).scalars().all()
            waiting = (
                await s.execute(
                    select(col(HisRegistration.schedule_id), col(HisRegistration.queue_number))
                    .where(col(HisRegistration.schedule_id).in_(pks), col(HisRegistration.status) == "CHECKED_IN")
                    .order_by(col(HisRegistration.queue_number))
                )
            ).all()
        numbers: dict[int, list[int]] = {}
        for schedule_id, number in waiting:
            if number is not None:
                numbers.setdefault(schedule_id, []).append(number)
        return [
            c.QueueSnapshot(
                schedule_id=str(sc.id),
                called_number=sc.called_number,
                waiting=tuple(numbers.get(sc.id or 0, [])),
                average_consult_minutes=sc.average_consult_minutes,
            )
            for sc in schedules
        ]

    async def queue_entries(self, schedule_id: str) -> list[c.QueueEntry]:
        async with self.db.reading() as s:
            rows = (
                await s.execute(
                    select(HisRegistration, col(HisPatient.name))
                    .join(HisPatient, col(HisPatient.id) == col(HisRegistration.patient_id))
                    .where(
                        col(HisRegistration.schedule_id).in_(_ids([schedule_id])),
                        col(HisRegistration.status).in_(("CHECKED_IN", "CALLED")),
                    )
                    .order_by(col(HisRegistration.queue_number))
                )
            ).all()
        return [
            c.QueueEntry(
                registration_id=str(r.id),
                queue_number=r.queue_number or 0,
                status=r.status,
                patient_name=name,
                checked_in_at=r.checked_in_at,
            )
            for r, name in rows
        ]

    async def call_next(self, schedule_id: str) -> tuple[c.QueueSnapshot, c.Registration]:
        now = self.clock.now()
        pk = _ids([schedule_id])
        async with self.db.writing() as s:
            # Write first, so the SQLite transaction holds the write lock before it reads.
            await s.execute(
                update(HisRegistration)
                .where(col(HisRegistration.schedule_id).in_(pk), col(HisRegistration.status) == "CALLED")
                .values(status="COMPLETED")
            )
            nxt = (
                await s.execute(
                    select(HisRegistration)
                    .where(col(HisRegistration.schedule_id).in_(pk), col(HisRegistration.status) == "CHECKED_IN")
                    .order_by(col(HisRegistration.queue_number))
                    .limit(1)
                )
            ).scalar_one_or_none()
            if nxt is None:
                raise _reject(c.QUEUE_EMPTY, f"nobody is waiting in session {schedule_id}")
            nxt.status = "CALLED"
            nxt.called_at = now
            schedule = await s.get(HisSchedule, nxt.schedule_id)
            assert schedule is not None
            schedule.called_number = nxt.queue_number
            await s.flush()
            waiting = (
                (
                    await s.execute(
                        select(col(HisRegistration.queue_number))
                        .where(
                            col(HisRegistration.schedule_id) == nxt.schedule_id,
                            col(HisRegistration.status) == "CHECKED_IN",
                        )
                        .order_by(col(HisRegistration.queue_number))
                    )
                )
                .scalars()
                .all()
            )
            snapshot = c.QueueSnapshot(
                schedule_id=str(schedule.id),
                called_number=schedule.called_number,
                waiting=tuple(n for n in waiting if n is not None),
                average_consult_minutes=schedule.average_consult_minutes,
            )
            return snapshot, to_registration(nxt)


def _day_start(day: date) -> datetime:
    return local_datetime(day, 0)


class SandboxHISAdmin:
    """What the hospital's own staff do in HIS: set up the catalog and publish schedules.

    Used by the demo data and by tests; not part of the ``HIS`` contract the BFF calls.
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    async def add_campus(self, name: str, address: str, latitude: float, longitude: float, system: str) -> str:
        async with self.db.writing() as s:
            row = HisCampus(
                name=name, address=address, latitude=latitude, longitude=longitude, coordinate_system=system
            )
            s.add(row)
            await s.flush()
            return str(row.id)

    async def add_department(
        self, campus_id: str, name: str, parent_id: str | None = None, introduction: str = ""
    ) -> str:
        async with self.db.writing() as s:
            row = HisDepartment(
                campus_id=int(campus_id),
                name=name,
                introduction=introduction,
                parent_id=int(parent_id) if parent_id else None,
            )
            s.add(row)
            await s.flush()
            return str(row.id)

    async def add_doctor(
        self,
        department_id: str,
        name: str,
        title: str,
        specialty: str,
        *,
        introduction: str = "",
        avatar_url: str = "",
        internet_hospital_url: str | None = None,
    ) -> str:
        async with self.db.writing() as s:
            row = HisDoctor(
                department_id=int(department_id),
                name=name,
                title=title,
                specialty=specialty,
                introduction=introduction,
                avatar_url=avatar_url,
                internet_hospital_url=internet_hospital_url,
            )
            s.add(row)
            await s.flush()
            return str(row.id)

    async def add_schedule(
        self,
        doctor_id: str,
        day: date,
        period: str,
        *,
        fee_fen: int,
        slots: list[tuple[datetime, datetime, int]],
        average_consult_minutes: int = 10,
    ) -> tuple[str, list[str]]:
        """Publishes a session with its slots (start, end, capacity); returns their ids."""
        async with self.db.writing() as s:
            doctor = await s.get(HisDoctor, int(doctor_id))
            department = await s.get(HisDepartment, doctor.department_id) if doctor else None
            if doctor is None or department is None:
                raise ValueError(f"no doctor {doctor_id}")
            schedule = HisSchedule(
                doctor_id=doctor.id or 0,
                department_id=department.id or 0,
                campus_id=department.campus_id,
                day=day,
                period=period,
                fee_fen=fee_fen,
                average_consult_minutes=average_consult_minutes,
            )
            s.add(schedule)
            await s.flush()
            rows = [
                HisSlot(schedule_id=schedule.id or 0, starts_at=start, ends_at=end, capacity=capacity)
                for start, end, capacity in slots
            ]
            s.add_all(rows)
            await s.flush()
            return str(schedule.id), [str(r.id) for r in rows]

    async def days_with_schedules(self, date_from: date) -> set[date]:
        async with self.db.reading() as s:
            days = (
                await s.execute(select(col(HisSchedule.day)).where(col(HisSchedule.day) >= date_from).distinct())
            ).scalars()
            return set(days)

    async def doctor_ids(self) -> list[str]:
        async with self.db.reading() as s:
            return [str(i) for i in (await s.execute(select(col(HisDoctor.id)).order_by(col(HisDoctor.id)))).scalars()]
