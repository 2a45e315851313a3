"""就诊人: adding, completing, masking, and binding the hospital's medical cards."""

from __future__ import annotations

from sqlalchemy import text

from datasources.his.contract import PatientRecordInput
from tests.conftest import LiveServer
from tests.factories import ADD_PATIENT, CREATE_RECORD, Hospital, complete_patient, resident_id

PATIENTS = "{ me { patients { id name documentNumber phone gender birthDate nationality missingFields isComplete cards { cardNo } } } }"
UPDATE = """
mutation ($input: UpdatePatientInput!) {
  updatePatient(input: $input) {
    __typename
    ... on PatientSaved { patient { id missingFields isComplete } }
    ... on UserError { code message }
  }
}"""
REMOVE = "mutation ($id: ID!) { removePatient(input: {patientId: $id}) { __typename ... on UserError { code } } }"
CARDS = "query ($id: ID!) { me { hospitalCards(patientId: $id) { ref cardNo cardType } } }"
BIND = """
mutation ($id: ID!, $ref: String!) {
  bindMedicalCard(input: {patientId: $id, cardRef: $ref}) {
    __typename
    ... on MedicalCardBound { card { cardNo } patient { hasHospitalRecord } }
    ... on MissingPatientInformationError { fields }
    ... on NotAllowedError { reason }
    ... on UserError { code message }
  }
}"""


async def _account(server: LiveServer):  # type: ignore[no-untyped-def]
    hospital = Hospital(server.deps.db, server.deps.clock)
    client, _token, _account_id = await hospital.login(server.url)
    return hospital, client


async def test_a_resident_id_gives_gender_and_birth_date_and_every_output_is_masked(server: LiveServer) -> None:
    _, client = await _account(server)
    number = resident_id("19850612", male=False)
    added = (await client.execute(ADD_PATIENT, {"input": complete_patient("李四", documentNumber=number)}))["addPatient"]
    assert added["__typename"] == "PatientSaved"
    [patient] = (await client.execute(PATIENTS))["me"]["patients"]
    assert patient["name"] == "李*"
    assert patient["documentNumber"] == number[:3] + "******" + number[-2:]
    assert patient["phone"] == "138****8000"
    assert (patient["gender"], patient["birthDate"], patient["nationality"]) == ("FEMALE", "1985-06-12", "CHN")
    assert patient["missingFields"] == [] and patient["isComplete"] is True


async def test_personal_data_is_encrypted_at_rest(server: LiveServer) -> None:
    _, client = await _account(server)
    number = resident_id()
    await client.execute(ADD_PATIENT, {"input": complete_patient(documentNumber=number, phone="13912345678")})
    async with server.deps.db.reading() as s:
        row = (await s.execute(text("SELECT document_number_enc, phone_enc FROM patient"))).one()
    assert number not in row[0] and "13912345678" not in row[1]
    assert row[0].startswith("enc1:")


async def test_a_wrong_id_number_is_refused_naming_the_field(server: LiveServer) -> None:
    _, client = await _account(server)
    good = resident_id()
    bad = good[:-1] + ("0" if good[-1] != "0" else "1")
    result = (await client.execute(ADD_PATIENT, {"input": complete_patient(documentNumber=bad)}))["addPatient"]
    assert result["__typename"] == "InvalidInputError"
    assert result["field"] == "documentNumber"
    assert (await client.execute(PATIENTS))["me"]["patients"] == []


async def test_a_foreign_national_registers_with_a_passport_and_nationality(server: LiveServer) -> None:
    _, client = await _account(server)
    no_country = complete_patient("John Smith", documentType="PASSPORT", documentNumber="E12345678", gender="MALE",
                                  birthDate="1970-01-01")
    refused = (await client.execute(ADD_PATIENT, {"input": no_country}))["addPatient"]
    assert refused["__typename"] == "InvalidInputError" and refused["field"] == "nationality"
    added = (await client.execute(ADD_PATIENT, {"input": {**no_country, "nationality": "GBR"}}))["addPatient"]
    assert added["__typename"] == "PatientSaved"
    assert added["patient"]["missingFields"] == []


