"""Public catalog: campuses, departments (tree), doctors, schedules and slots."""

from __future__ import annotations

import datetime as dt

import strawberry

from datasources.clock import local_date
from datasources.his import contract as c
from resolvers import catalog
from resolvers.errors import in_service
from schema.common import Connection, Ctx, Edge, Money, PageInfo
from schema.enums import CoordinateSystem, Period

INTERNET_HOSPITAL_CLOSED = "该医生未开通互联网医院"


@strawberry.type
class Campus:
    id: strawberry.ID
    name: str
    address: str
    latitude: float
    longitude: float
    coordinate_system: CoordinateSystem = strawberry.field(description="The system the coordinates are in.")

    @staticmethod
    def of(x: c.Campus) -> Campus:
        return Campus(
            id=strawberry.ID(x.id),
            name=x.name,
            address=x.address,
            latitude=x.latitude,
            longitude=x.longitude,
            coordinate_system=CoordinateSystem(x.coordinate_system),
        )


@strawberry.type
class Department:
    id: strawberry.ID
    name: str
    introduction: str
    campus_id: strawberry.ID
    children: list[Department] = strawberry.field(default_factory=list)

    @staticmethod
    def of(x: c.Department, children: list[Department] | None = None) -> Department:
        return Department(
            id=strawberry.ID(x.id),
            name=x.name,
            introduction=x.introduction,
            campus_id=strawberry.ID(x.campus_id),
            children=children or [],
        )

    @staticmethod
    def tree(nodes: list[catalog.DepartmentNode]) -> list[Department]:
        return [Department.of(n.department, Department.tree(list(n.children))) for n in nodes]

    @strawberry.field
    async def campus(self, info: Ctx) -> Campus | None:
        found = await info.context.loaders.campus_by_id.load(self.campus_id)
        return Campus.of(found) if found else None


@strawberry.type(description="Whether the doctor practises in the internet hospital, and where to go.")
class InternetHospitalLink:
    available: bool
    url: str | None
    notice: str | None = strawberry.field(description="Shown on the greyed-out button when unavailable.")


@strawberry.type
class Doctor:
    id: strawberry.ID
    name: str
    title: str
    specialty: str
    introduction: str
    avatar_url: str
    department_id: strawberry.ID
    internet_hospital: InternetHospitalLink

    @staticmethod
    def of(x: c.Doctor) -> Doctor:
        link = (
            InternetHospitalLink(available=True, url=x.internet_hospital_url, notice=None)
            if x.internet_hospital_url
            else InternetHospitalLink(available=False, url=None, notice=INTERNET_HOSPITAL_CLOSED)
        )
        return Doctor(
            id=strawberry.ID(x.id),
            name=x.name,
            title=x.title,
            specialty=x.specialty,
            introduction=x.introduction,
            avatar_url=x.avatar_url,
            department_id=strawberry.ID(x.department_id),
            internet_hospital=link,
        )

    @strawberry.field
    async def department(self, info: Ctx) -> Department | None:
        found = await info.context.loaders.department_by_id.load(self.department_id)
        return Department.of(found) if found else None

    @strawberry.field(description="The doctor's sessions from `dateFrom` (default today) to `dateTo`.")
    async def schedules(
        self, info: Ctx, date_from: dt.date | None = None, date_to: dt.date | None = None
    ) -> list[Schedule]:
        today = local_date(info.context.deps.clock.now())
        start = date_from or today
        found = await info.context.loaders.schedules_by_doctor.load((self.id, start, date_to or start))
        return [Schedule.of(s) for s in found]


@strawberry.type
class Slot:
    id: strawberry.ID
    starts_at: dt.datetime
    ends_at: dt.datetime
    capacity: int
    remaining: int

    @staticmethod
    def of(x: c.Slot) -> Slot:
        return Slot(
            id=strawberry.ID(x.id), starts_at=x.starts_at, ends_at=x.ends_at, capacity=x.capacity, remaining=x.remaining
        )


