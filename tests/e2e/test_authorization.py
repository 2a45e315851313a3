"""Authorization: another account's patient, card and registration do not exist for you, in queries,
mutations and subscriptions; no token, a bad token or the wrong role is refused with a clear code."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import websockets

from clients.reference import GraphQLClient, GraphQLError
from datasources.clock import FixedClock
from tests.conftest import LiveServer
from tests.e2e.test_queue_live import BOOK, QUEUE_UPDATES, doctor_client, next_position
from tests.factories import AT_CAMPUS, Hospital, PatientHandle

PATIENT = "query Patient($id: ID!) { me { patient(id: $id) { id name } } }"
REGISTRATION = "query Registration($id: ID!) { me { registration(id: $id) { id status } } }"
HOSPITAL_CARDS = "query Cards($patientId: ID!) { me { hospitalCards(patientId: $patientId) { ref } } }"
MY_PATIENTS = "{ me { patients { id } } }"

OUTCOME = "__typename ... on UserError { code }"
UPDATE_PATIENT = (
    f"""mutation($id: ID!) {{ updatePatient(input: {{patientId: $id, occupation: "工程师"}}) {{ {OUTCOME} }} }}"""
)
REMOVE_PATIENT = f"mutation($id: ID!) {{ removePatient(input: {{patientId: $id}}) {{ {OUTCOME} }} }}"
BIND_CARD = f"""mutation($id: ID!, $ref: String!) {{
  bindMedicalCard(input: {{patientId: $id, cardRef: $ref}}) {{ {OUTCOME} }} }}"""
CREATE_RECORD = f"mutation($id: ID!) {{ createHospitalRecord(input: {{patientId: $id}}) {{ {OUTCOME} }} }}"
BOOK_FOR = (
    f"mutation($id: ID!, $slot: ID!) {{ bookAppointment(input: {{patientId: $id, slotId: $slot}}) {{ {OUTCOME} }} }}"
)
CHECK_IN = f"""mutation($id: ID!, $location: LocationInput!) {{
  checkIn(input: {{registrationId: $id, location: $location}}) {{ {OUTCOME} }} }}"""
CANCEL = f"mutation($id: ID!) {{ cancelRegistration(input: {{registrationId: $id}}) {{ {OUTCOME} }} }}"
LOGOUT = "mutation { logout { ok } }"


@dataclass
class Scene:
    hospital: Hospital
    alice: PatientHandle
    bob: PatientHandle
    slot_id: str
    alice_registration: str


@pytest.fixture
async def scene(server: LiveServer) -> Scene:
    """Alice has a patient with a card and a booked appointment today; Bob has his own patient."""
    hospital = await Hospital(server.deps.db, server.deps.clock).build()
    _, slots = await hospital.session(starts=[(10, 0), (10, 30)], capacity=3)
    alice = await hospital.patient(server.url, name="李四")
    bob = await hospital.patient(server.url, name="王五")
    booked = await alice.client.execute(BOOK, {"patientId": alice.patient_id, "slotId": slots[0]})
    return Scene(hospital, alice, bob, slots[1], booked["bookAppointment"]["registration"]["id"])


async def _error_codes(client: GraphQLClient, query: str, variables: dict[str, Any] | None = None) -> list[str]:
    with pytest.raises(GraphQLError) as refused:
        await client.execute(query, variables)
    return refused.value.codes


async def test_another_accounts_patient_card_and_registration_read_as_not_found(scene: Scene) -> None:
    bob, alice = scene.bob.client, scene.alice
    assert (await bob.execute(PATIENT, {"id": alice.patient_id}))["me"]["patient"] is None
    assert (await bob.execute(REGISTRATION, {"id": scene.alice_registration}))["me"]["registration"] is None
    assert await _error_codes(bob, HOSPITAL_CARDS, {"patientId": alice.patient_id}) == ["NOT_FOUND"]
    # The owner sees all three, so the refusals above are about ownership, not missing data.
    assert (await alice.client.execute(PATIENT, {"id": alice.patient_id}))["me"]["patient"]["id"] == alice.patient_id
    mine = await alice.client.execute(REGISTRATION, {"id": scene.alice_registration})
    assert mine["me"]["registration"]["status"] == "BOOKED"
    assert (
        len((await alice.client.execute(HOSPITAL_CARDS, {"patientId": alice.patient_id}))["me"]["hospitalCards"]) == 1
    )


async def test_mutations_on_another_accounts_patient_or_registration_answer_not_found(scene: Scene) -> None:
    bob, alice = scene.bob.client, scene.alice
    alice_ref = (await alice.client.execute(HOSPITAL_CARDS, {"patientId": alice.patient_id}))["me"]["hospitalCards"][0]
    attempts = {
        "updatePatient": (UPDATE_PATIENT, {"id": alice.patient_id}),
        "removePatient": (REMOVE_PATIENT, {"id": alice.patient_id}),
        "bindMedicalCard": (BIND_CARD, {"id": alice.patient_id, "ref": alice_ref["ref"]}),
        "createHospitalRecord": (CREATE_RECORD, {"id": alice.patient_id}),
        "bookAppointment": (BOOK_FOR, {"id": alice.patient_id, "slot": scene.slot_id}),
        "checkIn": (CHECK_IN, {"id": scene.alice_registration, "location": AT_CAMPUS}),
        "cancelRegistration": (CANCEL, {"id": scene.alice_registration}),
    }
    outcomes = {field: (await bob.execute(query, variables))[field] for field, (query, variables) in attempts.items()}
    # Bob cannot bind Alice's card to his own patient either: it is not under his patient's name.
    stolen = (await bob.execute(BIND_CARD, {"id": scene.bob.patient_id, "ref": alice_ref["ref"]}))["bindMedicalCard"]

    assert outcomes == {field: {"__typename": "NotFoundError", "code": "NOT_FOUND"} for field in attempts}
    assert stolen == {"__typename": "NotFoundError", "code": "NOT_FOUND"}
    still = await alice.client.execute(REGISTRATION, {"id": scene.alice_registration})
    assert still["me"]["registration"]["status"] == "BOOKED"
    assert (await alice.client.execute(MY_PATIENTS))["me"]["patients"] == [{"id": alice.patient_id}]


async def test_subscribing_to_another_accounts_queue_is_refused_as_not_found(scene: Scene) -> None:
    with pytest.raises(GraphQLError) as refused:
        async with scene.bob.client.subscribe(QUEUE_UPDATES, {"registrationId": scene.alice_registration}) as updates:
            await next_position(updates)
    assert refused.value.codes == ["NOT_FOUND"]


async def test_anonymous_callers_must_log_in(server: LiveServer, scene: Scene) -> None:
    anonymous = server.client()
    assert await _error_codes(anonymous, MY_PATIENTS) == ["UNAUTHENTICATED"]
    booking = {"id": scene.alice.patient_id, "slot": scene.slot_id}
    assert await _error_codes(anonymous, BOOK_FOR, booking) == ["UNAUTHENTICATED"]
    with pytest.raises(GraphQLError) as refused:
        async with anonymous.subscribe(QUEUE_UPDATES, {"registrationId": scene.alice_registration}) as updates:
            await next_position(updates)
    assert refused.value.codes == ["UNAUTHENTICATED"]


async def test_a_doctor_cannot_book_for_a_patient(server: LiveServer, scene: Scene) -> None:
    doctor = await doctor_client(server, scene.hospital)
    with pytest.raises(GraphQLError) as refused:
        await doctor.execute(BOOK_FOR, {"id": scene.alice.patient_id, "slot": scene.slot_id})
    assert refused.value.codes == ["FORBIDDEN"]
    assert "role" in refused.value.errors[0]["message"]


async def test_invalid_logged_out_and_expired_tokens_are_refused_with_the_reason(
    server: LiveServer, scene: Scene, clock: FixedClock
) -> None:
    forged = GraphQLClient(server.url, "not-a-token-we-issued")
    with pytest.raises(GraphQLError) as invalid:
        await forged.execute(MY_PATIENTS)
    assert invalid.value.codes == ["UNAUTHENTICATED"]
    assert "not valid" in str(invalid.value)

    assert (await scene.bob.client.execute(LOGOUT))["logout"] == {"ok": True}
    with pytest.raises(GraphQLError) as logged_out:
        await scene.bob.client.execute(MY_PATIENTS)
    assert logged_out.value.codes == ["UNAUTHENTICATED"]
    assert "logged out" in str(logged_out.value)

    clock.advance(seconds=server.deps.sessions.idle.total_seconds() + 1)
    with pytest.raises(GraphQLError) as expired:
        await scene.alice.client.execute(MY_PATIENTS)
    assert expired.value.codes == ["UNAUTHENTICATED"]
    assert "expired" in str(expired.value)


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
async def test_a_websocket_with_a_bad_token_is_rejected_at_connection_init(
    server: LiveServer, scene: Scene, protocol: str
) -> None:
    forged = GraphQLClient(server.url, "not-a-token-we-issued")
    with pytest.raises((GraphQLError, websockets.ConnectionClosed)) as rejected:
        async with forged.subscribe(
            QUEUE_UPDATES, {"registrationId": scene.alice_registration}, protocol=protocol
        ) as updates:
            await next_position(updates)
    if isinstance(rejected.value, websockets.ConnectionClosed):
        assert rejected.value.rcvd is not None and rejected.value.rcvd.code == 4403
    else:
        assert "connection refused" in str(rejected.value)
