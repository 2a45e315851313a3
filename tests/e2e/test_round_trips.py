"""DataLoaders keep round trips bounded by the query's depth: listing my registrations with doctor,
department, patient and queue position costs the same SQL statements and HIS calls at 5 rows as at 50."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import event

from datasources.clock import local_date
from tests.conftest import LiveServer
from tests.e2e.test_queue_live import BOOK, CHECK_IN
from tests.factories import ADD_PATIENT, AT_CAMPUS, CREATE_RECORD, Hospital, complete_patient

MY_REGISTRATIONS = """
{ me { registrations(first: 100) { edges { node {
    id doctor { name } department { name } patient { name } queuePosition { ahead }
} } } } }"""


class CountingHIS:
    """Forwards every call to the real HIS and counts it by method name."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.inner, name)
        if not callable(target):
            return target

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return await target(*args, **kwargs)

        return counted


@contextmanager
def counting_statements(server: LiveServer) -> Iterator[Callable[[], int]]:
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not statement.lstrip().upper().startswith("BEGIN"):  # SQLite's explicit transaction starts
            statements.append(statement)

    engine = server.deps.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield lambda: len(statements)
    finally:
        event.remove(engine, "before_cursor_execute", count)


async def account_with_registrations(
    server: LiveServer, hospital: Hospital, *, patients: int, doctors: list[str], days: int
) -> Any:
    """One account managing ``patients`` patients, each booked into every session of ``doctors`` over
    ``days`` days from today; today's registrations are checked in, so they have queue positions."""
    client, _, _ = await hospital.login(server.url)
    patient_ids = []
    for i in range(patients):
        person = complete_patient(f"家人{i}", relationship="SELF" if i == 0 else "OTHER")
        added = (await client.execute(ADD_PATIENT, {"input": person}))["addPatient"]
        assert added["__typename"] == "PatientSaved", added
        patient_ids.append(added["patient"]["id"])
        assert (await client.execute(CREATE_RECORD, {"patientId": patient_ids[-1]}))["createHospitalRecord"][
            "__typename"
        ] == "MedicalCardBound"
    today = local_date(hospital.clock.now())
    for doctor_id in doctors:
        for d in range(days):
            _, [slot_id] = await hospital.session(
                day=today + timedelta(days=d), starts=[(10, 0)], capacity=patients, doctor_id=doctor_id
            )
            for patient_id in patient_ids:
                booked = (await client.execute(BOOK, {"patientId": patient_id, "slotId": slot_id}))["bookAppointment"]
                if d == 0:
                    checked = await client.execute(
                        CHECK_IN, {"registrationId": booked["registration"]["id"], "location": AT_CAMPUS}
                    )
                    assert checked["checkIn"]["queuePosition"]["state"] == "WAITING"
    return client


async def test_my_registrations_cost_the_same_round_trips_at_5_and_at_50_rows(server: LiveServer) -> None:
    hospital = await Hospital(server.deps.db, server.deps.clock).build()
    second_doctor = await hospital.admin.add_doctor(hospital.department_id, "陈静", "副主任医师", "心律失常")
    few = await account_with_registrations(server, hospital, patients=1, doctors=[hospital.doctor_id], days=5)
    many = await account_with_registrations(
        server, hospital, patients=5, doctors=[hospital.doctor_id, second_doctor], days=5
    )
    his = CountingHIS(server.deps.sources.his)
    server.deps.sources.his = his
    measured: dict[int, tuple[int, Counter[str]]] = {}

    warm: dict[int, int] = {}
    for client in (few, many):
        await client.execute("{ me { account { id } } }")  # same warm-up for both
        server.deps.cache.clear()  # measure the cold path: nothing from the shared cache
        his.calls.clear()
        with counting_statements(server) as statements:
            edges = (await client.execute(MY_REGISTRATIONS))["me"]["registrations"]["edges"]
        measured[len(edges)] = (statements(), Counter(his.calls))
        with counting_statements(server) as statements:
            await client.execute(MY_REGISTRATIONS)
        warm[len(edges)] = statements()
        nodes = [e["node"] for e in edges]
        assert all(n["doctor"]["name"] and n["department"]["name"] and n["patient"]["name"] for n in nodes)
        assert sum(n["queuePosition"] is not None for n in nodes) == len(nodes) // 5

    (sql_5, his_5), (sql_50, his_50) = measured[5], measured[50]
    assert sql_5 == sql_50, (sql_5, sql_50)
    assert his_5 == his_50
    assert sql_50 <= 10, sql_50
    assert sum(his_50.values()) <= 5, his_50
    assert warm[50] < sql_50, "the same query again is served mostly from the cache"
