"""Managed keys: rotating the field key and switching AES → SM4 never breaks stored personal data."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import text

from bff.keys import open_keyring
from bff.settings import Settings
from datasources.crypto.primitives import CryptoError
from datasources.store.fieldcrypt import FieldCipher
from datasources.store.keyring import FIELD, MasterKey
from datasources.store.reencrypt import reencrypt, values_by_key
from tests.conftest import LiveServer
from tests.factories import ADD_PATIENT, Hospital, complete_patient, resident_id

PATIENTS = "{ me { patients { name documentNumber phone } } }"


async def _rows(server: LiveServer) -> list[tuple[str, str]]:
    async with server.deps.db.reading() as s:
        return [
            tuple(r) for r in (await s.execute(text("SELECT document_number_enc, phone_enc FROM patient ORDER BY id")))
        ]


def _kid_alg(token: str) -> tuple[str, str]:
    _, kid, alg, _ = token.split(":", 3)
    return kid, alg


async def test_rotate_switch_to_sm4_reencrypt_and_retire_while_serving(server: LiveServer) -> None:
    hospital = Hospital(server.deps.db, server.deps.clock)
    client, _token, _ = await hospital.login(server.url)
    first, second = resident_id("19700101"), resident_id("19900202", male=False)
    await client.execute(ADD_PATIENT, {"input": complete_patient("张三", documentNumber=first, phone="13900000001")})
    [(old_doc, _)] = await _rows(server)
    assert _kid_alg(old_doc) == ("k1", "A256GCM")

    keyring = server.deps.cipher.keyring
    await keyring.rotate(FIELD, "SM4GCM")
    added = await client.execute(
        ADD_PATIENT,
        {"input": complete_patient("王五", relationship="PARENT", documentNumber=second, phone="13900000002")},
    )
    assert added["addPatient"]["__typename"] == "PatientSaved"
    rows = await _rows(server)
    assert [_kid_alg(doc) for doc, _ in rows] == [("k1", "A256GCM"), ("field-2", "SM4GCM")]

    expected = [
        {"name": "张*", "documentNumber": first[:3] + "******" + first[-2:], "phone": "139****0001"},
        {"name": "王*", "documentNumber": second[:3] + "******" + second[-2:], "phone": "139****0002"},
    ]
    assert (await client.execute(PATIENTS))["me"]["patients"] == expected  # old and new rows both read

    # The blind index did not move: the same person cannot be added twice, whichever key sealed them.
    again = await client.execute(ADD_PATIENT, {"input": complete_patient("张三", documentNumber=first)})
    assert again["addPatient"]["__typename"] != "PatientSaved"

    report = await reencrypt(server.deps.db, server.deps.cipher, batch_size=1)
    assert report.rewritten["patient.document_number_enc"] == 1 and report.rewritten["patient.phone_enc"] == 1
    assert all(_kid_alg(doc)[0] == _kid_alg(phone)[0] == "field-2" for doc, phone in await _rows(server))
    assert (await reencrypt(server.deps.db, server.deps.cipher)).total == 0  # idempotent
    assert (await client.execute(PATIENTS))["me"]["patients"] == expected

    used = await values_by_key(server.deps.db)
    assert used["k1"] == 0 and used["field-2"] == 4
    await keyring.retire("k1", still_used=used["k1"])
    assert (await client.execute(PATIENTS))["me"]["patients"] == expected
    with pytest.raises(CryptoError, match="unknown or retired"):
        server.deps.cipher.decrypt(old_doc, context="patient.document_number")


async def test_a_key_still_sealing_data_is_never_retired(server: LiveServer) -> None:
    hospital = Hospital(server.deps.db, server.deps.clock)
    client, _token, _ = await hospital.login(server.url)
    await client.execute(ADD_PATIENT, {"input": complete_patient(documentNumber=resident_id())})
    keyring = server.deps.cipher.keyring
    with pytest.raises(CryptoError, match="active FIELD key"):
        await keyring.retire("k1", still_used=0)
    await keyring.rotate(FIELD)
    used = await values_by_key(server.deps.db)
    with pytest.raises(CryptoError, match="run the re-encryption job first"):
        await keyring.retire("k1", still_used=used["k1"])


async def test_values_written_before_keys_were_managed_stay_readable(server: LiveServer) -> None:
    """The first releases derived the field key from the master key (HKDF, kid k1): taken over as is."""
    master = b"k" * 32  # the tests' MASTER_KEY
    legacy = AESGCM(HKDF(hashes.SHA256(), 32, None, b"field-encryption:k1").derive(master))
    nonce = b"\x01" * 12
    token = (
        "enc1:k1:A256GCM:"
        + base64.urlsafe_b64encode(
            nonce + legacy.encrypt(nonce, b"110101199003070011", b"patient.document_number")
        ).decode()
    )
    assert server.deps.cipher.decrypt(token, context="patient.document_number") == "110101199003070011"


async def test_key_material_is_stored_only_wrapped_and_never_shown(server: LiveServer) -> None:
    keyring = server.deps.cipher.keyring
    async with server.deps.db.reading() as s:
        stored = " ".join(r[0] for r in await s.execute(text("SELECT wrapped FROM managed_key")))
    for key in keyring.keys():
        material = key.material
        for form in (material.hex(), base64.b64encode(material).decode(), base64.urlsafe_b64encode(material).decode()):
            assert form not in stored
        assert material.hex() not in repr(key) and str(material) not in repr(key)


async def test_another_master_key_is_refused_with_what_to_do(server: LiveServer, settings) -> None:  # type: ignore[no-untyped-def]
    other = settings.model_copy(update={"master_key": base64.b64encode(b"x" * 32).decode()})
    with pytest.raises(CryptoError, match="set MASTER_KEY to the master key this database was created with"):
        await open_keyring(other, server.deps.db, server.deps.clock)
    assert MasterKey(b"x" * 32).kek_id != MasterKey(b"k" * 32).kek_id
    assert hashlib.sha256(b"k" * 32).hexdigest()[:12] != MasterKey(b"k" * 32).kek_id  # the id reveals nothing


async def test_a_value_moved_to_another_column_does_not_open(server: LiveServer) -> None:
    cipher: FieldCipher = server.deps.cipher
    token = cipher.encrypt("13812345678", context="patient.phone")
    with pytest.raises(CryptoError):
        cipher.decrypt(token, context="patient.document_number")


async def test_the_command_line_rotates_reencrypts_and_retires_and_each_step_is_audited(
    server: LiveServer, settings: Settings, tmp_path: Path
) -> None:
    hospital = Hospital(server.deps.db, server.deps.clock)
    client, _token, _ = await hospital.login(server.url)
    number = resident_id("19881111")
    await client.execute(ADD_PATIENT, {"input": complete_patient("赵六", documentNumber=number)})
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "MASTER_KEY": settings.master_key or "",
        "DATA_DIR": str(tmp_path),
    }
    if settings.database_schema:
        env["DATABASE_SCHEMA"] = settings.database_schema

    def keys(*args: str, code: int = 0) -> str:
        done = subprocess.run(  # noqa: S603 - our own module, fixed arguments
            [sys.executable, "-m", "bff.keys", *args], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == code, done.stderr
        return done.stdout + done.stderr

    env["FIELD_ENCRYPTION_ALGORITHM"] = "SM4GCM"  # the switch is the setting: the first process opening it rotates
    assert "field-2 (SM4GCM) is active" in keys("rotate", "FIELD")
    assert "2 values rewritten" in keys("reencrypt")
    assert "active FIELD key" in keys("retire", "field-2", code=1)
    assert "FIELD_ENCRYPTION_ALGORITHM=A256GCM" in keys("rotate", "FIELD", "--algorithm", "A256GCM", code=2)
    assert "k1 retired" in keys("retire", "k1")
    assert "PRIVATE" not in keys("list") and base64.b64encode(b"k" * 32).decode() not in keys("list")
    await server.deps.cipher.keyring.refresh()  # at once through Redis; within KEYRING_REFRESH_SECONDS without
    [patient] = (await client.execute(PATIENTS))["me"]["patients"]
    assert patient["documentNumber"] == number[:3] + "******" + number[-2:]
    actions = [(e.actor_role, e.action, e.target_id) for e in await server.deps.audit.read(server.deps.db)]
    assert [a for a in actions if a[1].startswith("key.")] == [
        ("SYSTEM", "key.rotated", "field-2"),
        ("ADMIN_CLI", "key.reencrypted", "field-2"),
        ("ADMIN_CLI", "key.retired", "k1"),
    ]
