"""The BFF with its HIS behind HTTP: one app instance serves the HIS sandbox at /sandbox/his, a second
one is configured with ``his.mode = "http"`` pointing at it, and a patient books through the second."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from bff.app import create_app
from datasources.clock import FixedClock, local_date
from datasources.his.http import HttpHIS
from datasources.his.sandbox import SandboxHIS
from tests.conftest import DatabaseTarget, LiveServer, make_settings
from tests.factories import Hospital

BOOK = """
mutation Book($patientId: ID!, $slotId: ID!) {
  bookAppointment(input: {patientId: $patientId, slotId: $slotId}) {
    __typename
    ... on AppointmentBooked { registration { id status scheduleId } }
    ... on UserError { message code }
  }
}"""

SCHEDULES = """
query Slots($day: Date!, $doctorId: ID!) {
  schedules(dateFrom: $day, doctorId: $doctorId) { id slots { id remaining } }
}"""


@dataclass
class TwoInstances:
    his_host: LiveServer  # his.mode = "sandbox": serves the HIS sandbox at /sandbox/his
    bff: LiveServer  # his.mode = "http": talks to it over HTTP


@pytest.fixture
async def apps(database: DatabaseTarget, tmp_path: Path, clock: FixedClock) -> AsyncIterator[TwoInstances]:
    his_host = await LiveServer(create_app(make_settings(database, tmp_path), clock=clock)).start()
    over_http = make_settings(database, tmp_path, his={"mode": "http", "url": his_host.url + "/sandbox/his"})
    bff = await LiveServer(create_app(over_http, clock=clock)).start()
    yield TwoInstances(his_host, bff)
    await bff.stop()
    await his_host.stop()


async def test_a_patient_books_through_a_bff_whose_his_is_reached_over_http(
    apps: TwoInstances, clock: FixedClock
) -> None:
    assert isinstance(apps.bff.deps.sources.his, HttpHIS)
    hospital = await Hospital(apps.his_host.deps.db, clock).build()
    tomorrow = local_date(clock.now()) + timedelta(days=1)
    schedule_id, (slot_id, *_) = await hospital.session(day=tomorrow, capacity=1)
    first = await hospital.patient(apps.bff.url, name="张三")  # its HIS record is created over HTTP
    second = await hospital.patient(apps.bff.url, name="李四")

    schedules = await first.client.execute(SCHEDULES, {"day": tomorrow.isoformat(), "doctorId": hospital.doctor_id})
    assert schedules["schedules"][0]["id"] == schedule_id
    assert schedules["schedules"][0]["slots"][0] == {"id": slot_id, "remaining": 1}

    booked = (await first.client.execute(BOOK, {"patientId": first.patient_id, "slotId": slot_id}))["bookAppointment"]
    assert booked["__typename"] == "AppointmentBooked", booked
    assert booked["registration"]["status"] == "BOOKED"
    (registration,) = await SandboxHIS(apps.his_host.deps.db, clock).registrations_by_ids(
        [booked["registration"]["id"]]
    )
    assert registration.slot_id == slot_id

    taken = (await second.client.execute(BOOK, {"patientId": second.patient_id, "slotId": slot_id}))["bookAppointment"]
    assert taken["__typename"] == "SlotTakenError", taken

    await apps.his_host.stop()  # the HIS goes away: the patient is told, nothing breaks
    down = (await second.client.execute(BOOK, {"patientId": second.patient_id, "slotId": slot_id}))["bookAppointment"]
    assert down["__typename"] == "ServiceUnavailableError", down
