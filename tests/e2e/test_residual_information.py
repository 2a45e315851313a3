"""Residual information (等保三级 剩余信息保护): personal data cached for an account is dropped at
logout, and a removed patient's personal data is overwritten in the BFF's tables, not just hidden."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select, text
from sqlmodel import col

from datasources.store.models import MedicalCardBinding, Patient
from resolvers import cache_keys
from tests.conftest import DatabaseTarget, LiveServer
from tests.factories import ADD_PATIENT, Hospital, complete_patient, resident_id

MY_PATIENTS = "{ me { patients { id name cards { cardNo } } } }"
LOGOUT = "mutation { logout { ok } }"
REMOVE = "mutation ($id: ID!) { removePatient(input: {patientId: $id}) { __typename ... on UserError { code } } }"


async def test_logout_drops_the_personal_data_cached_for_the_account(server: LiveServer) -> None:
    hospital = Hospital(server.deps.db, server.deps.clock)
    patient = await hospital.patient(server.url)
    account_id, patient_id = int(patient.account_id), int(patient.patient_id)
    seen = (await patient.client.execute(MY_PATIENTS))["me"]["patients"]
    assert seen[0]["cards"]
    cache = server.deps.cache
    personal = [cache_keys.patients(account_id), cache_keys.cards(patient_id)]
    assert all(cache.get(key) is not cache.MISSING for key in personal)
    assert (await patient.client.execute(LOGOUT))["logout"]["ok"] is True
    assert all(cache.get(key) is cache.MISSING for key in personal)


async def _rows(server: LiveServer, patient_id: int) -> tuple[Patient, list[MedicalCardBinding]]:
    async with server.deps.db.reading() as s:
        patient = await s.get(Patient, patient_id)
        bindings = (
            (await s.execute(select(MedicalCardBinding).where(col(MedicalCardBinding.patient_id) == patient_id)))
            .scalars()
            .all()
        )
    assert patient is not None
    return patient, list(bindings)


def _values(patient: Patient, bindings: list[MedicalCardBinding]) -> set[str]:
    rows = [patient.model_dump(), *(b.model_dump() for b in bindings)]
    return {str(v) for row in rows for v in row.values() if v not in (None, "")}


async def test_a_removed_patient_leaves_no_ciphertext_or_index_of_their_data_and_can_be_added_again(
    server: LiveServer,
) -> None:
    hospital = Hospital(server.deps.db, server.deps.clock)
    handle = await hospital.patient(server.url)
    patient_id = int(handle.patient_id)
    before, cards_before = await _rows(server, patient_id)
    secrets = {
        before.document_number_enc,
        before.document_number_index,
        before.phone_enc,
        before.phone_index,
        before.name,
        before.address,
        before.address_detail,
        *(b.card_no_enc for b in cards_before),
        *(b.card_no_index for b in cards_before),
    }
    assert cards_before and all(secrets)

    removed = (await handle.client.execute(REMOVE, {"id": handle.patient_id}))["removePatient"]
    assert removed["__typename"] == "PatientRemoved"

    after, cards_after = await _rows(server, patient_id)
    assert (after.id, after.account_id, after.his_patient_id) == (before.id, before.account_id, before.his_patient_id)
    assert after.removed_at is not None
    assert [b.id for b in cards_after] == [b.id for b in cards_before]
    assert not secrets & _values(after, cards_after)
    assert (after.document_number_enc, after.phone_enc, after.address, after.birth_date) == ("", None, None, None)
    assert all(b.card_no_enc == "" for b in cards_after)

    again = complete_patient(handle.name, documentNumber=handle.document_number)
    readded = (await handle.client.execute(ADD_PATIENT, {"input": again}))["addPatient"]
    assert readded["__typename"] == "PatientSaved"


async def test_on_sqlite_the_overwritten_values_are_not_left_in_the_database_file(
    server: LiveServer, database: DatabaseTarget
) -> None:
    if database.backend != "sqlite":
        return  # PostgreSQL keeps old row versions until VACUUM; that is the server's to configure
    hospital = Hospital(server.deps.db, server.deps.clock)
    client, _, _ = await hospital.login(server.url)
    data = complete_patient("残留测", documentNumber=resident_id(), addressDetail="剩余信息路 77 号")
    added = (await client.execute(ADD_PATIENT, {"input": data}))["addPatient"]
    patient_id = int(added["patient"]["id"])
    before, _ = await _rows(server, patient_id)
    traces = [before.document_number_enc, before.phone_enc or "", "剩余信息路 77 号", "残留测"]
    assert _in_file(database, traces) == traces  # the check below can see them
    assert (await client.execute(REMOVE, {"id": str(patient_id)}))["removePatient"]["__typename"] == "PatientRemoved"
    async with server.deps.db.engine.connect() as conn:
        await conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    assert _in_file(database, traces) == []


def _in_file(database: DatabaseTarget, traces: list[str]) -> list[str]:
    """Which of ``traces`` the database's files (main, WAL) hold, byte for byte."""
    path = Path(database.url.split("///", 1)[1])
    stored = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    return [t for t in traces if t.encode() in stored]
