"""No double booking: concurrent requests over real HTTP connections never oversell a slot, and one
patient never holds two places in one doctor's session (on SQLite and on PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from typing import Any

import httpx

from datasources.clock import local_date
from tests.conftest import LiveServer
from tests.factories import Hospital, PatientHandle

BOOK = """
mutation Book($patientId: ID!, $slotId: ID!) {
  bookAppointment(input: {patientId: $patientId, slotId: $slotId}) {
    __typename
    ... on AppointmentBooked { registration { id status } }
    ... on UserError { message code }
  }
}"""

SLOTS = """
query Slots($day: Date!, $doctorId: ID!) {
  schedules(dateFrom: $day, doctorId: $doctorId) { id slots { id capacity remaining } }
}"""

MY_REGISTRATIONS = "{ me { registrations(first: 100) { edges { node { id status scheduleId } } } } }"


async def _book_concurrently(url: str, bookings: list[tuple[PatientHandle, str]]) -> list[httpx.Response]:
    """Every booking its own POST, all in flight at once through one pool of ~len(bookings) connections."""
    limits = httpx.Limits(max_connections=len(bookings) + 5, max_keepalive_connections=len(bookings) + 5)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as http:
        start = asyncio.Event()

        async def book(patient: PatientHandle, slot_id: str) -> httpx.Response:
            await start.wait()
            return await http.post(
                "/graphql",
                json={"query": BOOK, "variables": {"patientId": patient.patient_id, "slotId": slot_id}},
                headers={"authorization": f"Bearer {patient.token}"},
            )

        tasks = [asyncio.create_task(book(p, s)) for p, s in bookings]
        await asyncio.sleep(0)
        start.set()
        return await asyncio.gather(*tasks)


def _outcomes(responses: list[httpx.Response]) -> Counter[str]:
    assert [r.status_code for r in responses if r.status_code != 200] == []
    bodies: list[dict[str, Any]] = [r.json() for r in responses]
    assert [b["errors"] for b in bodies if b.get("errors")] == []
    return Counter(b["data"]["bookAppointment"]["__typename"] for b in bodies)


async def _tomorrow_session(
    hospital: Hospital, *, starts: list[tuple[int, int]], capacity: int
) -> tuple[str, list[str]]:
    return await hospital.session(
        day=local_date(hospital.clock.now()) + timedelta(days=1), starts=starts, capacity=capacity
    )


async def test_fifty_patients_racing_for_three_places_get_three_bookings_and_47_slot_taken(
    server: LiveServer,
) -> None:
    hospital = await Hospital(server.deps.db, server.deps.clock).build()
    _, [slot_id] = await _tomorrow_session(hospital, starts=[(9, 0)], capacity=3)
    patients = await asyncio.gather(*(hospital.patient(server.url, name=f"患者{i}") for i in range(50)))
    assert len({p.account_id for p in patients}) == 50

    outcomes = _outcomes(await _book_concurrently(server.url, [(p, slot_id) for p in patients]))

    assert outcomes == Counter({"AppointmentBooked": 3, "SlotTakenError": 47})
    day = (local_date(server.deps.clock.now()) + timedelta(days=1)).isoformat()
    catalog = await server.client().execute(SLOTS, {"day": day, "doctorId": hospital.doctor_id})
    assert catalog["schedules"][0]["slots"] == [{"id": slot_id, "capacity": 3, "remaining": 0}]
    booked = 0
    for p in patients:
        edges = (await p.client.execute(MY_REGISTRATIONS))["me"]["registrations"]["edges"]
        booked += len(edges)
        await p.client.aclose()
    assert booked == 3


async def test_a_patient_cannot_hold_two_places_in_one_session(server: LiveServer) -> None:
    hospital = await Hospital(server.deps.db, server.deps.clock).build()
    _, slots = await _tomorrow_session(hospital, starts=[(9, 0), (9, 30)], capacity=3)
    patient = await hospital.patient(server.url)

    first = await patient.client.execute(BOOK, {"patientId": patient.patient_id, "slotId": slots[0]})
    second = await patient.client.execute(BOOK, {"patientId": patient.patient_id, "slotId": slots[1]})

    assert first["bookAppointment"]["__typename"] == "AppointmentBooked"
    assert second["bookAppointment"]["__typename"] == "AlreadyRegisteredError"
    assert second["bookAppointment"]["code"] == "ALREADY_REGISTERED"


async def test_ten_simultaneous_bookings_by_one_patient_in_one_session_give_exactly_one(
    server: LiveServer,
) -> None:
    hospital = await Hospital(server.deps.db, server.deps.clock).build()
    schedule_id, slots = await _tomorrow_session(
        hospital,
        starts=[(8, 0), (8, 30), (9, 0), (9, 30), (10, 0), (10, 30), (11, 0), (11, 30), (12, 0), (12, 30)],
        capacity=2,
    )
    patient = await hospital.patient(server.url)

    outcomes = _outcomes(await _book_concurrently(server.url, [(patient, s) for s in slots]))

    assert outcomes == Counter({"AppointmentBooked": 1, "AlreadyRegisteredError": 9})
    mine = (await patient.client.execute(MY_REGISTRATIONS))["me"]["registrations"]["edges"]
    assert [(e["node"]["status"], e["node"]["scheduleId"]) for e in mine] == [("BOOKED", schedule_id)]
    day = (local_date(server.deps.clock.now()) + timedelta(days=1)).isoformat()
    catalog = await server.client().execute(SLOTS, {"day": day, "doctorId": hospital.doctor_id})
    assert sum(2 - s["remaining"] for s in catalog["schedules"][0]["slots"]) == 1
