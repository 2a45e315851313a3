"""Registrations (挂号): book, same-day, check in, cancel; queue positions, live."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Annotated

import strawberry

from bff.errors import guarded
from datasources.his import contract as c
from realtime import topics
from resolvers import queue, registration
from resolvers import registration_rules as rules
from resolvers.errors import DomainError
from resolvers.geofence import Point
from resolvers.privacy import mask_name
from schema.catalog import Campus, Department, Doctor
from schema.common import (
    AlreadyRegisteredError,
    CreditDefaultedError,
    Ctx,
    CutoffPassedError,
    InvalidInputError,
    LocationInput,
    MedicalCardRequiredError,
    MissingPatientInformationError,
    Money,
    NotAllowedError,
    NotFoundError,
    OutsideGeofenceError,
    ServiceUnavailableError,
    SlotTakenError,
)
from schema.enums import (
    CreditStatus,
    PaymentStatus,
    QueuePositionState,
    RegistrationKind,
    RegistrationStatus,
)
from schema.errors import user_error
from schema.patients import Patient, parse_id, patients_of
from schema.permissions import IsDoctor, IsPatient


@strawberry.type(description="Where a registration stands in its doctor's queue.")
class QueuePosition:
    registration_id: strawberry.ID
    state: QueuePositionState
    queue_number: int | None
    called_number: int | None = strawberry.field(description="The number the doctor called last.")
    ahead: int = strawberry.field(description="How many checked-in patients are before this one.")
    estimated_wait_minutes: int

    @staticmethod
    def of(p: queue.QueuePosition) -> QueuePosition:
        return QueuePosition(
            registration_id=strawberry.ID(p.registration_id),
            state=QueuePositionState(p.state),
            queue_number=p.queue_number,
            called_number=p.called_number,
            ahead=p.ahead,
            estimated_wait_minutes=p.estimated_wait_minutes,
        )


@strawberry.type
class Registration:
    id: strawberry.ID
    kind: RegistrationKind
    status: RegistrationStatus
    payment_status: PaymentStatus
    fee: Money
    starts_at: dt.datetime
    ends_at: dt.datetime
    created_at: dt.datetime
    hold_expires_at: dt.datetime | None = strawberry.field(
        description="An unpaid registration gives its place back at this time."
    )
    queue_number: int | None
    schedule_id: strawberry.ID
    patient: Patient | None
    doctor: Doctor | None
    department: Department | None
    campus: Campus | None
    queue_position: QueuePosition | None = strawberry.field(description="Null until checked in.")
    _source: strawberry.Private[c.Registration]

    @staticmethod
    def of(r: c.Registration, related: Related) -> Registration:
        return Registration(
            id=strawberry.ID(r.id),
            kind=RegistrationKind(r.kind),
            status=RegistrationStatus(r.status),
            payment_status=PaymentStatus(r.payment_status),
            fee=Money.of(r.fee_fen),
            starts_at=r.starts_at,
            ends_at=r.ends_at,
            created_at=r.created_at,
            hold_expires_at=r.hold_expires_at,
            queue_number=r.queue_number,
            schedule_id=strawberry.ID(r.schedule_id),
            patient=related.patient,
            doctor=Doctor.of(related.doctor) if related.doctor else None,
            department=Department.of(related.department) if related.department else None,
            campus=Campus.of(related.campus) if related.campus else None,
            queue_position=QueuePosition.of(
                queue.position(r.id, r.schedule_id, r.queue_number, r.status, related.snapshot)
            )
            if related.snapshot is not None and r.status in IN_QUEUE
            else None,
            _source=r,
        )

    @strawberry.field(description="Until when it can be cancelled online; null for same-day registrations.")
    def cancel_deadline(self, info: Ctx) -> dt.datetime | None:
        return rules.cancel_deadline(self._source, info.context.deps.rules)

    @strawberry.field(description="Whether `cancelRegistration` would be accepted now.")
    def can_cancel(self, info: Ctx) -> bool:
        deps = info.context.deps
        return rules.cancel_refusal(self._source, deps.clock.now(), deps.rules) is None

    @strawberry.field(description="Whether `checkIn` would be accepted now (the location is checked then).")
    def can_check_in(self, info: Ctx) -> bool:
        deps = info.context.deps
        return rules.check_in_refusal(self._source, deps.clock.now(), deps.rules) is None

    @strawberry.field(description="Check-in and taking a number close at this time.")
    def check_in_closes_at(self, info: Ctx) -> dt.datetime:
        return rules.check_in_closes_at(self._source, info.context.deps.rules)


IN_QUEUE = ("CHECKED_IN", "CALLED")


@dataclass(frozen=True, slots=True)
class Related:
    patient: Patient | None
    doctor: c.Doctor | None
    department: c.Department | None
    campus: c.Campus | None
    snapshot: c.QueueSnapshot | None


async def registrations_of(info: Ctx, items: Sequence[tuple[c.Registration, int]]) -> list[Registration]:
    """Registrations with everything they link to, loaded in one round per kind (through the
    request's DataLoaders and the shared cache), so their fields resolve without awaiting."""
    loaders = info.context.loaders
    regs = [r for r, _ in items]
    in_queue = sorted({r.schedule_id for r in regs if r.status in IN_QUEUE})
    # One after the other: warm, each answers from the cache at once; cold, each is one batch.
    doctors = await loaders.doctor_by_id.load_many([r.doctor_id for r in regs])
    departments = await loaders.department_by_id.load_many([r.department_id for r in regs])
    campuses = await loaders.campus_by_id.load_many([r.campus_id for r in regs])
    snapshots = await loaders.queue_snapshot_by_schedule.load_many(in_queue)
    mine = await loaders.patients_by_account.load(info.context.viewer.account_id or 0)
    queues = dict(zip(in_queue, snapshots, strict=True))
    wanted = {patient_id for _, patient_id in items}
    people = {int(p.id): p for p in await patients_of(info, [v for v in mine if v.id in wanted])}
    return [
        Registration.of(r, Related(people.get(patient_id), doctor, department, campus, queues.get(r.schedule_id)))
        for (r, patient_id), doctor, department, campus in zip(items, doctors, departments, campuses, strict=True)
    ]


@strawberry.input
class RegistrationFilter:
    statuses: list[RegistrationStatus] | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    upcoming: bool = strawberry.field(default=False, description="Only visits not yet over, soonest first.")


@strawberry.input
class BookAppointmentInput:
    patient_id: strawberry.ID
    slot_id: strawberry.ID


@strawberry.input
class RegisterSameDayInput:
    patient_id: strawberry.ID
    slot_id: strawberry.ID
    location: LocationInput


@strawberry.input
class CheckInInput:
    registration_id: strawberry.ID
    location: LocationInput


@strawberry.input
class CancelRegistrationInput:
    registration_id: strawberry.ID


@strawberry.input
class CallNextPatientInput:
    schedule_id: strawberry.ID


@strawberry.type(description="Booked. Show `notice` when present (pay-later available or not, and why).")
class AppointmentBooked:
    registration: Registration
    pay_later_eligible: bool
    credit_status: CreditStatus
    notice: str | None


@strawberry.type(description="Registered for today and checked in: the patient is in the queue.")
class CheckedIn:
    registration: Registration
    queue_position: QueuePosition
    pay_later_eligible: bool
    credit_status: CreditStatus
    notice: str | None


@strawberry.type
class RegistrationCancelled:
    registration: Registration
    refund_pending: bool = strawberry.field(description="A paid fee will be refunded by the original route.")


@strawberry.type
class QueueState:
    schedule_id: strawberry.ID
    called_number: int | None
    waiting: list[int]

    @strawberry.field(description="Who is called and who waits, in queue order, names masked.")
    async def entries(self, info: Ctx) -> list[QueueEntry]:
        found = await registration.queue_entries(info.context.deps, self.schedule_id)
        return [QueueEntry.of(e) for e in found]


@strawberry.type(description="A patient in a doctor's queue, as the doctor's screen lists them.")
class QueueEntry:
    registration_id: strawberry.ID
    queue_number: int
    status: RegistrationStatus
    patient_name: str = strawberry.field(description="Masked, e.g. 李*: enough to call the patient in.")
    checked_in_at: dt.datetime | None

    @staticmethod
    def of(e: c.QueueEntry) -> QueueEntry:
        return QueueEntry(
            registration_id=strawberry.ID(e.registration_id),
            queue_number=e.queue_number,
            status=RegistrationStatus(e.status),
            patient_name=mask_name(e.patient_name),
            checked_in_at=e.checked_in_at,
        )


@strawberry.type
class PatientCalled:
    queue: QueueState
    registration_id: strawberry.ID
    queue_number: int | None


_COMMON = (
    NotFoundError
    | NotAllowedError
    | InvalidInputError
    | ServiceUnavailableError
    | MissingPatientInformationError
    | MedicalCardRequiredError
)
BookAppointmentPayload = Annotated[
    AppointmentBooked | SlotTakenError | AlreadyRegisteredError | CreditDefaultedError | _COMMON,
    strawberry.union("BookAppointmentPayload"),
]
RegisterSameDayPayload = Annotated[
    CheckedIn
    | SlotTakenError
    | AlreadyRegisteredError
    | CreditDefaultedError
    | OutsideGeofenceError
    | CutoffPassedError
    | _COMMON,
    strawberry.union("RegisterSameDayPayload"),
]
CheckInPayload = Annotated[
    CheckedIn | CreditDefaultedError | OutsideGeofenceError | CutoffPassedError | _COMMON,
    strawberry.union("CheckInPayload"),
]
CancelRegistrationPayload = Annotated[
    RegistrationCancelled | CutoffPassedError | _COMMON, strawberry.union("CancelRegistrationPayload")
]
CallNextPatientPayload = Annotated[
    PatientCalled | NotFoundError | NotAllowedError | ServiceUnavailableError,
    strawberry.union("CallNextPatientPayload"),
]


def _point(location: LocationInput) -> Point:
    return Point(location.latitude, location.longitude, location.system.value)


async def _checked_in(info: Ctx, result: registration.CheckedIn) -> CheckedIn:
    return CheckedIn(
        registration=(await registrations_of(info, [(result.registration, result.patient_id)]))[0],
        queue_position=QueuePosition.of(result.position),
        pay_later_eligible=result.credit.pay_later_eligible,
        credit_status=CreditStatus(result.credit.status),
        notice=result.credit.notice,
    )


@strawberry.type
class RegistrationMutation:
    @strawberry.mutation(permission_classes=[IsPatient], description="预约挂号.")
    async def book_appointment(self, info: Ctx, input: BookAppointmentInput) -> BookAppointmentPayload:
        deps, viewer = info.context.deps, info.context.viewer
        try:
            booked = await registration.book_appointment(
                deps, account_id=viewer.account_id or 0, patient_id=parse_id(input.patient_id), slot_id=input.slot_id
            )
        except DomainError as exc:
            return user_error(exc)
        return AppointmentBooked(
            registration=(await registrations_of(info, [(booked.registration, booked.patient_id)]))[0],
            pay_later_eligible=booked.credit.pay_later_eligible,
            credit_status=CreditStatus(booked.credit.status),
            notice=booked.credit.notice,
        )

    @strawberry.mutation(permission_classes=[IsPatient], description="当日挂号: registers and checks in at once.")
    async def register_same_day(self, info: Ctx, input: RegisterSameDayInput) -> RegisterSameDayPayload:
        deps, viewer = info.context.deps, info.context.viewer
        try:
            result = await registration.register_same_day(
                deps,
                account_id=viewer.account_id or 0,
                patient_id=parse_id(input.patient_id),
                slot_id=input.slot_id,
                location=_point(input.location),
            )
        except DomainError as exc:
            return user_error(exc)
        return await _checked_in(info, result)

    @strawberry.mutation(permission_classes=[IsPatient], description="签到: join the queue on the day of the visit.")
    async def check_in(self, info: Ctx, input: CheckInInput) -> CheckInPayload:
        deps, viewer = info.context.deps, info.context.viewer
        try:
            result = await registration.check_in(
                deps,
                account_id=viewer.account_id or 0,
                registration_id=input.registration_id,
                location=_point(input.location),
            )
        except DomainError as exc:
            return user_error(exc)
        return await _checked_in(info, result)

    @strawberry.mutation(permission_classes=[IsPatient], description="退号: appointments only, before the cut-off.")
    async def cancel_registration(self, info: Ctx, input: CancelRegistrationInput) -> CancelRegistrationPayload:
        deps, viewer = info.context.deps, info.context.viewer
        try:
            result = await registration.cancel_registration(
                deps, account_id=viewer.account_id or 0, registration_id=input.registration_id
            )
        except DomainError as exc:
            return user_error(exc)
        return RegistrationCancelled(
            registration=(await registrations_of(info, [(result.registration, result.patient_id)]))[0],
            refund_pending=result.refund_pending,
        )

    @strawberry.mutation(permission_classes=[IsDoctor], description="叫号: the doctor calls the next patient.")
    async def call_next_patient(self, info: Ctx, input: CallNextPatientInput) -> CallNextPatientPayload:
        deps, viewer = info.context.deps, info.context.viewer
        try:
            snapshot, called = await registration.call_next(
                deps,
                doctor_his_id=viewer.his_staff_id,
                schedule_id=input.schedule_id,
                actor_account_id=viewer.account_id,
                request_id=info.context.request_id,
            )
        except DomainError as exc:
            return user_error(exc)
        return PatientCalled(
            queue=QueueState(
                schedule_id=strawberry.ID(snapshot.schedule_id),
                called_number=snapshot.called_number,
                waiting=list(snapshot.waiting),
            ),
            registration_id=strawberry.ID(called.id),
            queue_number=called.queue_number,
        )


@strawberry.type
class RegistrationSubscription:
    @strawberry.subscription(
        permission_classes=[IsPatient],
        description="The registration's queue position now, then each time it changes.",
    )
    async def queue_updates(self, info: Ctx, registration_id: strawberry.ID) -> AsyncGenerator[QueuePosition, None]:
        async for position in guarded(_queue_updates(info, registration_id), info.context.request_id):
            yield position


async def _queue_updates(info: Ctx, registration_id: str) -> AsyncGenerator[QueuePosition, None]:
    deps, viewer = info.context.deps, info.context.viewer
    r, _ = await registration.owned_registration(
        deps, account_id=viewer.account_id or 0, registration_id=registration_id
    )
    async with deps.broker.subscribe(topics.queue(r.schedule_id)) as events:
        # Listening already: read the current state, then follow the events.
        fresh = await deps.sources.his.registrations_by_ids([r.id])
        r = fresh[0] if fresh else r
        snapshot = (await deps.sources.his.queue_snapshots([r.schedule_id]))[0]
        last = queue.position(r.id, r.schedule_id, r.queue_number, r.status, snapshot)
        yield QueuePosition.of(last)
        number = r.queue_number
        async for event in events:
            if number is None:
                # Not checked in when subscribing: learn the number once it has one.
                fresh = await deps.sources.his.registrations_by_ids([r.id])
                number = fresh[0].queue_number if fresh else None
            current = queue.position(r.id, r.schedule_id, number, None, queue.snapshot_of(event))
            if current != last:
                last = current
                yield QueuePosition.of(current)
            if current.state == queue.PASSED:
                return
