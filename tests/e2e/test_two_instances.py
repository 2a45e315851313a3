"""Scaling out: two app instances behind a load balancer share the database and Redis, so a queue
update caused on one reaches a subscriber connected to the other."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bff.app import create_app
from datasources.clock import FixedClock
from tests.conftest import REDIS_URL, DatabaseTarget, LiveServer, make_settings
from tests.e2e.test_queue_live import QUEUE_UPDATES, call_next, doctor_client, next_position, same_day
from tests.factories import Hospital

pytestmark = pytest.mark.skipif(not REDIS_URL, reason="needs REDIS_URL (TEST_REQUIRE_SERVICES=1 makes it required)")


@pytest.fixture
async def instances(
    database: DatabaseTarget, tmp_path: Path, clock: FixedClock
) -> AsyncIterator[tuple[LiveServer, LiveServer]]:
    started: list[LiveServer] = []
    namespace = f"test-{secrets.token_hex(4)}"  # one deployment: both instances share it
    try:
        for name in ("a", "b"):
            settings = make_settings(database, tmp_path / name, redis_url=REDIS_URL, broker_namespace=namespace)
            started.append(await LiveServer(create_app(settings, clock=clock)).start())
        yield started[0], started[1]
    finally:
        for live in started:
            await live.stop()


async def test_a_subscriber_on_instance_b_sees_the_doctor_call_made_on_instance_a(
    instances: tuple[LiveServer, LiveServer],
) -> None:
    a, b = instances
    hospital = await Hospital(a.deps.db, a.deps.clock).build()
    schedule_id, [slot_id] = await hospital.session(starts=[(9, 30)], capacity=3)
    ahead = await hospital.patient(a.url, name="前一")
    await same_day(ahead, slot_id)
    patient = await hospital.patient(a.url, name="李四")
    registration_id = await same_day(patient, slot_id)
    doctor = await doctor_client(a, hospital)
    on_b = b.client(patient.token)

    async with on_b.subscribe(QUEUE_UPDATES, {"registrationId": registration_id}) as updates:
        assert (await next_position(updates))["ahead"] == 1
        assert await call_next(doctor, schedule_id) == 1
        assert (await next_position(updates))["ahead"] == 0
        assert await call_next(doctor, schedule_id) == 2
        assert (await next_position(updates))["state"] == "CALLED"
    await doctor.aclose()


PATIENT_NAMES = "{ me { patients { name } } }"
UPDATE_NAME = """
mutation ($id: ID!) { updatePatient(input: {patientId: $id, occupation: "退休"}) { __typename } }"""
OCCUPATIONS = "{ me { patients { occupation } } }"
LOGOUT = "mutation { logout { ok } }"


async def test_what_one_instance_changes_the_other_serves_at_once_despite_its_cache(
    instances: tuple[LiveServer, LiveServer],
) -> None:
    a, b = instances
    hospital = await Hospital(a.deps.db, a.deps.clock).build()
    patient = await hospital.patient(a.url)
    on_a, on_b = a.client(patient.token), b.client(patient.token)
    assert (await on_b.execute(OCCUPATIONS))["me"]["patients"] == [{"occupation": "教师"}]  # B caches it
    await on_a.execute(UPDATE_NAME, {"id": patient.patient_id})
    assert (await on_b.execute(OCCUPATIONS))["me"]["patients"] == [{"occupation": "退休"}]
    assert (await on_a.execute(LOGOUT))["logout"]["ok"] is True
    refused = (await on_b.post(PATIENT_NAMES)).json()  # B had the session cached
    assert refused["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