@strawberry.type(description="A doctor's half-day session (排班) with its slots (号源).")
class Schedule:
    id: strawberry.ID
    date: dt.date
    period: Period
    fee: Money
    average_consult_minutes: int
    doctor_id: strawberry.ID
    department_id: strawberry.ID
    campus_id: strawberry.ID
    slots: list[Slot]

    @staticmethod
    def of(x: c.Schedule) -> Schedule:
        return Schedule(
            id=strawberry.ID(x.id),
            date=x.day,
            period=Period(x.period),
            fee=Money.of(x.fee_fen),
            average_consult_minutes=x.average_consult_minutes,
            doctor_id=strawberry.ID(x.doctor_id),
            department_id=strawberry.ID(x.department_id),
            campus_id=strawberry.ID(x.campus_id),
            slots=[Slot.of(s) for s in x.slots],
        )

    @strawberry.field
    def remaining(self) -> int:
        return sum(s.remaining for s in self.slots)

    @strawberry.field
    async def doctor(self, info: Ctx) -> Doctor | None:
        found = await info.context.loaders.doctor_by_id.load(self.doctor_id)
        return Doctor.of(found) if found else None

    @strawberry.field
    async def department(self, info: Ctx) -> Department | None:
        found = await info.context.loaders.department_by_id.load(self.department_id)
        return Department.of(found) if found else None

    @strawberry.field
    async def campus(self, info: Ctx) -> Campus | None:
        found = await info.context.loaders.campus_by_id.load(self.campus_id)
        return Campus.of(found) if found else None


@strawberry.type
class CatalogQuery:
    @strawberry.field
    async def campuses(self, info: Ctx) -> list[Campus]:
        return [Campus.of(x) for x in await in_service(info.context.deps.sources.his.campuses())]

    @strawberry.field(description="The department tree, of one campus or of all.")
    async def departments(self, info: Ctx, campus_id: strawberry.ID | None = None) -> list[Department]:
        found = await in_service(info.context.deps.sources.his.departments(campus_id))
        return Department.tree(catalog.department_tree(found))

    @strawberry.field
    async def doctors(
        self,
        info: Ctx,
        department_id: strawberry.ID | None = None,
        campus_id: strawberry.ID | None = None,
        first: int = 20,
        after: str | None = None,
    ) -> Connection[Doctor]:
        first = max(1, min(first, 100))
        found = await in_service(
            info.context.deps.sources.his.doctors(
                department_id=department_id, campus_id=campus_id, after=after, first=first + 1
            )
        )
        edges = [Edge(cursor=d.id, node=Doctor.of(d)) for d in found[:first]]
        return Connection(
            edges=edges,
            page_info=PageInfo(has_next_page=len(found) > first, end_cursor=edges[-1].cursor if edges else None),
        )

    @strawberry.field
    async def doctor(self, info: Ctx, id: strawberry.ID) -> Doctor | None:
        found = await info.context.loaders.doctor_by_id.load(id)
        return Doctor.of(found) if found else None

    @strawberry.field(description="Sessions and slots by date range (default: one day), department, doctor, campus.")
    async def schedules(
        self,
        info: Ctx,
        date_from: dt.date,
        date_to: dt.date | None = None,
        department_id: strawberry.ID | None = None,
        doctor_id: strawberry.ID | None = None,
        campus_id: strawberry.ID | None = None,
    ) -> list[Schedule]:
        today = local_date(info.context.deps.clock.now())
        found = await catalog.schedules(
            info.context.deps.sources.his,
            date_from=date_from,
            date_to=date_to,
            today=today,
            department_id=department_id,
            doctor_ids=[doctor_id] if doctor_id else None,
            campus_id=campus_id,
        )
        return [Schedule.of(s) for s in found]

    @strawberry.field(description="当日挂号: the current half-day's sessions whose slots still take numbers.")
    async def same_day_schedules(
        self, info: Ctx, department_id: strawberry.ID | None = None, campus_id: strawberry.ID | None = None
    ) -> list[Schedule]:
        deps = info.context.deps
        found = await catalog.current_session_schedules(
            deps.sources.his,
            now=deps.clock.now(),
            department_id=department_id,
            campus_id=campus_id,
            cutoff=deps.rules.take_number_cutoff,
        )
        return [Schedule.of(s) for s in found]
