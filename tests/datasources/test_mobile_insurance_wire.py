"""The mobile insurance payment 2.0 envelope: SM4 ``encData`` and SM2 ``signData`` as the platform's SDK
makes them, checked against an independent implementation (gmssl) and against tampering."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime

import pytest
from gmssl import sm2, sm4

from datasources.crypto.primitives import generate_signing_key, sm2_public_point
from datasources.mobile_insurance import wire

APP_ID = "0F0822652EB7CB91A644E638FBE9941E"
APP_SECRET = "30BFE2B0C715E516E5EDF21E289DA826"


def parties() -> tuple[wire.Party, wire.Party]:
    hospital_key, platform_key = generate_signing_key("SM2-SM3"), generate_signing_key("SM2-SM3")
    hospital = wire.Party(APP_ID, APP_SECRET, hospital_key, platform_key.public_key())  # type: ignore[arg-type]
    platform = wire.Party(APP_ID, APP_SECRET, platform_key, hospital_key.public_key())  # type: ignore[arg-type]
    return hospital, platform


DATA = {
    "payAuthNo": "AUTH0001",
    "userName": "张三",
    "medfeeSumamt": "12.50",
    "acctUsedFlag": 1,
    "remark": "",
    "feedetailList": [{"pric": "12.50", "feedetlSn": "1", "cnt": "1"}],
    "diseinfoList": [],
}


def test_signing_string_sorts_skips_empty_and_appends_the_secret() -> None:
    fields = {
        "version": "2.0.1",
        "appId": "A",
        "timestamp": "1700000000",
        "encType": "SM4",
        "signType": "SM2",
        "extra": "x",
        "signData": "s",
        "empty": "",
    }
    text = wire.signing_string(fields, DATA, "SECRET")
    assert text == (
        'appId=A&data={"acctUsedFlag":"1","feedetailList":[{"cnt":"1","feedetlSn":"1","pric":"12.50"}],'
        '"medfeeSumamt":"12.50","payAuthNo":"AUTH0001","userName":"张三"}'
        "&encType=SM4&signType=SM2&timestamp=1700000000&version=2.0.1&key=SECRET"
    )


def test_envelope_decrypts_with_gmssl_and_its_signature_verifies_with_gmssl() -> None:
    hospital, platform = parties()
    envelope = wire.seal(hospital, DATA, 1700000000)
    assert set(envelope) == {"appId", "encType", "encData", "signType", "signData", "timestamp", "version"}

    # SM4: the key as the SDK derives it, the ciphertext as gmssl decrypts it.
    derive = sm4.CryptSM4()
    derive.set_key(APP_ID[:16].encode(), sm4.SM4_ENCRYPT)
    key = binascii.hexlify(derive.crypt_ecb(APP_SECRET.encode())).decode().upper()[:16].encode()
    assert key == wire.sm4_key(APP_ID, APP_SECRET)
    decrypt = sm4.CryptSM4()
    decrypt.set_key(key, sm4.SM4_DECRYPT)
    assert json.loads(decrypt.crypt_ecb(binascii.unhexlify(envelope["encData"]))) == DATA

    # SM2-with-SM3, raw r ‖ s in base64, over the signing string.
    point = sm2_public_point(hospital.own_key).hex()  # type: ignore[arg-type]
    checker = sm2.CryptSM2(private_key="", public_key="")
    checker.public_key = point[2:]  # set after construction: the constructor strips leading "0"s and "4"s
    signature = base64.b64decode(envelope["signData"]).hex()
    signed = wire.signing_string(envelope, DATA, APP_SECRET).encode()
    assert checker.verify_with_sm3(signature, signed)
    assert not checker.verify_with_sm3(signature, signed.replace(b"12.50", b"12.51"))

    fields, data = wire.open_envelope(platform, envelope)
    assert data == DATA and fields["appId"] == APP_ID


def test_a_gmssl_made_envelope_opens() -> None:
    hospital, platform = parties()
    private_hex = hospital.own_key.private_numbers().private_value.to_bytes(32, "big").hex()  # type: ignore[union-attr]
    signer = sm2.CryptSM2(private_key=private_hex, public_key="")
    signer.public_key = sm2_public_point(hospital.own_key).hex()[2:]  # type: ignore[arg-type]
    key = wire.sm4_key(APP_ID, APP_SECRET)
    enc = sm4.CryptSM4()
    enc.set_key(key, sm4.SM4_ENCRYPT)
    fields = {"appId": APP_ID, "encType": "SM4", "signType": "SM2", "timestamp": "1700000000", "version": "2.0.1"}
    signed = wire.signing_string(fields, DATA, APP_SECRET).encode()
    # A fixed nonce of our choosing: gmssl is never left to pick one.
    nonce = "6CB28D99385C175C94F94E934817663FC176D925DD72B727260DBAAE1FB2F96F"
    signature = signer.sign(bytes.fromhex(signer._sm3_z(signed)), nonce)
    envelope = {
        **fields,
        "signData": base64.b64encode(bytes.fromhex(signature)).decode(),
        "encData": enc.crypt_ecb(wire.data_json(DATA).encode()).hex().upper(),
    }
    assert wire.open_envelope(platform, envelope)[1] == DATA


@pytest.mark.parametrize("tamper", ["encData", "signData", "timestamp", "appId", "other_key"])
def test_tampered_or_forged_envelopes_are_refused(tamper: str) -> None:
    hospital, platform = parties()
    envelope = wire.seal(hospital, DATA, 1700000000)
    if tamper == "encData":
        other = wire.seal(hospital, {**DATA, "medfeeSumamt": "0.01"}, 1700000000)
        envelope["encData"] = other["encData"]
    elif tamper == "signData":
        raw = bytearray(base64.b64decode(envelope["signData"]))
        raw[5] ^= 1
        envelope["signData"] = base64.b64encode(bytes(raw)).decode()
    elif tamper == "timestamp":
        envelope["timestamp"] = "1700000001"
    elif tamper == "appId":
        envelope["appId"] = "X" * 32
    else:
        forger = wire.Party(APP_ID, APP_SECRET, generate_signing_key("SM2-SM3"), hospital.peer_key)
        envelope = wire.seal(forger, DATA, 1700000000)
    with pytest.raises(wire.EnvelopeError) as caught:
        wire.open_envelope(platform, envelope)
    assert caught.value.bad_signature


def test_yuan_and_fen_convert_exactly() -> None:
    assert wire.yuan(1250) == "12.50" and wire.yuan(7) == "0.07" and wire.yuan(0) == "0.00"
    assert wire.fen("12.50", "x") == 1250 and wire.fen("0.1", "x") == 10 and wire.fen(3, "x") == 300
    for bad in ("1.005", "abc", "NaN", 1.5):
        with pytest.raises(wire.EnvelopeError):
            wire.fen(bad, "x")


def test_timestamps_are_beijing_time_as_the_2_0_1_document_shows_them() -> None:
    assert wire.timestamp(datetime(2020, 2, 7, 9, 57, 59, tzinfo=UTC)) == "20200207175759"
