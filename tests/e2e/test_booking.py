"""预约挂号, 当日挂号, 签到 and 退号: the hospital's rules, as a patient meets them."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from datasources.clock import FixedClock, local_date
from realtime import topics
from resolvers.registration import release_expired_holds
from tests.conftest import LiveServer
from tests.factories import ADD_PATIENT, AT_CAMPUS, FAR_AWAY, Hospital, complete_patient

BOOK = """
mutation Book($patientId: ID!, $slotId: ID!) {
  bookAppointment(input: {patientId: $patientId, slotId: $slotId}) {
    __typename
    ... on AppointmentBooked {
      payLaterEligible creditStatus notice
      registration { id status paymentStatus holdExpiresAt kind fee { yuan } }
    }
    ... on CreditDefaultedError { arrears { fen yuan } topUp { route amount { yuan } } appealUrl }
    ... on MissingPatientInformationError { fields }
    ... on NotAllowedError { reason }
    ... on UserError { message code }
  }
}"""
SAME_DAY = """
mutation SameDay($patientId: ID!, $slotId: ID!, $location: LocationInput!) {
  registerSameDay(input: {patientId: $patientId, slotId: $slotId, location: $location}) {
    __typename
    ... on CheckedIn { registration { id status kind queueNumber } queuePosition { queueNumber ahead state } }
    ... on OutsideGeofenceError { distanceMeters radiusMeters }
    ... on CutoffPassedError { cutoffAt }
    ... on NotAllowedError { reason }
    ... on UserError { message code }
  }
}"""
CHECK_IN = """
mutation CheckIn($id: ID!, $location: LocationInput!) {
  checkIn(input: {registrationId: $id, location: $location}) {
    __typename
    ... on CheckedIn { notice payLaterEligible registration { status queueNumber } queuePosition { ahead } }
    ... on CreditDefaultedError { arrears { fen } }
    ... on OutsideGeofenceError { distanceMeters }
    ... on NotAllowedError { reason }
    ... on UserError { message code }
  }
}"""
CANCEL = """
mutation Cancel($id: ID!) {
  cancelRegistration(input: {registrationId: $id}) {
    __typename
    ... on RegistrationCancelled { refundPending registration { status } }
    ... on NotAllowedError { reason }
    ... on CutoffPassedError { cutoffAt }
    ... on UserError { message code }
  }
}"""
SLOTS = "query ($d: Date!) { schedules(dateFrom: $d) { id slots { id remaining } } }"
UNREAD = "{ me { unreadNotificationCount } }"
SAME_DAY_LIST = "{ sameDaySchedules { period slots { id } } }"


async def _remaining(server: LiveServer, slot_id: str, day: Any) -> int:
    data = await server.client().execute(SLOTS, {"d": day.isoformat()})
    return next(s["remaining"] for sc in data["schedules"] for s in sc["slots"] if s["id"] == slot_id)


async def _setup(server: LiveServer, credit: str = "GOOD"):  # type: ignore[no-untyped-def]
    hospital = await Hospital(server.deps.db, server.deps.clock).build()
    patient = await hospital.patient(server.url, credit=credit)
    return hospital, patient


def _tomorrow(clock: FixedClock):  # type: ignore[no-untyped-def]
    return local_date(clock.now()) + timedelta(days=1)


async def test_a_patient_in_good_standing_books_and_may_pay_later(server: LiveServer, clock: FixedClock) -> None:
    hospital, patient = await _setup(server)
    _, slots = await hospital.session(day=_tomorrow(clock))
    booked = (await patient.client.execute(BOOK, {"patientId": patient.patient_id, "slotId": slots[0]}))
    result = booked["bookAppointment"]
    assert result["__typename"] == "AppointmentBooked"
    assert (result["payLaterEligible"], result["creditStatus"]) == (True, "GOOD")
    assert result["registration"]["paymentStatus"] == "PAY_LATER"
    assert result["registration"]["fee"]["yuan"] == "50.00"
    assert await _remaining(server, slots[0], _tomorrow(clock)) == 2
    assert (await patient.client.execute(UNREAD))["me"]["unreadNotificationCount"] == 1


async def test_defaulter_here_cannot_book_until_arrears_paid(server: LiveServer, clock: FixedClock) -> None:
    hospital, patient = await _setup(server, credit="DEFAULTED_HERE")
    _, slots = await hospital.session(day=_tomorrow(clock))
    refused = (await patient.client.execute(BOOK, {"patientId": patient.patient_id, "slotId": slots[0]}))
    result = refused["bookAppointment"]
    assert result["__typename"] == "CreditDefaultedError"
    assert result["arrears"] == {"fen": 12345, "yuan": "123.45"}
    assert result["topUp"] == {"route": "deposit/top-up", "amount": {"yuan": "123.45"}}
    assert result["appealUrl"].startswith("https://")
    assert await _remaining(server, slots[0], _tomorrow(clock)) == 3
    await hospital.credit.put_record(name=patient.name, document_number=patient.document_number)
    again = await patient.client.execute(BOOK, {"patientId": patient.patient_id, "slotId": slots[0]})
    assert again["bookAppointment"]["__typename"] == "AppointmentBooked"


async def test_defaulter_elsewhere_books_without_pay_later_and_is_told_why(server: LiveServer, clock: FixedClock) -> None:
    hospital, patient = await _setup(server, credit="DEFAULTED_ELSEWHERE")
    _, slots = await hospital.session(day=_tomorrow(clock))
    result = (await patient.client.execute(BOOK, {"patientId": patient.patient_id, "slotId": slots[0]}))["bookAppointment"]
    assert result["__typename"] == "AppointmentBooked"
    assert (result["payLaterEligible"], result["creditStatus"]) == (False, "DEFAULTED_ELSEWHERE")
    assert "another hospital" in result["notice"]
    assert result["registration"]["paymentStatus"] == "UNPAID"
    assert result["registration"]["holdExpiresAt"] is not None


async def test_an_unknown_person_is_never_treated_as_good(server: LiveServer, clock: FixedClock) -> None:
    hospital, patient = await _setup(server, credit="UNKNOWN")
    _, slots = await hospital.session(day=_tomorrow(clock))
    result = (await patient.client.execute(BOOK, {"patientId": patient.patient_id, "slotId": slots[0]}))["bookAppointment"]
    assert (result["__typename"], result["payLaterEligible"], result["creditStatus"]) == ("AppointmentBooked", False, "UNKNOWN")
    assert result["notice"]


async def test_a_credit_platform_outage_never_blocks_booking(server: LiveServer, clock: FixedClock) -> None:
    hospital, patient = await _setup(server, credit="DEFAULTED_HERE")
    await hospital.credit.set_available(False)
    _, slots = await hospital.session(day=_tomorrow(clock))
    result = (await patient.client.execute(BOOK, {"patientId": patient.patient_id, "slotId": slots[0]}))["bookAppointment"]
    assert (result["__typename"], result["payLaterEligible"], result["creditStatus"]) == ("AppointmentBooked", False, "UNAVAILABLE")


async def test_booking_needs_a_complete_record_and_a_card(server: LiveServer, clock: FixedClock) -> None:
    hospital = await Hospital(server.deps.db, clock).build()
    _, slots = await hospital.session(day=_tomorrow(clock))
    client, _, _ = await hospital.login(server.url)
    incomplete = {"name": "张小三", "relationship": "CHILD", "documentType": "RESIDENT_ID",
                  "documentNumber": complete_patient()["documentNumber"]}
    child = (await client.execute(ADD_PATIENT, {"input": incomplete}))["addPatient"]["patient"]["id"]
    refused = (await client.execute(BOOK, {"patientId": child, "slotId": slots[0]}))["bookAppointment"]
    assert refused["__typename"] == "MissingPatientInformationError"
    assert "phone" in refused["fields"]
    adult = (await client.execute(ADD_PATIENT, {"input": complete_patient()}))["addPatient"]["patient"]["id"]
    no_card = (await client.execute(BOOK, {"patientId": adult, "slotId": slots[0]}))["bookAppointment"]
    assert no_card["__typename"] == "MedicalCardRequiredError"


async def test_a_slot_that_has_started_cannot_be_booked_ahead(server: LiveServer, clock: FixedClock) -> None:
    hospital, patient = await _setup(server)
    _, slots = await hospital.session()  # today; it is 09:10, the 08:00 slot has started
    result = (await patient.client.execute(BOOK, {"patientId": patient.patient_id, "slotId": slots[0]}))["bookAppointment"]
    assert (result["__typename"], result["reason"]) == ("NotAllowedError", "SLOT_STARTED")


async def test_same_day_registration_checks_in_at_once_and_cannot_be_cancelled(server: LiveServer) -> None:
    hospital, patient = await _setup(server)
    _, slots = await hospital.session()
    variables = {"patientId": patient.patient_id, "slotId": slots[3], "location": AT_CAMPUS}
    result = (await patient.client.execute(SAME_DAY, variables))["registerSameDay"]
    assert result["__typename"] == "CheckedIn"
    assert result["registration"]["status"] == "CHECKED_IN" and result["registration"]["kind"] == "SAME_DAY"
    assert result["queuePosition"] == {"queueNumber": 1, "ahead": 0, "state": "WAITING"}
    cancel = (await patient.client.execute(CANCEL, {"id": result["registration"]["id"]}))["cancelRegistration"]
    assert (cancel["__typename"], cancel["reason"]) == ("NotAllowedError", "SAME_DAY_NOT_CANCELLABLE")


async def test_same_day_registration_is_refused_far_from_the_campus_with_the_distance(server: LiveServer) -> None:
    hospital, patient = await _setup(server)
    _, slots = await hospital.session()
    variables = {"patientId": patient.patient_id, "slotId": slots[3], "location": FAR_AWAY}
    result = (await patient.client.execute(SAME_DAY, variables))["registerSameDay"]
    assert result["__typename"] == "OutsideGeofenceError"
    assert 8000 < result["distanceMeters"] < 12000 and result["radiusMeters"] == 1000


async def test_gps_coordinates_at_the_campus_are_inside_the_geofence(server: LiveServer) -> None:
    """The same spot in WGS-84 differs by ~500 m in numbers; converted, it is at the campus."""
    from resolvers.geofence import gcj02_to_wgs84

    hospital, patient = await _setup(server)
    _, slots = await hospital.session()
    lat, lng = gcj02_to_wgs84(AT_CAMPUS["latitude"], AT_CAMPUS["longitude"])
    gps = {"latitude": lat, "longitude": lng, "system": "WGS84"}
    result = (await patient.client.execute(SAME_DAY, {"patientId": patient.patient_id, "slotId": slots[3], "location": gps}))
    assert result["registerSameDay"]["__typename"] == "CheckedIn"


async def test_same_day_offers_only_the_current_half_day(server: LiveServer, clock: FixedClock) -> None:
    hospital, patient = await _setup(server)
    _, morning = await hospital.session(period="AM")
    _, afternoon = await hospital.session(period="PM")
    listed = (await server.client().execute(SAME_DAY_LIST))["sameDaySchedules"]
    assert [s["period"] for s in listed] == ["AM"]
    assert morning[0] not in [slot["id"] for s in listed for slot in s["slots"]]  # 08:00-08:30 is over
    variables = {"patientId": patient.patient_id, "slotId": afternoon[0], "location": AT_CAMPUS}
    result = (await patient.client.execute(SAME_DAY, variables))["registerSameDay"]
    assert (result["__typename"], result["reason"]) == ("NotAllowedError", "NOT_CURRENT_SESSION")


async def test_same_day_numbers_cannot_be_taken_after_the_slot_cut_off(server: LiveServer, clock: FixedClock) -> None:
    hospital, patient = await _setup(server)
    _, slots = await hospital.session(starts=[(9, 0)], minutes=30)
    clock.advance(minutes=20)  # 09:30: the 09:00-09:30 slot's numbers are closed
    variables = {"patientId": patient.patient_id, "slotId": slots[0], "location": AT_CAMPUS}
    result = (await patient.client.execute(SAME_DAY, variables))["registerSameDay"]
    assert result["__typename"] == "CutoffPassedError"
    assert result["cutoffAt"].startswith("2026-11-23T09:30:00+08:00")


async def test_check_in_opens_on_the_visit_day_at_the_campus(server: LiveServer, clock: FixedClock) -> None:
    hospital, patient = await _setup(server)
    tomorrow = _tomorrow(clock)
    _, slots = await hospital.session(day=tomorrow)
    booked = (await patient.client.execute(BOOK, {"patientId": patient.patient_id, "slotId": slots[2]}))
    rid = booked["bookAppointment"]["registration"]["id"]
    early = (await patient.client.execute(CHECK_IN, {"id": rid, "location": AT_CAMPUS}))["checkIn"]
    assert (early["__typename"], early["reason"]) == ("NotAllowedError", "NOT_VISIT_DAY")
    clock.advance(days=1, minutes=-60)  # tomorrow 08:10
    patient = await hospital.relogin(server.url, patient)
    far = (await patient.client.execute(CHECK_IN, {"id": rid, "location": FAR_AWAY}))["checkIn"]
    assert far["__typename"] == "OutsideGeofenceError"
    done = (await patient.client.execute(CHECK_IN, {"id": rid, "location": AT_CAMPUS}))["checkIn"]
    assert done["__typename"] == "CheckedIn"
    assert done["registration"] == {"status": "CHECKED_IN", "queueNumber": 1}
    twice = (await patient.client.execute(CHECK_IN, {"id": rid, "location": AT_CAMPUS}))["checkIn"]
    assert twice["__typename"] == "NotAllowedError"


async def test_defaulter_here_cannot_check_in_until_arrears_cleared_elsewhere_checks_in_with_notice(
    server: LiveServer, clock: FixedClock
) -> None:
    hospital, patient = await _setup(server)
    _, slots = await hospital.session(starts=[(10, 0)])
    rid = (await patient.client.execute(BOOK, {"patientId": patient.patient_id, "slotId": slots[0]}))[
        "bookAppointment"]["registration"]["id"]
    await hospital.credit.put_record(name=patient.name, document_number=patient.document_number, arrears_here_fen=800)
    refused = (await patient.client.execute(CHECK_IN, {"id": rid, "location": AT_CAMPUS}))["checkIn"]
    assert (refused["__typename"], refused["arrears"]) == ("CreditDefaultedError", {"fen": 800})
    await hospital.credit.put_record(
        name=patient.name, document_number=patient.document_number, arrears_elsewhere_fen=500
    )
    done = (await patient.client.execute(CHECK_IN, {"id": rid, "location": AT_CAMPUS}))["checkIn"]
    assert done["__typename"] == "CheckedIn"
    assert done["payLaterEligible"] is False and "another hospital" in done["notice"]


async def test_cancelling_before_the_cut_off_releases_the_slot_and_announces_it(
    server: LiveServer, clock: FixedClock
) -> None:
    hospital, patient = await _setup(server)
    tomorrow = _tomorrow(clock)
    schedule_id, slots = await hospital.session(day=tomorrow)
    rid = (await patient.client.execute(BOOK, {"patientId": patient.patient_id, "slotId": slots[0]}))[
        "bookAppointment"]["registration"]["id"]
    assert await _remaining(server, slots[0], tomorrow) == 2
    async with server.deps.broker.subscribe(topics.slot_released(schedule_id)) as events:
        cancelled = (await patient.client.execute(CANCEL, {"id": rid}))["cancelRegistration"]
        event = await asyncio.wait_for(anext(events), 5)
    assert cancelled == {"__typename": "RegistrationCancelled", "refundPending": False,
                         "registration": {"status": "CANCELLED"}}
    assert event["scheduleId"] == schedule_id
    assert await _remaining(server, slots[0], tomorrow) == 3


async def test_an_appointment_cannot_be_cancelled_online_within_an_hour_of_its_start(
    server: LiveServer, clock: FixedClock
) -> None:
    hospital, patient = await _setup(server)
    _, slots = await hospital.session(starts=[(10, 0)])
    rid = (await patient.client.execute(BOOK, {"patientId": patient.patient_id, "slotId": slots[0]}))[
        "bookAppointment"]["registration"]["id"]
    result = (await patient.client.execute(CANCEL, {"id": rid}))["cancelRegistration"]
    assert result["__typename"] == "CutoffPassedError"
    assert result["cutoffAt"].startswith("2026-11-23T09:00:00+08:00")


async def test_an_unpaid_registration_gives_its_place_back_when_the_hold_ends(
    server: LiveServer, clock: FixedClock
) -> None:
    hospital, patient = await _setup(server, credit="DEFAULTED_ELSEWHERE")
    tomorrow = _tomorrow(clock)
    schedule_id, slots = await hospital.session(day=tomorrow)
    await patient.client.execute(BOOK, {"patientId": patient.patient_id, "slotId": slots[0]})
    assert await release_expired_holds(server.deps) == 0
    clock.advance(minutes=16)
    async with server.deps.broker.subscribe(topics.slot_released(schedule_id)) as events:
        assert await release_expired_holds(server.deps) == 1
        event = await asyncio.wait_for(anext(events), 5)
    assert event["slotId"] == slots[0]
    assert await _remaining(server, slots[0], tomorrow) == 3
    listed = await patient.client.execute("{ me { registrations { nodes { status } } } }")
    assert listed["me"]["registrations"]["nodes"] == [{"status": "EXPIRED"}]


WINDOWS = "query ($id: ID!) { me { registration(id: $id) { canCancel canCheckIn cancelDeadline checkInClosesAt } } }"


async def test_a_registration_says_in_advance_when_it_can_be_cancelled_or_checked_in(
    server: LiveServer, clock: FixedClock
) -> None:
    hospital, patient = await _setup(server)
    _, slots = await hospital.session(day=_tomorrow(clock), starts=[(10, 0)])
    rid = (await patient.client.execute(BOOK, {"patientId": patient.patient_id, "slotId": slots[0]}))[
        "bookAppointment"]["registration"]["id"]
    today = (await patient.client.execute(WINDOWS, {"id": rid}))["me"]["registration"]
    assert today == {"canCancel": True, "canCheckIn": False, "cancelDeadline": "2026-11-24T09:00:00+08:00",
                     "checkInClosesAt": "2026-11-24T10:30:00+08:00"}
    clock.advance(days=1, minutes=-5)  # tomorrow 09:05
    patient = await hospital.relogin(server.url, patient)
    tomorrow = (await patient.client.execute(WINDOWS, {"id": rid}))["me"]["registration"]
    assert (tomorrow["canCancel"], tomorrow["canCheckIn"]) == (False, True)
    cancel = (await patient.client.execute(CANCEL, {"id": rid}))["cancelRegistration"]
    assert cancel["__typename"] == "CutoffPassedError"


REMOVE = "mutation ($id: ID!) { removePatient(input: {patientId: $id}) { __typename ... on NotAllowedError { reason } } }"


async def test_a_patient_with_visits_ahead_cannot_be_removed_until_they_are_cancelled(
    server: LiveServer, clock: FixedClock
) -> None:
    hospital, patient = await _setup(server)
    _, slots = await hospital.session(day=_tomorrow(clock))
    rid = (await patient.client.execute(BOOK, {"patientId": patient.patient_id, "slotId": slots[0]}))[
        "bookAppointment"]["registration"]["id"]
    refused = (await patient.client.execute(REMOVE, {"id": patient.patient_id}))["removePatient"]
    assert refused == {"__typename": "NotAllowedError", "reason": "ACTIVE_REGISTRATIONS"}
    await patient.client.execute(CANCEL, {"id": rid})
    removed = (await patient.client.execute(REMOVE, {"id": patient.patient_id}))["removePatient"]
    assert removed["__typename"] == "PatientRemoved"


PAGE = """
query ($after: String, $statuses: [RegistrationStatus!]) {
  me { registrations(first: 2, after: $after, filter: {statuses: $statuses}) {
    edges { cursor node { id status startsAt } } pageInfo { hasNextPage endCursor } } }
}"""


async def test_registration_records_page_newest_first_and_filter_by_status(server: LiveServer, clock: FixedClock) -> None:
    hospital, patient = await _setup(server)
    booked = []
    for offset in (1, 2, 3):
        day = local_date(clock.now()) + timedelta(days=offset)
        _, slots = await hospital.session(day=day)
        result = await patient.client.execute(BOOK, {"patientId": patient.patient_id, "slotId": slots[0]})
        booked.append(result["bookAppointment"]["registration"]["id"])
    await patient.client.execute(CANCEL, {"id": booked[2]})

    first = (await patient.client.execute(PAGE, {}))["me"]["registrations"]
    assert [e["node"]["id"] for e in first["edges"]] == [booked[2], booked[1]]  # newest visit first
    assert first["pageInfo"]["hasNextPage"] is True
    rest = (await patient.client.execute(PAGE, {"after": first["pageInfo"]["endCursor"]}))["me"]["registrations"]
    assert [e["node"]["id"] for e in rest["edges"]] == [booked[0]]
    assert rest["pageInfo"]["hasNextPage"] is False
    cancelled = (await patient.client.execute(PAGE, {"statuses": ["CANCELLED"]}))["me"]["registrations"]
    assert [e["node"]["id"] for e in cancelled["edges"]] == [booked[2]]
