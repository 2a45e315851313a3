"""The queue, live: a checked-in patient watches their position fall over a real WebSocket while the
doctor (or the nurse station's calling system, through a signed callback) calls the patients ahead."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from bff.callbacks import sign
from bff.settings import Settings
from clients.reference import GraphQLClient
from resolvers.identity import create_staff
from tests.conftest import LiveServer
from tests.factories import AT_CAMPUS, Hospital, PatientHandle

QUEUE_UPDATES = """
subscription Queue($registrationId: ID!) {
  queueUpdates(registrationId: $registrationId) { registrationId state queueNumber calledNumber ahead }
}"""

REGISTER_SAME_DAY = """
mutation SameDay($patientId: ID!, $slotId: ID!, $location: LocationInput!) {
  registerSameDay(input: {patientId: $patientId, slotId: $slotId, location: $location}) {
    __typename
    ... on CheckedIn { registration { id } queuePosition { queueNumber ahead } }
    ... on UserError { message code }
  }
}"""

BOOK = """
mutation Book($patientId: ID!, $slotId: ID!) {
  bookAppointment(input: {patientId: $patientId, slotId: $slotId}) {
    __typename
    ... on AppointmentBooked { registration { id } }
    ... on UserError { message code }
  }
}"""

CHECK_IN = """
mutation CheckIn($registrationId: ID!, $location: LocationInput!) {
  checkIn(input: {registrationId: $registrationId, location: $location}) {
    __typename
    ... on CheckedIn { queuePosition { queueNumber ahead state } }
    ... on UserError { message code }
  }
}"""

LOGIN_STAFF = """
mutation Staff($username: String!, $password: String!) {
  loginWithPassword(input: {username: $username, password: $password}) {
    __typename
    ... on LoginSuccess { token }
    ... on UserError { message code }
  }
}"""

CALL_NEXT = """
mutation Call($scheduleId: ID!) {
  callNextPatient(input: {scheduleId: $scheduleId}) {
    __typename
    ... on PatientCalled { queueNumber queue { calledNumber waiting } }
    ... on UserError { message code }
  }
}"""

DOCTOR_PASSWORD = "Correct-Horse-Battery"
WAIT_S = 10.0


async def same_day(patient: PatientHandle, slot_id: str) -> str:
    """当日挂号 at the campus: registered and checked in; returns the registration id."""
    result = (
        await patient.client.execute(
            REGISTER_SAME_DAY, {"patientId": patient.patient_id, "slotId": slot_id, "location": AT_CAMPUS}
        )
    )["registerSameDay"]
    assert result["__typename"] == "CheckedIn", result
    registration_id: str = result["registration"]["id"]
    return registration_id


async def doctor_client(server: LiveServer, hospital: Hospital, username: str = "dr.wang") -> GraphQLClient:
    """The session's doctor, logged in through the API with a staff password."""
    await create_staff(
        server.deps.db,
        server.deps.clock,
        role="DOCTOR",
        username=username,
        password=DOCTOR_PASSWORD,
        display_name="王建国",
        his_staff_id=hospital.doctor_id,
    )
    anonymous = server.client()
    login = await anonymous.execute(LOGIN_STAFF, {"username": username, "password": DOCTOR_PASSWORD})
    await anonymous.aclose()
    assert login["loginWithPassword"]["__typename"] == "LoginSuccess", login
    return server.client(login["loginWithPassword"]["token"])


async def call_next(doctor: GraphQLClient, schedule_id: str) -> int:
    called = (await doctor.execute(CALL_NEXT, {"scheduleId": schedule_id}))["callNextPatient"]
    assert called["__typename"] == "PatientCalled", called
    number: int = called["queueNumber"]
    return number


async def next_position(updates: AsyncIterator[dict[str, Any]]) -> dict[str, Any]:
    data = await asyncio.wait_for(anext(updates), WAIT_S)
    position: dict[str, Any] = data["queueUpdates"]
    return position


