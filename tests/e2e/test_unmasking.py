"""Masked by default; unmasked only for a permitted role and purpose, and every such read audited."""

from __future__ import annotations

from clients.reference import GraphQLClient, GraphQLError
from tests.conftest import LiveServer
from tests.factories import ADD_PATIENT, Hospital, complete_patient, resident_id

MINE = "{ me { patients { id address addressDetail } } }"
UNMASKED = """
query ($purpose: RevealPurpose!) {
  me { patients { unmasked(purpose: $purpose) { name documentNumber phone address addressDetail cardNumbers } } }
}"""
RECORD = """
query ($id: ID!, $purpose: RevealPurpose!) {
  patientRecord(id: $id) { name documentNumber unmasked(purpose: $purpose) { documentNumber phone } }
}"""
RECORD_MASKED = "query ($id: ID!) { patientRecord(id: $id) { name documentNumber phone address } }"


async def _unmasked_reads(server: LiveServer) -> list[tuple[str, str, str]]:
    events = await server.deps.audit.read(server.deps.db, action="personal_data.unmasked")
    return [(e.actor_role, e.target_id, e.detail["purpose"]) for e in events]


async def _patient(server: LiveServer) -> tuple[GraphQLClient, str, str]:
    hospital = Hospital(server.deps.db, server.deps.clock)
    client, _token, _ = await hospital.login(server.url)
    number = resident_id("19660606")
    added = await client.execute(ADD_PATIENT, {"input": complete_patient("王芳", documentNumber=number)})
    return client, added["addPatient"]["patient"]["id"], number


async def test_a_patient_sees_their_own_record_in_full_only_to_correct_it_and_it_is_audited(server: LiveServer) -> None:
    client, patient_id, number = await _patient(server)
    [masked] = (await client.execute(MINE))["me"]["patients"]
    assert masked["address"] == "广东省广州市越秀区" and masked["addressDetail"] == "****"  # district: nothing to hide
    assert await _unmasked_reads(server) == []

    [full] = [p["unmasked"] for p in (await client.execute(UNMASKED, {"purpose": "SELF_SERVICE"}))["me"]["patients"]]
    assert full == {
        "name": "王芳",
        "documentNumber": number,
        "phone": "13800138000",
        "address": "广东省广州市越秀区",
        "addressDetail": "中山路 1 号",
        "cardNumbers": [],
    }
    assert await _unmasked_reads(server) == [("PATIENT", patient_id, "SELF_SERVICE")]

    try:
        await client.execute(UNMASKED, {"purpose": "CUSTOMER_SERVICE"})
        raise AssertionError("a patient cannot claim an operator's purpose")
    except GraphQLError as refused:
        assert refused.codes == ["FORBIDDEN"] and "SELF_SERVICE" in str(refused)
    assert len(await _unmasked_reads(server)) == 1  # a refused read leaves no record and shows nothing


async def test_operators_need_the_unmask_permission_and_a_purpose_of_theirs(server: LiveServer) -> None:
    _client, patient_id, number = await _patient(server)
    reader = await Hospital(server.deps.db, server.deps.clock).operator(server.url, "reader", ["patients.read"])
    masked = (await reader.execute(RECORD_MASKED, {"id": patient_id}))["patientRecord"]
    assert masked == {
        "name": "王*",
        "documentNumber": number[:3] + "******" + number[-2:],
        "phone": "138****8000",
        "address": "广东省广州市越秀区",
    }
    for client, purpose in ((reader, "CUSTOMER_SERVICE"),):
        try:
            await client.execute(RECORD, {"id": patient_id, "purpose": purpose})
            raise AssertionError("patients.read alone does not unmask")
        except GraphQLError as refused:
            assert refused.codes == ["FORBIDDEN"] and "personal_data.unmask" in str(refused)

    service = await Hospital(server.deps.db, server.deps.clock).operator(
        server.url, "service", ["patients.read", "personal_data.unmask"]
    )
    try:
        await service.execute(RECORD, {"id": patient_id, "purpose": "SELF_SERVICE"})
        raise AssertionError("an operator cannot claim the patient's purpose")
    except GraphQLError as refused:
        assert refused.codes == ["FORBIDDEN"]
    record = (await service.execute(RECORD, {"id": patient_id, "purpose": "CUSTOMER_SERVICE"}))["patientRecord"]
    assert record["unmasked"] == {"documentNumber": number, "phone": "13800138000"}
    assert record["name"] == "王*"  # the rest of the answer stays masked
    assert await _unmasked_reads(server) == [("OPERATOR", patient_id, "CUSTOMER_SERVICE")]

    patient_view = Hospital(server.deps.db, server.deps.clock)
    other, _t, _ = await patient_view.login(server.url)
    try:
        await other.execute(RECORD_MASKED, {"id": patient_id})
        raise AssertionError("patients cannot use the console's lookup")
    except GraphQLError as refused:
        assert refused.codes == ["FORBIDDEN"]
