"""The HIS contract, as one suite run against every implementation: the sandbox in-process, and
``HttpHIS`` over real HTTP (uvicorn on loopback) to the sandbox served in the gateway's wire format.

Both must give the same answers, field for field, and refuse with the same codes. At the end:
what only the HTTP client has (timeouts, retries of reads only, the circuit breaker) and what the
served app answers to malformed requests.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from datasources.clock import SHANGHAI, FixedClock, local_date, local_datetime
from datasources.errors import SourceRejected, SourceUnavailable
from datasources.his import contract as c
from datasources.his import wire
from datasources.his.http import HttpHIS
from datasources.his.sandbox import SandboxHIS
from datasources.his.served import his_sandbox_app
from datasources.store.db import Database
from tests.conftest import LiveServer
from tests.factories import CAMPUS_LAT, CAMPUS_LNG, Hospital, resident_id

IMPLEMENTATIONS = ["sandbox_in_process", "http_to_served_sandbox"]


@dataclass
class Stage:
    """The implementation under test, the sandbox whose state it shows, and the hospital set up in it."""

    his: c.HIS
    sandbox: SandboxHIS
    hospital: Hospital
    clock: FixedClock

    @property
    def tomorrow(self) -> date:
        return local_date(self.clock.now()) + timedelta(days=1)

    async def patient(self, name: str = "李四") -> c.MedicalCard:
        record = c.PatientRecordInput(
            name=name, document_type="RESIDENT_ID", document_number=resident_id(), gender="MALE",
            birth_date=date(1980, 1, 1), phone="13800138000", nationality="CHN", address="广州市越秀区",
        )
        return await self.his.create_record(record)

    async def book(
        self, slot_id: str, card: c.MedicalCard, *, payment: str = "PAID", hold: datetime | None = None
    ) -> c.Registration:
        lock = await self.his.lock_slot(
            slot_id=slot_id, his_patient_id=card.his_patient_id, card_no=card.card_no, kind="APPOINTMENT",
            lock_seconds=300,
        )
        return await self.his.confirm_registration(lock_id=lock.id, payment_status=payment, hold_expires_at=hold)


async def serve(app: Starlette) -> LiveServer:
    return await LiveServer(app).start()


@pytest.fixture(params=IMPLEMENTATIONS)
async def stage(request: pytest.FixtureRequest, db: Database, clock: FixedClock) -> AsyncIterator[Stage]:
    sandbox = SandboxHIS(db, clock)
    hospital = await Hospital(db, clock).build()
    if request.param == "sandbox_in_process":
        yield Stage(sandbox, sandbox, hospital, clock)
        return
    live = await serve(his_sandbox_app(lambda: sandbox))
    client = HttpHIS(live.url, timeout=5)
    try:
        yield Stage(client, sandbox, hospital, clock)
    finally:
        await client.aclose()
        await live.stop()


async def rejected(call: Awaitable[Any]) -> str:
    with pytest.raises(SourceRejected) as caught:
        await call
    return caught.value.code


# Catalog --------------------------------------------------------------------------------------------
async def test_campuses_and_departments_read_back_exactly_as_published(stage: Stage) -> None:
    admin, h = stage.hospital.admin, stage.hospital
    other = await admin.add_campus("白云院区", "白云大道 8 号", 23.2, 113.3, "WGS84")
    ward = await admin.add_department(other, "心内一病区", parent_id=None, introduction="心内科住院部")
    child = await admin.add_department(other, "高血压门诊", parent_id=ward)

    assert await stage.his.campuses() == [
        c.Campus(h.campus_id, "桃源院区", "桃源路 1 号", CAMPUS_LAT, CAMPUS_LNG, "GCJ02"),
        c.Campus(other, "白云院区", "白云大道 8 号", 23.2, 113.3, "WGS84"),
    ]
    assert await stage.his.departments(other) == [
        c.Department(ward, other, None, "心内一病区", "心内科住院部"),
        c.Department(child, other, ward, "高血压门诊", ""),
    ]
    assert [d.id for d in await stage.his.departments()] == [h.department_id, ward, child]
    found = await stage.his.departments_by_ids([child, "999", "not-an-id"])
    assert [(d.id, d.parent_id) for d in found] == [(child, ward)]


async def test_doctors_page_with_after_and_filter_by_department_and_campus(stage: Stage) -> None:
    admin, h = stage.hospital.admin, stage.hospital
    more = [await admin.add_doctor(h.department_id, f"医生{i}", "主治医师", "冠心病") for i in range(4)]
    online = await admin.add_doctor(
        h.department_id, "陈在线", "副主任医师", "心衰", introduction="擅长心衰", avatar_url="https://img/1.png",
        internet_hospital_url="https://ih.example/doctors/7",
    )
    other = await admin.add_campus("白云院区", "白云大道 8 号", 23.2, 113.3, "WGS84")
    elsewhere = await admin.add_doctor(await admin.add_department(other, "儿科"), "赵儿", "主任医师", "儿童哮喘")
    same_department = [h.doctor_id, *more, online]

    pages: list[list[str]] = []
    after: str | None = None
    while True:
        page = await stage.his.doctors(department_id=h.department_id, campus_id=None, after=after, first=2)
        if not page:
            break
        pages.append([d.id for d in page])
        after = page[-1].id
    assert pages == [same_department[0:2], same_department[2:4], same_department[4:6]]

    at_other_campus = await stage.his.doctors(department_id=None, campus_id=other, after=None, first=10)
    assert [d.id for d in at_other_campus] == [elsewhere]
    assert await stage.his.doctors_by_ids([online, "12345"]) == [
        c.Doctor(online, "陈在线", "副主任医师", "心衰", "擅长心衰", "https://img/1.png", h.department_id,
                 "https://ih.example/doctors/7"),
    ]
    (first,) = await stage.his.doctors_by_ids([h.doctor_id])
    assert first.internet_hospital_url is None


async def test_schedules_filter_by_dates_department_doctors_and_campus(stage: Stage) -> None:
    h, today, tomorrow = stage.hospital, local_date(stage.clock.now()), stage.tomorrow
    second = await h.admin.add_doctor(h.department_id, "刘二", "主治医师", "心律失常")
    other = await h.admin.add_campus("白云院区", "白云大道 8 号", 23.2, 113.3, "WGS84")
    far_doctor = await h.admin.add_doctor(await h.admin.add_department(other, "儿科"), "赵儿", "主任医师", "哮喘")
    today_am, today_slots = await h.session(day=today, starts=[(9, 30), (8, 0)], capacity=4, fee_fen=5000)
    tomorrow_pm, _ = await h.session(day=tomorrow, period="PM", doctor_id=second)
    far, _ = await h.session(day=tomorrow, doctor_id=far_doctor)
    await h.session(day=today + timedelta(days=7))

    async def ids(
        department_id: str | None = None, doctor_ids: list[str] | None = None, campus_id: str | None = None
    ) -> list[str]:
        found = await stage.his.schedules(
            date_from=today, date_to=tomorrow, department_id=department_id, doctor_ids=doctor_ids, campus_id=campus_id
        )
        return [s.id for s in found]

    assert await ids() == [today_am, far, tomorrow_pm]
    assert await ids(department_id=h.department_id) == [today_am, tomorrow_pm]
    assert await ids(doctor_ids=[second, far_doctor]) == [far, tomorrow_pm]
    assert await ids(campus_id=other) == [far]
    assert await stage.his.schedules(date_from=tomorrow, date_to=tomorrow, doctor_ids=[]) == []

    (schedule,) = await stage.his.schedules_by_ids([today_am, "777"])
    eight = local_datetime(today, 8, 0)
    half_past_nine = local_datetime(today, 9, 30)
    assert schedule == c.Schedule(
        id=today_am, doctor_id=h.doctor_id, department_id=h.department_id, campus_id=h.campus_id, day=today,
        period="AM", fee_fen=5000, average_consult_minutes=10,
        slots=(
            c.Slot(today_slots[1], today_am, eight, eight + timedelta(minutes=30), 4, 0),
            c.Slot(today_slots[0], today_am, half_past_nine, half_past_nine + timedelta(minutes=30), 4, 0),
        ),
    )
    assert await stage.his.slots_by_ids([today_slots[1], "0"]) == [schedule.slots[0]]
    assert schedule.slots[0].starts_at.astimezone(SHANGHAI).hour == 8


# Patient records ------------------------------------------------------------------------------------
async def test_a_record_is_found_by_name_and_document_and_cannot_be_created_twice(stage: Stage) -> None:
    number = resident_id()[:17] + "x"  # an ID number ending in a lower-case x is the same as with X
    record = c.PatientRecordInput("王五", "RESIDENT_ID", number, None, None, None, None, None)
    card = await stage.his.create_record(record)
    assert (card.card_type, card.name, card.created_at) == ("MEDICAL_CARD", "王五", stage.clock.now())

    assert await stage.his.find_cards(name="王五", document_number=number.upper()) == [card]
    assert await stage.his.find_cards(name="王六", document_number=number) == []
    assert await rejected(stage.his.create_record(record)) == c.RECORD_EXISTS


# Registration: lock → confirm → unlock ------------------------------------------------------------
async def test_lock_and_confirm_book_places_until_the_slot_is_full(stage: Stage) -> None:
    _, (slot_id, *_) = await stage.hospital.session(day=stage.tomorrow, capacity=2, fee_fen=6000)
    first, second, third = [await stage.patient(n) for n in ("甲", "乙", "丙")]

    lock = await stage.his.lock_slot(
        slot_id=slot_id, his_patient_id=first.his_patient_id, card_no=first.card_no, kind="APPOINTMENT",
        lock_seconds=120,
    )
    assert lock == c.SlotLock(lock.id, slot_id, stage.clock.now() + timedelta(seconds=120))
    hold = stage.clock.now() + timedelta(minutes=15)
    booked = await stage.his.confirm_registration(lock_id=lock.id, payment_status="UNPAID", hold_expires_at=hold)
    assert (booked.status, booked.kind, booked.payment_status, booked.hold_expires_at) == (
        "BOOKED", "APPOINTMENT", "UNPAID", hold,
    )
    assert (booked.his_patient_id, booked.card_no, booked.fee_fen, booked.slot_id) == (
        first.his_patient_id, first.card_no, 6000, slot_id,
    )
    assert (booked.queue_number, booked.checked_in_at, booked.cancelled_at) == (None, None, None)
    assert await stage.his.registrations_by_ids([booked.id]) == [booked]

    await stage.book(slot_id, second)
    assert await rejected(stage.book(slot_id, third)) == c.SLOT_FULL
    (slot,) = await stage.his.slots_by_ids([slot_id])
    assert (slot.booked, slot.remaining) == (2, 0)
    assert await rejected(stage.book("424242", third)) == c.SLOT_NOT_FOUND


async def test_a_patient_cannot_hold_two_places_in_one_session(stage: Stage) -> None:
    _, (morning_slot, later_slot, *_) = await stage.hospital.session(day=stage.tomorrow)
    _, (afternoon_slot, *_) = await stage.hospital.session(day=stage.tomorrow, period="PM")
    patient = await stage.patient()
    await stage.book(morning_slot, patient)

    assert await rejected(stage.book(later_slot, patient)) == c.ALREADY_REGISTERED
    assert (await stage.book(afternoon_slot, patient)).status == "BOOKED"
    (slot,) = await stage.his.slots_by_ids([later_slot])
    assert slot.booked == 0


async def test_confirming_an_unknown_used_or_expired_lock_is_refused(stage: Stage) -> None:
    _, (slot_id, other_slot, *_) = await stage.hospital.session(day=stage.tomorrow)
    patient, late = await stage.patient("甲"), await stage.patient("乙")
    assert await rejected(
        stage.his.confirm_registration(lock_id="987654", payment_status="PAID", hold_expires_at=None)
    ) == c.LOCK_NOT_FOUND

    lock = await stage.his.lock_slot(
        slot_id=slot_id, his_patient_id=patient.his_patient_id, card_no=patient.card_no, kind="APPOINTMENT",
        lock_seconds=300,
    )
    await stage.his.confirm_registration(lock_id=lock.id, payment_status="PAID", hold_expires_at=None)
    again = stage.his.confirm_registration(lock_id=lock.id, payment_status="PAID", hold_expires_at=None)
    assert await rejected(again) == c.LOCK_NOT_FOUND

    slow = await stage.his.lock_slot(
        slot_id=other_slot, his_patient_id=late.his_patient_id, card_no=late.card_no, kind="APPOINTMENT",
        lock_seconds=60,
    )
    stage.clock.advance(seconds=61)
    expired = stage.his.confirm_registration(lock_id=slow.id, payment_status="PAID", hold_expires_at=None)
    assert await rejected(expired) == c.LOCK_NOT_FOUND


async def test_unlocking_gives_the_place_back(stage: Stage) -> None:
    _, (slot_id, *_) = await stage.hospital.session(day=stage.tomorrow, capacity=1)
    first, second = await stage.patient("甲"), await stage.patient("乙")
    lock = await stage.his.lock_slot(
        slot_id=slot_id, his_patient_id=first.his_patient_id, card_no=first.card_no, kind="APPOINTMENT",
        lock_seconds=300,
    )
    assert await rejected(stage.book(slot_id, second)) == c.SLOT_FULL

    await stage.his.unlock_slot(lock.id)
    await stage.his.unlock_slot(lock.id)  # unlocking twice, or an unknown lock, changes nothing
    await stage.his.unlock_slot("555555")
    assert (await stage.book(slot_id, second)).status == "BOOKED"
    assert [s.booked for s in await stage.his.slots_by_ids([slot_id])] == [1]


async def test_check_in_hands_out_increasing_queue_numbers(stage: Stage) -> None:
    _, (slot_id, *_) = await stage.hospital.session(day=stage.tomorrow, capacity=3)
    registrations = [await stage.book(slot_id, await stage.patient(n)) for n in ("甲", "乙", "丙")]

    checked = [await stage.his.check_in(r.id) for r in reversed(registrations)]
    assert [(r.status, r.queue_number, r.checked_in_at) for r in checked] == [
        ("CHECKED_IN", 1, stage.clock.now()), ("CHECKED_IN", 2, stage.clock.now()), ("CHECKED_IN", 3, stage.clock.now()),
    ]
    assert await rejected(stage.his.check_in(registrations[0].id)) == c.INVALID_STATE
    assert await rejected(stage.his.check_in("31337")) == c.REGISTRATION_NOT_FOUND


async def test_cancelling_releases_the_place_once(stage: Stage) -> None:
    _, (slot_id, *_) = await stage.hospital.session(day=stage.tomorrow, capacity=1)
    registration = await stage.book(slot_id, await stage.patient("甲"))
    stage.clock.advance(minutes=5)

    cancelled = await stage.his.cancel_registration(registration.id)
    assert (cancelled.id, cancelled.status, cancelled.cancelled_at) == (registration.id, "CANCELLED", stage.clock.now())
    assert [s.booked for s in await stage.his.slots_by_ids([slot_id])] == [0]
    assert await rejected(stage.his.cancel_registration(registration.id)) == c.INVALID_STATE
    assert await rejected(stage.his.cancel_registration("31337")) == c.REGISTRATION_NOT_FOUND
    assert (await stage.book(slot_id, await stage.patient("乙"))).status == "BOOKED"


async def test_unpaid_holds_are_released_once_they_expire(stage: Stage) -> None:
    _, (slot_id, *_) = await stage.hospital.session(day=stage.tomorrow, capacity=3)
    now = stage.clock.now()
    unpaid = await stage.book(slot_id, await stage.patient("甲"), payment="UNPAID", hold=now + timedelta(minutes=15))
    await stage.book(slot_id, await stage.patient("乙"), payment="PAY_LATER")
    await stage.book(slot_id, await stage.patient("丙"), payment="PAID")

    stage.clock.advance(minutes=14)
    assert await stage.his.release_expired() == []
    stage.clock.advance(minutes=2)
    (released,) = await stage.his.release_expired()
    assert (released.id, released.status, released.cancelled_at) == (unpaid.id, "EXPIRED", stage.clock.now())
    assert await stage.his.release_expired() == []
    assert [s.booked for s in await stage.his.slots_by_ids([slot_id])] == [2]
    assert [r.status for r in await stage.his.registrations_by_ids([unpaid.id])] == ["EXPIRED"]


async def test_registrations_of_patients_filter_and_page_with_cursors(stage: Stage) -> None:
    patient, stranger = await stage.patient("甲"), await stage.patient("乙")
    days = [stage.tomorrow + timedelta(days=i) for i in range(5)]
    mine = []
    for day in days:
        _, (slot_id, *_) = await stage.hospital.session(day=day)
        mine.append(await stage.book(slot_id, patient))
        await stage.book(slot_id, stranger)
    cancelled = await stage.his.cancel_registration(mine[1].id)
    everything = c.RegistrationFilter()

    seen: list[str] = []
    after: str | None = None
    more = True
    while more:
        page = await stage.his.registrations_of_patients([patient.his_patient_id], everything, after=after, first=2)
        assert len(page.items) == len(page.cursors) <= 2
        seen += [r.id for r in page.items]
        after, more = page.cursors[-1], page.has_more
    assert seen == [r.id for r in reversed(mine)]  # newest first

    only_cancelled = c.RegistrationFilter(statuses=("CANCELLED",))
    page = await stage.his.registrations_of_patients([patient.his_patient_id], only_cancelled, after=None, first=10)
    assert (page.items, page.has_more) == ([cancelled], False)

    window = c.RegistrationFilter(statuses=("BOOKED",), date_from=days[1], date_to=days[3])
    page = await stage.his.registrations_of_patients([patient.his_patient_id], window, after=None, first=10)
    assert [r.id for r in page.items] == [mine[3].id, mine[2].id]

    upcoming = c.RegistrationFilter(upcoming_from=local_datetime(days[3], 0))  # soonest first
    page = await stage.his.registrations_of_patients([patient.his_patient_id], upcoming, after=None, first=1)
    assert ([r.id for r in page.items], page.has_more) == ([mine[3].id], True)
    page = await stage.his.registrations_of_patients(
        [patient.his_patient_id], upcoming, after=page.cursors[0], first=1
    )
    assert ([r.id for r in page.items], page.has_more) == ([mine[4].id], False)

    both = await stage.his.registrations_of_patients(
        [patient.his_patient_id, stranger.his_patient_id], everything, after=None, first=100
    )
    assert len(both.items) == 10
    bad_cursor = stage.his.registrations_of_patients([patient.his_patient_id], everything, after="nonsense", first=2)
    assert await rejected(bad_cursor) == "INVALID_CURSOR"


# Queue ----------------------------------------------------------------------------------------------
async def test_call_next_moves_the_queue_until_it_is_empty(stage: Stage) -> None:
    schedule_id, (slot_id, *_) = await stage.hospital.session(day=stage.tomorrow, capacity=3)
    registrations = [await stage.book(slot_id, await stage.patient(n)) for n in ("甲", "乙", "丙")]
    assert await stage.his.queue_snapshots([schedule_id, "8888"]) == [c.QueueSnapshot(schedule_id, None, (), 10)]
    for r in registrations:
        await stage.his.check_in(r.id)
    assert await stage.his.queue_snapshots([schedule_id]) == [c.QueueSnapshot(schedule_id, None, (1, 2, 3), 10)]

    snapshot, called = await stage.his.call_next(schedule_id)
    assert snapshot == c.QueueSnapshot(schedule_id, 1, (2, 3), 10)
    assert (called.id, called.status, called.queue_number) == (registrations[0].id, "CALLED", 1)
    snapshot, called = await stage.his.call_next(schedule_id)
    assert (snapshot.called_number, snapshot.waiting, called.id) == (2, (3,), registrations[1].id)
    assert [r.status for r in await stage.his.registrations_by_ids([registrations[0].id])] == ["COMPLETED"]
    await stage.his.call_next(schedule_id)

    assert await rejected(stage.his.call_next(schedule_id)) == c.QUEUE_EMPTY
    assert await stage.his.queue_snapshots([schedule_id]) == [c.QueueSnapshot(schedule_id, 3, (), 10)]


async def test_the_doctor_sees_who_is_called_and_who_waits_in_order(stage: Stage) -> None:
    schedule_id, (slot_id, *_) = await stage.hospital.session(day=stage.tomorrow, capacity=3)
    registrations = [await stage.book(slot_id, await stage.patient(n)) for n in ("甲", "乙", "丙")]
    for r in registrations[:2]:
        await stage.his.check_in(r.id)
    await stage.his.call_next(schedule_id)
    entries = await stage.his.queue_entries(schedule_id)
    assert [(e.registration_id, e.queue_number, e.status, e.patient_name) for e in entries] == [
        (registrations[0].id, 1, "CALLED", "甲"),
        (registrations[1].id, 2, "CHECKED_IN", "乙"),
    ]
    assert all(e.checked_in_at is not None for e in entries)
    assert await stage.his.queue_entries("8888") == []


# The wire format ------------------------------------------------------------------------------------
def test_writes_are_exactly_the_calls_that_are_never_repeated() -> None:
    writes = {name for name, method in wire.METHODS.items() if not method.idempotent}
    assert writes == {
        "lock_slot", "confirm_registration", "unlock_slot", "check_in", "cancel_registration",
        "release_expired", "call_next", "create_record",
    }
    assert wire.IDEMPOTENT <= set(wire.METHODS)


def test_values_cross_the_wire_unchanged_with_their_offsets() -> None:
    at = datetime(2026, 11, 23, 9, 10, tzinfo=SHANGHAI)
    registration = c.Registration(
        "1", "2", "3", "4", "5", "6", "7", "9000", "SAME_DAY", "CHECKED_IN", "PAY_LATER", 5000, at,
        at + timedelta(minutes=30), at, None, 12, at, None,
    )
    page = c.RegistrationPage([registration], ["cursor"], True)
    encoded = json.loads(json.dumps(wire.encode(page, c.RegistrationPage)))
    assert encoded["items"][0]["starts_at"] == "2026-11-23T09:10:00+08:00"
    assert encoded["items"][0]["hold_expires_at"] is None
    assert wire.decode(encoded, c.RegistrationPage) == page

    queue = (c.QueueSnapshot("3", 1, (2, 3), 8), registration)
    returns = wire.METHODS["call_next"].returns
    assert wire.decode(json.loads(json.dumps(wire.encode(queue, returns))), returns) == queue
    flt = c.RegistrationFilter(("BOOKED",), date(2026, 11, 1), None, at)
    method = wire.METHODS["registrations_of_patients"]
    arguments = {"his_patient_ids": ["7"], "flt": flt, "after": None, "first": 20}
    body = json.loads(json.dumps(wire.encode_arguments(method, arguments)))
    assert body["flt"] == {
        "statuses": ["BOOKED"], "date_from": "2026-11-01", "date_to": None, "upcoming_from": at.isoformat(),
    }
    assert wire.decode_arguments(method, body) == arguments


async def test_malformed_requests_get_a_400_that_names_the_problem(db: Database, clock: FixedClock) -> None:
    live = await serve(his_sandbox_app(lambda: SandboxHIS(db, clock)))
    try:
        async with httpx.AsyncClient(base_url=live.url + "/his/v1/") as http:
            async def answer(method: str, content: str) -> tuple[int, dict[str, Any]]:
                response = await http.post(method, content=content)
                return response.status_code, response.json()

            doctors = {"department_id": None, "campus_id": None, "after": None, "first": 10}
            assert await answer("campuses", "{not json") == (
                400, {"code": "BAD_REQUEST", "message": "the body is not valid JSON"},
            )
            assert (await answer("campuses", "[]"))[1]["message"] == "$: expected a JSON object of arguments, got list"
            assert (await answer("doctors", json.dumps({**doctors, "first": "10"})))[1]["message"] == (
                "$.first: expected an integer, got str"
            )
            missing = {k: v for k, v in doctors.items() if k != "first"}
            assert (await answer("doctors", json.dumps(missing)))[1]["message"] == "$: missing field first"
            assert (await answer("doctors", json.dumps({**doctors, "page": 2})))[1]["message"] == (
                "$: unknown field(s) page"
            )
            naive = {"lock_id": "1", "payment_status": "UNPAID", "hold_expires_at": "2026-11-23T09:25:00"}
            status, body = await answer("confirm_registration", json.dumps(naive))
            assert (status, body["code"]) == (400, "BAD_REQUEST")
            assert "$.hold_expires_at" in body["message"] and "UTC offset" in body["message"]
            status, body = await answer("schedules", json.dumps({"date_from": "23/11/2026", "date_to": "2026-11-23"}))
            assert (status, body["message"]) == (400, "$.date_from: expected an ISO date (YYYY-MM-DD), got '23/11/2026'")
            assert await answer("drop_tables", "{}") == (
                404, {"code": "UNKNOWN_METHOD", "message": "no HIS method 'drop_tables'"},
            )
            assert await answer("campuses", "{}") == (200, {"code": "0", "data": []})
    finally:
        await live.stop()


# What only the HTTP client has ----------------------------------------------------------------------
def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


class Counting:
    """An ASGI endpoint that counts requests per HIS method: ``answer(method, attempt)`` replies, or,
    when it returns None, the wrapped app does."""

    def __init__(self, answer: Callable[[str, int], Awaitable[Response | None]], inner: ASGIApp | None = None) -> None:
        self.answer = answer
        self.inner = inner
        self.attempts: Counter[str] = Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["path_params"]["method"]
        self.attempts[method] += 1
        response = await self.answer(method, self.attempts[method])
        if response is not None:
            await response(scope, receive, send)
        else:
            assert self.inner is not None
            await self.inner(scope, receive, send)

    async def serve(self) -> LiveServer:
        return await serve(Starlette(routes=[Route(wire.PREFIX + "{method}", self, methods=["POST"])]))


async def test_a_his_that_is_down_is_unavailable_at_once() -> None:
    his = HttpHIS(f"http://127.0.0.1:{unused_port()}", timeout=2, retries=2, backoff_seconds=0.01)
    started = time.monotonic()
    try:
        with pytest.raises(SourceUnavailable, match="transport error"):
            await his.campuses()
        with pytest.raises(SourceUnavailable):
            await his.lock_slot(slot_id="1", his_patient_id="1", card_no="1", kind="APPOINTMENT", lock_seconds=60)
    finally:
        await his.aclose()
    assert time.monotonic() - started < 1.0


async def test_a_slow_his_times_out_as_unavailable() -> None:
    release = asyncio.Event()

    async def slow(method: str, attempt: int) -> Response:
        await release.wait()
        return JSONResponse({"code": "0", "data": []})

    counting = Counting(slow)
    attempts = counting.attempts
    live = await counting.serve()
    his = HttpHIS(live.url, timeout=0.2, retries=1, backoff_seconds=0.01)
    started = time.monotonic()
    try:
        with pytest.raises(SourceUnavailable, match="timed out"):
            await his.campuses()
        assert 0.4 <= time.monotonic() - started < 1.5
        assert attempts == {"campuses": 2}
    finally:
        release.set()
        await his.aclose()
        await live.stop()


async def test_reads_are_retried_and_writes_are_not(db: Database, clock: FixedClock) -> None:
    sandbox = SandboxHIS(db, clock)
    hospital = await Hospital(db, clock).build()

    async def first_attempt_fails(method: str, attempt: int) -> Response | None:
        return JSONResponse({"code": "UNAVAILABLE", "message": "restarting"}, 503) if attempt == 1 else None

    counting = Counting(first_attempt_fails, his_sandbox_app(lambda: sandbox))
    attempts = counting.attempts
    live = await counting.serve()
    his = HttpHIS(live.url, timeout=5, retries=2, backoff_seconds=0.01)
    try:
        assert [k.id for k in await his.campuses()] == [hospital.campus_id]
        assert await his.find_cards(name="王五", document_number="X") == []
        record = c.PatientRecordInput("王五", "RESIDENT_ID", resident_id(), None, None, None, None, None)
        with pytest.raises(SourceUnavailable, match="HTTP 503"):
            await his.create_record(record)
        with pytest.raises(SourceUnavailable):
            await his.call_next("1")
        assert attempts == {"campuses": 2, "find_cards": 2, "create_record": 1, "call_next": 1}
        assert await sandbox.find_cards(name="王五", document_number=record.document_number) == []

        card = await his.create_record(record)  # the caller decides to try again, and it happens once
        assert await his.find_cards(name="王五", document_number=record.document_number) == [card]
    finally:
        await his.aclose()
        await live.stop()


async def test_the_circuit_opens_after_repeated_failures_and_half_opens_after_a_cool_down() -> None:
    healthy = False

    async def flaky(method: str, attempt: int) -> Response:
        if healthy:
            return JSONResponse({"code": "0", "data": []})
        return JSONResponse({"code": "UNAVAILABLE", "message": "down"}, 500)

    counting = Counting(flaky)
    attempts = counting.attempts
    live = await counting.serve()
    his = HttpHIS(live.url, timeout=2, retries=0, failure_threshold=3, cooldown_seconds=0.3)
    try:
        for _ in range(3):
            with pytest.raises(SourceUnavailable, match="HTTP 500"):
                await his.campuses()
        started = time.monotonic()
        with pytest.raises(SourceUnavailable, match="circuit open"):
            await his.campuses()
        assert time.monotonic() - started < 0.05
        assert attempts == {"campuses": 3}

        await asyncio.sleep(0.35)  # half-open: one trial goes out, fails, and the circuit opens again
        with pytest.raises(SourceUnavailable, match="HTTP 500"):
            await his.campuses()
        with pytest.raises(SourceUnavailable, match="circuit open"):
            await his.campuses()
        assert attempts == {"campuses": 4}

        healthy = True
        await asyncio.sleep(0.35)
        assert await his.campuses() == []
        assert await his.campuses() == []
        assert (attempts, his.breaker.state) == ({"campuses": 6}, "closed")
    finally:
        await his.aclose()
        await live.stop()


async def test_rejections_keep_their_code_and_a_wrong_address_is_unavailable_not_an_httpx_error(
    db: Database, clock: FixedClock
) -> None:
    live = await serve(his_sandbox_app(lambda: SandboxHIS(db, clock)))
    his = HttpHIS(live.url, timeout=2)
    lost = HttpHIS(live.url + "/elsewhere", timeout=2, retries=0)
    try:
        assert await rejected(his.check_in("404")) == c.REGISTRATION_NOT_FOUND
        with pytest.raises(SourceUnavailable, match="HTTP 404 without a HIS envelope"):
            await lost.campuses()
    finally:
        await his.aclose()
        await lost.aclose()
        await live.stop()