async def _third_in_line(server: LiveServer) -> tuple[Hospital, str, PatientHandle, str]:
    """Two patients registered same-day, then a third checks in to an appointment: two are ahead."""
    hospital = await Hospital(server.deps.db, server.deps.clock).build()
    schedule_id, slots = await hospital.session(starts=[(9, 30), (10, 0)], capacity=3)
    for i in range(2):
        await same_day(await hospital.patient(server.url, name=f"前{i}"), slots[0])
    patient = await hospital.patient(server.url, name="李四")
    booked = await patient.client.execute(BOOK, {"patientId": patient.patient_id, "slotId": slots[1]})
    registration_id = booked["bookAppointment"]["registration"]["id"]
    checked = await patient.client.execute(CHECK_IN, {"registrationId": registration_id, "location": AT_CAMPUS})
    assert checked["checkIn"]["queuePosition"] == {"queueNumber": 3, "ahead": 2, "state": "WAITING"}
    return hospital, schedule_id, patient, registration_id


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_a_checked_in_patient_watches_the_doctor_call_the_queue_down_to_their_turn(
    server: LiveServer, protocol: str
) -> None:
    hospital, schedule_id, patient, registration_id = await _third_in_line(server)
    doctor = await doctor_client(server, hospital)

    async with patient.client.subscribe(
        QUEUE_UPDATES, {"registrationId": registration_id}, protocol=protocol
    ) as updates:
        first = await next_position(updates)
        assert first == {
            "registrationId": registration_id,
            "state": "WAITING",
            "queueNumber": 3,
            "calledNumber": None,
            "ahead": 2,
        }
        assert await call_next(doctor, schedule_id) == 1
        assert (await next_position(updates))["ahead"] == 1
        assert await call_next(doctor, schedule_id) == 2
        assert (await next_position(updates))["ahead"] == 0
        assert await call_next(doctor, schedule_id) == 3
        mine = await next_position(updates)
        assert (mine["state"], mine["calledNumber"], mine["ahead"]) == ("CALLED", 3, 0)
    await doctor.aclose()


async def _post_callback(server: LiveServer, body: bytes, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.url) as http:
        return await http.post(
            "/callbacks/his/queue-changed", content=body, headers={"content-type": "application/json", **headers}
        )


def _signed(body: bytes, secret: str) -> dict[str, str]:
    timestamp = str(int(time.time()))
    return {"x-timestamp": timestamp, "x-signature": sign(secret, timestamp, body)}


async def test_the_nurse_station_callback_pushes_the_new_position_after_a_call_made_in_his(
    server: LiveServer, settings: Settings
) -> None:
    _, schedule_id, patient, registration_id = await _third_in_line(server)
    body = json.dumps({"scheduleId": schedule_id}).encode()

    async with patient.client.subscribe(QUEUE_UPDATES, {"registrationId": registration_id}) as updates:
        assert (await next_position(updates))["ahead"] == 2
        await server.deps.sources.his.call_next(schedule_id)  # the calling system changes HIS itself
        pending = asyncio.ensure_future(next_position(updates))
        await asyncio.sleep(0.5)
        assert not pending.done(), "nothing is pushed before the calling system tells the BFF"

        response = await _post_callback(server, body, _signed(body, settings.callback_secret))
        assert response.status_code == 200, response.text
        assert response.json()["calledNumber"] == 1
        assert (await pending)["ahead"] == 1


async def test_an_unsigned_or_forged_queue_callback_is_refused(server: LiveServer, settings: Settings) -> None:
    hospital = await Hospital(server.deps.db, server.deps.clock).build()
    schedule_id, _ = await hospital.session(starts=[(9, 30)])
    body = json.dumps({"scheduleId": schedule_id}).encode()

    unsigned = await _post_callback(server, body, {})
    forged = await _post_callback(server, body, _signed(body, "a-guessed-secret"))
    tampered = await _post_callback(
        server, json.dumps({"scheduleId": schedule_id + "0"}).encode(), _signed(body, settings.callback_secret)
    )

    assert [r.status_code for r in (unsigned, forged, tampered)] == [401, 401, 401]
    assert forged.json()["code"] == "BAD_SIGNATURE"
