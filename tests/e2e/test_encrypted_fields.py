"""Sensitive fields travelling encrypted: a per-request SM4/AES data key wrapped with the server's RSA-OAEP key."""

from __future__ import annotations

import json

import httpx
import pytest

from clients.envelope import Envelope
from datasources.crypto.primitives import SealAlgorithm
from tests.conftest import LiveServer
from tests.factories import ADD_PATIENT, Hospital, complete_patient, resident_id

PATIENTS = "{ me { patients { name documentNumber phone } } }"


async def _transport_key(server: LiveServer) -> dict[str, str]:
    async with httpx.AsyncClient() as http:
        key: dict[str, str] = (await http.get(server.url + "/security/transport-key")).json()
    return key


async def _post(server: LiveServer, token: str, envelope: Envelope, body: dict) -> httpx.Response:  # type: ignore[type-arg]
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json", **envelope.headers()}
    async with httpx.AsyncClient() as http:
        return await http.post(server.url + "/graphql", content=json.dumps(body).encode(), headers=headers)


@pytest.mark.parametrize("algorithm", ["SM4GCM", "A256GCM"])
async def test_an_id_number_travels_sealed_both_ways(server: LiveServer, algorithm: SealAlgorithm) -> None:
    hospital = Hospital(server.deps.db, server.deps.clock)
    _client, token, _ = await hospital.login(server.url)
    key = await _transport_key(server)
    assert key["algorithm"] == "RSA-OAEP-2048" and "PUBLIC KEY" in key["publicKeyPem"]

    envelope = Envelope.new(key["publicKeyPem"], key["kid"], algorithm)
    number = resident_id("19800101")
    patient = complete_patient("张三", documentNumber=envelope.seal(number, "input.documentNumber"))
    added = await _post(server, token, envelope, {"query": ADD_PATIENT, "variables": {"input": patient}})
    assert added.status_code == 200 and added.json()["data"]["addPatient"]["__typename"] == "PatientSaved"

    listed = await _post(server, token, envelope, {"query": PATIENTS})
    data = listed.json()["data"]
    sealed = data["me"]["patients"][0]
    assert sealed["documentNumber"].startswith("enc:") and sealed["phone"].startswith("enc:")
    assert number[:3] not in listed.text
    assert sealed["name"] == "张*"  # not a sensitive field: plain (and masked as always)
    opened = envelope.open_response(data)["me"]["patients"][0]
    assert opened["documentNumber"] == number[:3] + "******" + number[-2:]  # masking still applies
    assert opened["phone"] == "138****8000"


async def test_a_sealed_value_moved_to_another_field_or_key_is_refused(server: LiveServer) -> None:
    hospital = Hospital(server.deps.db, server.deps.clock)
    _client, token, _ = await hospital.login(server.url)
    key = await _transport_key(server)
    envelope = Envelope.new(key["publicKeyPem"], key["kid"])
    moved = complete_patient(phone=envelope.seal("13800138000", "input.documentNumber"))
    refused = await _post(server, token, envelope, {"query": ADD_PATIENT, "variables": {"input": moved}})
    assert refused.status_code == 400
    [error] = refused.json()["errors"]
    assert error["extensions"]["code"] == "ENCRYPTION_INVALID" and "input.phone" in error["message"]

    other = Envelope.new(key["publicKeyPem"], key["kid"])  # another data key
    foreign = complete_patient(documentNumber=other.seal(resident_id(), "input.documentNumber"))
    refused = await _post(server, token, envelope, {"query": ADD_PATIENT, "variables": {"input": foreign}})
    assert refused.status_code == 400

    unknown = Envelope(envelope.algorithm, envelope.data_key, "transport-9", envelope.wrapped)
    refused = await _post(server, token, unknown, {"query": PATIENTS})
    assert refused.status_code == 400 and "transport-9" in refused.json()["errors"][0]["message"]
    async with server.deps.db.reading() as s:
        from sqlalchemy import text

        assert (await s.execute(text("SELECT count(*) FROM patient"))).scalar() == 0  # nothing half-written