async def test_an_incomplete_record_lists_what_is_missing_and_cannot_bind_a_card_until_completed(
    server: LiveServer,
) -> None:
    _, client = await _account(server)
    data = {"name": "张小三", "relationship": "CHILD", "documentType": "RESIDENT_ID",
            "documentNumber": resident_id("20180808")}
    patient = (await client.execute(ADD_PATIENT, {"input": data}))["addPatient"]["patient"]
    assert patient["missingFields"] == ["phone", "ethnicity", "occupation", "address", "addressDetail"]
    refused = (await client.execute(CREATE_RECORD, {"patientId": patient["id"]}))["createHospitalRecord"]
    assert refused["__typename"] == "MissingPatientInformationError"
    completed = (await client.execute(UPDATE, {"input": {
        "patientId": patient["id"], "phone": "13700000000", "ethnicity": "汉族", "occupation": "学生",
        "address": "广州市", "addressDetail": "1 号"}}))["updatePatient"]
    assert completed["patient"]["isComplete"] is True
    created = (await client.execute(CREATE_RECORD, {"patientId": patient["id"]}))["createHospitalRecord"]
    assert created["__typename"] == "MedicalCardBound"


async def test_cards_the_hospital_already_holds_are_found_by_name_and_id_and_bound(server: LiveServer) -> None:
    _, client = await _account(server)
    number = resident_id()
    desk_card = await server.deps.sources.his.create_record(PatientRecordInput(
        name="张三", document_type="RESIDENT_ID", document_number=number, gender="MALE", birth_date=None,
        phone=None, nationality="CHN", address=None))
    patient = (await client.execute(ADD_PATIENT, {"input": complete_patient(documentNumber=number)}))["addPatient"]
    pid = patient["patient"]["id"]
    again = (await client.execute(CREATE_RECORD, {"patientId": pid}))["createHospitalRecord"]
    assert again["__typename"] == "NotAllowedError"
    [card] = (await client.execute(CARDS, {"id": pid}))["me"]["hospitalCards"]
    assert card["cardNo"].endswith(desk_card.card_no[-4:]) and desk_card.card_no not in card["cardNo"]
    bound = (await client.execute(BIND, {"id": pid, "ref": card["ref"]}))["bindMedicalCard"]
    assert bound["__typename"] == "MedicalCardBound"
    assert bound["patient"]["hasHospitalRecord"] is True
    twice = (await client.execute(BIND, {"id": pid, "ref": card["ref"]}))["bindMedicalCard"]
    assert twice == {"__typename": "NotAllowedError", "reason": "ALREADY_BOUND", "code": "NOT_ALLOWED",
                     "message": twice["message"]}


async def test_a_card_under_another_name_cannot_be_bound(server: LiveServer) -> None:
    _, client = await _account(server)
    number = resident_id()
    patient = (await client.execute(ADD_PATIENT, {"input": complete_patient("王五", documentNumber=number)}))
    pid = patient["addPatient"]["patient"]["id"]
    await server.deps.sources.his.create_record(PatientRecordInput(
        name="王武", document_type="RESIDENT_ID", document_number=number, gender=None, birth_date=None,
        phone=None, nationality=None, address=None))
    assert (await client.execute(CARDS, {"id": pid}))["me"]["hospitalCards"] == []
    forged = (await client.execute(BIND, {"id": pid, "ref": "0" * 32}))["bindMedicalCard"]
    assert forged["__typename"] == "NotFoundError"


async def test_the_same_person_cannot_be_added_twice_and_removing_frees_the_place(server: LiveServer) -> None:
    _, client = await _account(server)
    data = complete_patient()
    first = (await client.execute(ADD_PATIENT, {"input": data}))["addPatient"]
    twice = (await client.execute(ADD_PATIENT, {"input": data}))["addPatient"]
    assert twice["__typename"] == "NotAllowedError"
    removed = (await client.execute(REMOVE, {"id": first["patient"]["id"]}))["removePatient"]
    assert removed["__typename"] == "PatientRemoved"
    assert (await client.execute(PATIENTS))["me"]["patients"] == []
    assert (await client.execute(ADD_PATIENT, {"input": data}))["addPatient"]["__typename"] == "PatientSaved"


async def test_only_one_patient_can_be_the_account_holder(server: LiveServer) -> None:
    _, client = await _account(server)
    await client.execute(ADD_PATIENT, {"input": complete_patient()})
    second = (await client.execute(ADD_PATIENT, {"input": complete_patient("李四", documentNumber=resident_id())}))
    assert second["addPatient"]["__typename"] == "NotAllowedError"
