"""The doctor's screen: who is called and who waits, by number and masked name; only their own sessions."""

from __future__ import annotations

from clients.profiles import operation
from resolvers.identity import DOCTOR, create_staff
from tests.conftest import LiveServer
from tests.e2e.test_queue_live import call_next, doctor_client, same_day
from tests.factories import Hospital

SESSION_QUEUE = operation("doctor_h5", "SessionQueue")


async def test_the_doctor_sees_the_queue_in_order_with_masked_names(server: LiveServer) -> None:
    hospital = await Hospital(server.deps.db, server.deps.clock).build()
    schedule_id, [slot_id] = await hospital.session(starts=[(9, 30)], capacity=3)
    first = await hospital.patient(server.url, name="李四")
    second = await hospital.patient(server.url, name="欧阳娜娜")
    await same_day(first, slot_id)
    await same_day(second, slot_id)
    doctor = await doctor_client(server, hospital)
    assert await call_next(doctor, schedule_id) == 1

    queue = (await doctor.execute(SESSION_QUEUE, {"scheduleId": schedule_id}))["me"]["queue"]
    assert (queue["calledNumber"], queue["waiting"]) == (1, [2])
    assert [(e["queueNumber"], e["status"], e["patientName"]) for e in queue["entries"]] == [
        (1, "CALLED", "李*"),
        (2, "CHECKED_IN", "欧***"),
    ]


async def test_another_doctors_session_is_not_found(server: LiveServer) -> None:
    hospital = await Hospital(server.deps.db, server.deps.clock).build()
    schedule_id, _ = await hospital.session(starts=[(9, 30)])
    other = await hospital.admin.add_doctor(hospital.department_id, "陈静", "主治医师", "心律失常")
    await create_staff(
        server.deps.db, server.deps.clock, role=DOCTOR, username="dr.chen", password="another doctor 1",
        display_name="Dr Chen", his_staff_id=other,
    )
    login = await server.client().execute(
        'mutation { loginWithPassword(input: {username: "dr.chen", password: "another doctor 1"}) '
        "{ ... on LoginSuccess { token } } }"
    )
    stranger = server.client(login["loginWithPassword"]["token"])
    answer = (await stranger.post(SESSION_QUEUE, {"scheduleId": schedule_id})).json()
    assert answer["errors"][0]["extensions"]["code"] == "NOT_FOUND"
