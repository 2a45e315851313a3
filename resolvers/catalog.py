"""Campuses, departments, doctors and schedules: public reads straight from HIS."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from datasources.clock import SHANGHAI, local_date
from datasources.his import contract as c
from datasources.his.contract import HIS
from resolvers.errors import InvalidInput, in_service

MAX_SCHEDULE_DAYS = 31


@dataclass(frozen=True, slots=True)
class DepartmentNode:
    department: c.Department
    children: tuple[DepartmentNode, ...]


def current_period(now: datetime) -> str:
    """The half-day the hospital is in: AM before noon (Asia/Shanghai), PM after."""
    return "AM" if now.astimezone(SHANGHAI).hour < 12 else "PM"


def department_tree(departments: Sequence[c.Department]) -> list[DepartmentNode]:
    children: dict[str | None, list[c.Department]] = {}
    known = {d.id for d in departments}
    for d in departments:
        parent = d.parent_id if d.parent_id in known else None
        children.setdefault(parent, []).append(d)

    def build(d: c.Department) -> DepartmentNode:
        return DepartmentNode(d, tuple(build(child) for child in children.get(d.id, [])))

    return [build(d) for d in children.get(None, [])]


async def schedules(
    his: HIS,
    *,
    date_from: date,
    date_to: date | None,
    today: date,
    department_id: str | None,
    doctor_ids: list[str] | None,
    campus_id: str | None,
) -> list[c.Schedule]:
    date_to = date_to or date_from
    if date_to < date_from:
        raise InvalidInput("dateTo", "dateTo must not be before dateFrom.")
    if (date_to - date_from).days >= MAX_SCHEDULE_DAYS:
        raise InvalidInput("dateTo", f"Ask for at most {MAX_SCHEDULE_DAYS} days at a time.")
    if date_to < today:
        return []
    result: list[c.Schedule] = await in_service(
        his.schedules(
            date_from=max(date_from, today),
            date_to=date_to,
            department_id=department_id,
            doctor_ids=doctor_ids,
            campus_id=campus_id,
        )
    )
    return result


async def current_session_schedules(
    his: HIS, *, now: datetime, department_id: str | None, campus_id: str | None, cutoff: timedelta
) -> list[c.Schedule]:
    """当日挂号: only the current half-day's sessions, only slots whose number can still be taken."""
    today = local_date(now)
    period = current_period(now)
    found: list[c.Schedule] = await in_service(
        his.schedules(date_from=today, date_to=today, department_id=department_id, campus_id=campus_id)
    )
    result = []
    for schedule in found:
        if schedule.period != period:
            continue
        open_slots = tuple(s for s in schedule.slots if s.ends_at - cutoff > now)
        if open_slots:
            result.append(
                c.Schedule(
                    id=schedule.id,
                    doctor_id=schedule.doctor_id,
                    department_id=schedule.department_id,
                    campus_id=schedule.campus_id,
                    day=schedule.day,
                    period=schedule.period,
                    fee_fen=schedule.fee_fen,
                    average_consult_minutes=schedule.average_consult_minutes,
                    slots=open_slots,
                )
            )
    return result
