"""HIS (hospital information system): catalog, patient records and cards, registrations, queues.

The HIS is the system of record for everything here; the BFF keeps none of it. Registration follows
the HIS's lock → confirm → unlock protocol: a lock reserves a place in a slot for a few minutes,
confirm turns it into a registration, unlock gives it back when the caller's own steps fail.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Protocol

# Stable rejection codes (SourceRejected.code) the resolvers map to business outcomes.
SLOT_FULL = "SLOT_FULL"
SLOT_NOT_FOUND = "SLOT_NOT_FOUND"
ALREADY_REGISTERED = "ALREADY_REGISTERED"
LOCK_NOT_FOUND = "LOCK_NOT_FOUND"
REGISTRATION_NOT_FOUND = "REGISTRATION_NOT_FOUND"
INVALID_STATE = "INVALID_STATE"
PATIENT_NOT_FOUND = "PATIENT_NOT_FOUND"
RECORD_EXISTS = "RECORD_EXISTS"
QUEUE_EMPTY = "QUEUE_EMPTY"


@dataclass(frozen=True, slots=True)
class Campus:
    id: str
    name: str
    address: str
    latitude: float
    longitude: float
    coordinate_system: str  # GCJ02, WGS84 or BD09


@dataclass(frozen=True, slots=True)
class Department:
    id: str
    campus_id: str
    parent_id: str | None
    name: str
    introduction: str


@dataclass(frozen=True, slots=True)
class Doctor:
    id: str
    name: str
    title: str
    specialty: str
    introduction: str
    avatar_url: str
    department_id: str
    internet_hospital_url: str | None


@dataclass(frozen=True, slots=True)
class Slot:
    id: str
    schedule_id: str
    starts_at: datetime
    ends_at: datetime
    capacity: int
    booked: int

    @property
    def remaining(self) -> int:
        return max(self.capacity - self.booked, 0)


@dataclass(frozen=True, slots=True)
class Schedule:
    id: str
    doctor_id: str
    department_id: str
    campus_id: str
    day: date
    period: str  # AM, PM
    fee_fen: int
    average_consult_minutes: int
    slots: tuple[Slot, ...] = ()


@dataclass(frozen=True, slots=True)
class PatientRecordInput:
    name: str
    document_type: str
    document_number: str
    gender: str | None
    birth_date: date | None
    phone: str | None
    nationality: str | None
    address: str | None


@dataclass(frozen=True, slots=True)
class MedicalCard:
    card_no: str
    card_type: str  # MEDICAL_CARD, HEALTH_CARD
    his_patient_id: str
    name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class SlotLock:
    id: str
    slot_id: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Registration:
    id: str
    slot_id: str
    schedule_id: str
    doctor_id: str
    department_id: str
    campus_id: str
    his_patient_id: str
    card_no: str
    kind: str  # APPOINTMENT, SAME_DAY
    status: str  # BOOKED, CHECKED_IN, CALLED, COMPLETED, CANCELLED, EXPIRED
    payment_status: str  # UNPAID, PAID, PAY_LATER
    fee_fen: int
    starts_at: datetime
    ends_at: datetime
    created_at: datetime
    hold_expires_at: datetime | None
    queue_number: int | None
    checked_in_at: datetime | None
    cancelled_at: datetime | None


@dataclass(frozen=True, slots=True)
class RegistrationPage:
    items: list[Registration]
    cursors: list[str]  # opaque, one per item: pass one as ``after`` to continue after it
    has_more: bool


@dataclass(frozen=True, slots=True)
class RegistrationFilter:
    statuses: tuple[str, ...] = ()
    date_from: date | None = None
    date_to: date | None = None
    upcoming_from: datetime | None = None  # only registrations whose slot ends after this instant


@dataclass(frozen=True, slots=True)
class QueueSnapshot:
    """The state of one doctor-session's queue; enough for any patient to compute their position."""

    schedule_id: str
    called_number: int | None
    waiting: tuple[int, ...] = field(default=())  # the numbers checked in and not yet called, ascending
    average_consult_minutes: int = 10


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """One checked-in or called patient of a session, as the doctor's screen lists them."""

    registration_id: str
    queue_number: int
    status: str  # CHECKED_IN or CALLED
    patient_name: str
    checked_in_at: datetime | None


class HIS(Protocol):
    # Catalog
    async def campuses(self) -> list[Campus]: ...
    async def departments(self, campus_id: str | None = None) -> list[Department]: ...
    async def departments_by_ids(self, ids: list[str]) -> list[Department]: ...
    async def doctors(
        self, *, department_id: str | None, campus_id: str | None, after: str | None, first: int
    ) -> list[Doctor]: ...
    async def doctors_by_ids(self, ids: list[str]) -> list[Doctor]: ...
    async def schedules(
        self,
        *,
        date_from: date,
        date_to: date,
        department_id: str | None = None,
        doctor_ids: list[str] | None = None,
        campus_id: str | None = None,
    ) -> list[Schedule]: ...
    async def schedules_by_ids(self, ids: list[str]) -> list[Schedule]: ...
    async def slots_by_ids(self, ids: list[str]) -> list[Slot]: ...

    # Patient records and cards (the hospital's master patient index)
    async def find_cards(self, *, name: str, document_number: str) -> list[MedicalCard]: ...
    async def create_record(self, record: PatientRecordInput) -> MedicalCard: ...

    # Registration: lock → confirm → unlock
    async def lock_slot(
        self, *, slot_id: str, his_patient_id: str, card_no: str, kind: str, lock_seconds: int
    ) -> SlotLock: ...
    async def confirm_registration(
        self, *, lock_id: str, payment_status: str, hold_expires_at: datetime | None
    ) -> Registration: ...
    async def unlock_slot(self, lock_id: str) -> None: ...
    async def check_in(self, registration_id: str) -> Registration: ...
    async def cancel_registration(self, registration_id: str) -> Registration: ...
    async def release_expired(self) -> list[Registration]: ...
    async def registrations_by_ids(self, ids: list[str]) -> list[Registration]: ...
    async def registrations_of_patients(
        self,
        his_patient_ids: list[str],
        flt: RegistrationFilter,
        *,
        after: str | None,
        first: int,
    ) -> RegistrationPage: ...

    # Queue
    async def queue_snapshots(self, schedule_ids: list[str]) -> list[QueueSnapshot]: ...
    async def call_next(self, schedule_id: str) -> tuple[QueueSnapshot, Registration]: ...
    async def queue_entries(self, schedule_id: str) -> list[QueueEntry]:
        """Who is called and who waits, in queue order."""
        ...
