"""The HIS sandbox's own tables (prefixed ``his_``): its state, as a hospital's HIS would keep it."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from datasources.store.types import UTCDateTime


def _at(nullable: bool = False) -> Column[datetime]:
    return Column(UTCDateTime(), nullable=nullable)


class HisCampus(SQLModel, table=True):
    __tablename__ = "his_campus"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64)
    address: str = Field(max_length=255)
    latitude: float
    longitude: float
    coordinate_system: str = Field(max_length=8)


class HisDepartment(SQLModel, table=True):
    __tablename__ = "his_department"
    id: int | None = Field(default=None, primary_key=True)
    campus_id: int = Field(foreign_key="his_campus.id", index=True)
    parent_id: int | None = Field(default=None, foreign_key="his_department.id")
    name: str = Field(max_length=64)
    introduction: str = Field(default="", max_length=1000)


class HisDoctor(SQLModel, table=True):
    __tablename__ = "his_doctor"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=32)
    title: str = Field(max_length=32)
    specialty: str = Field(max_length=255)
    introduction: str = Field(default="", max_length=2000)
    avatar_url: str = Field(default="", max_length=255)
    department_id: int = Field(foreign_key="his_department.id", index=True)
    internet_hospital_url: str | None = Field(default=None, max_length=255)


class HisSchedule(SQLModel, table=True):
    __tablename__ = "his_schedule"
    __table_args__ = (Index("ix_his_schedule_day_dept", "day", "department_id"),)
    id: int | None = Field(default=None, primary_key=True)
    doctor_id: int = Field(foreign_key="his_doctor.id", index=True)
    department_id: int = Field(foreign_key="his_department.id")
    campus_id: int = Field(foreign_key="his_campus.id")
    day: date
    period: str = Field(max_length=2)
    fee_fen: int
    average_consult_minutes: int = 10
    # The queue of this doctor-session: numbers are handed out at check-in.
    last_queue_number: int = 0
    called_number: int | None = None


class HisSlot(SQLModel, table=True):
    __tablename__ = "his_slot"
    id: int | None = Field(default=None, primary_key=True)
    schedule_id: int = Field(foreign_key="his_schedule.id", index=True)
    starts_at: datetime = Field(sa_column=_at())
    ends_at: datetime = Field(sa_column=_at())
    capacity: int
    booked: int = 0


class HisPatient(SQLModel, table=True):
    __tablename__ = "his_patient"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64)
    document_type: str = Field(max_length=24)
    document_number: str = Field(max_length=64, unique=True)
    gender: str | None = Field(default=None, max_length=8)
    birth_date: date | None = None
    phone: str | None = Field(default=None, max_length=32)
    nationality: str | None = Field(default=None, max_length=8)
    address: str | None = Field(default=None, max_length=255)
    created_at: datetime = Field(sa_column=_at())


class HisCard(SQLModel, table=True):
    __tablename__ = "his_card"
    card_no: str = Field(primary_key=True, max_length=32)
    patient_id: int = Field(foreign_key="his_patient.id", index=True)
    card_type: str = Field(max_length=16)
    created_at: datetime = Field(sa_column=_at())


class HisRegistration(SQLModel, table=True):
    """A lock is a registration in state LOCKED; ``active_key`` makes one active per patient-session."""

    __tablename__ = "his_registration"
    __table_args__ = (
        UniqueConstraint("active_key", name="uq_his_registration_active"),
        Index("ix_his_registration_patient_start", "patient_id", "starts_at"),
        Index("ix_his_registration_schedule_status", "schedule_id", "status"),
    )
    id: int | None = Field(default=None, primary_key=True)
    slot_id: int = Field(foreign_key="his_slot.id")
    schedule_id: int = Field(foreign_key="his_schedule.id")
    doctor_id: int
    department_id: int
    campus_id: int
    patient_id: int = Field(foreign_key="his_patient.id")
    card_no: str = Field(max_length=32)
    kind: str = Field(max_length=16)
    status: str = Field(max_length=16)
    payment_status: str = Field(max_length=16, default="UNPAID")
    fee_fen: int
    starts_at: datetime = Field(sa_column=_at())
    ends_at: datetime = Field(sa_column=_at())
    created_at: datetime = Field(sa_column=_at())
    lock_expires_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    hold_expires_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    queue_number: int | None = None
    checked_in_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    called_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    cancelled_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    active_key: str | None = Field(default=None, max_length=64)
