"""SM2, SM3 and SM4 agree with gmssl, an independent pure-Python implementation of the GB/T standards.

gmssl is a test-only reference. It picks its signing nonce with ``random`` (not a CSPRNG) when none
is given, so here it signs only through ``_gmssl_sign``, with a nonce from ``secrets``.
"""

from __future__ import annotations

import os
import secrets

import pytest
from gmssl import sm2, sm3, sm4

from datasources.crypto import primitives as p

MESSAGES = [b"", b"abc", "appId=his-callback&timestamp=1764000000&nonce=甲乙丙".encode(), os.urandom(1000)]


def _gmssl(key: p.sm_ec.EllipticCurvePrivateKey) -> sm2.CryptSM2:
    """gmssl's SM2 object for ``key``: private key as 64 hex digits, public key as x ‖ y (128 hex digits)."""
    numbers = key.private_numbers()
    xy = p.sm2_public_point(key)[1:].hex()
    crypt = sm2.CryptSM2(private_key=f"{numbers.private_value:064x}", public_key=xy)
    # gmssl's constructor removes a "04" prefix with str.lstrip("04"), so when x ‖ y itself starts
    # with "04" (one key in 256) it eats x's leading digits: set the point it should have kept.
    crypt.public_key = xy
    return crypt


def _gmssl_sign(crypt: sm2.CryptSM2, data: bytes) -> str:
    """gmssl's SM2-with-SM3 signature (raw r ‖ s hex) with a nonce from ``secrets``, never gmssl's own."""
    signature = crypt.sign_with_sm3(data, secrets.token_hex(32))
    assert signature is not None  # gmssl gives None for the (negligible) r = 0 or s = 0 cases
    return str(signature)


@pytest.fixture(scope="module")
def key() -> p.sm_ec.EllipticCurvePrivateKey:
    key = p.generate_signing_key("SM2-SM3")
    assert isinstance(key, p.sm_ec.EllipticCurvePrivateKey)
    return key


@pytest.mark.parametrize("data", MESSAGES, ids=["empty", "abc", "canonical", "1000-random"])
def test_our_der_signature_verifies_in_gmssl(key: p.sm_ec.EllipticCurvePrivateKey, data: bytes) -> None:
    der = p.sign(key, data)
    assert _gmssl(key).verify_with_sm3(p.sm2_signature_to_raw(der).hex(), data)


@pytest.mark.parametrize("data", MESSAGES, ids=["empty", "abc", "canonical", "1000-random"])
def test_our_raw_signature_verifies_in_gmssl(key: p.sm_ec.EllipticCurvePrivateKey, data: bytes) -> None:
    raw = p.sign(key, data, encoding="raw")
    assert _gmssl(key).verify_with_sm3(raw.hex(), data)


def test_gmssl_refuses_our_signature_over_other_data(key: p.sm_ec.EllipticCurvePrivateKey) -> None:
    raw = p.sign(key, b"amount=100", encoding="raw")
    assert not _gmssl(key).verify_with_sm3(raw.hex(), b"amount=900")


@pytest.mark.parametrize("data", MESSAGES, ids=["empty", "abc", "canonical", "1000-random"])
def test_gmssl_signature_verifies_with_us_as_raw_and_as_der(key: p.sm_ec.EllipticCurvePrivateKey,
                                                             data: bytes) -> None:
    raw = bytes.fromhex(_gmssl_sign(_gmssl(key), data))
    assert p.verify(key.public_key(), raw, data)
    assert p.verify(key.public_key(), p.sm2_signature_to_der(raw), data)
    assert not p.verify(key.public_key(), raw, data + b".")


def test_gmssl_signature_from_a_key_loaded_from_its_point_verifies(key: p.sm_ec.EllipticCurvePrivateKey) -> None:
    public = p.sm2_public_key_from_point(p.sm2_public_point(key))
    raw = bytes.fromhex(_gmssl_sign(_gmssl(key), b"from the platform"))
    assert p.verify(public, raw, b"from the platform")


def test_keys_whose_point_starts_with_04_still_interoperate() -> None:
    """The workaround in ``_gmssl``: with x ‖ y starting "04" (1 key in 256) gmssl alone mangles the key."""
    for _ in range(5000):
        key = p.generate_signing_key("SM2-SM3")
        assert isinstance(key, p.sm_ec.EllipticCurvePrivateKey)
        xy = p.sm2_public_point(key)[1:].hex()
        if xy.startswith("04"):
            break
    else:
        pytest.fail("no key with x ‖ y starting with 04 in 5000 tries")
    assert sm2.CryptSM2(private_key="01", public_key=xy).public_key != xy  # the bug the workaround is for
    assert _gmssl(key).verify_with_sm3(p.sign(key, b"x", encoding="raw").hex(), b"x")
    assert p.verify(key.public_key(), bytes.fromhex(_gmssl_sign(_gmssl(key), b"x")), b"x")


@pytest.mark.parametrize("data", [b"", b"abc", b"abcd" * 16, os.urandom(1000)], ids=["empty", "abc", "64", "1000"])
def test_sm3_equals_gmssl(data: bytes) -> None:
    assert p.digest("SM3", data).hex() == sm3.sm3_hash(list(data))


@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 1000])
def test_our_sm4_ecb_decrypts_in_gmssl_and_back(size: int) -> None:
    key, plaintext = os.urandom(16), os.urandom(size)
    theirs = sm4.CryptSM4(padding_mode=sm4.PKCS7)
    theirs.set_key(key, sm4.SM4_DECRYPT)
    assert theirs.crypt_ecb(p.sm4_ecb_encrypt(key, plaintext)) == plaintext
    theirs.set_key(key, sm4.SM4_ENCRYPT)
    ciphertext = theirs.crypt_ecb(plaintext)
    assert ciphertext == p.sm4_ecb_encrypt(key, plaintext)  # ECB is deterministic: byte-for-byte equal
    assert p.sm4_ecb_decrypt(key, ciphertext) == plaintext
