"""The primitives against published vectors and against `cryptography`'s own building blocks."""

from __future__ import annotations

import os

import pytest
from asn1crypto.algos import DSASignature
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given
from hypothesis import strategies as st

from datasources.crypto import primitives as p
from datasources.crypto.primitives import CryptoError, Sealer

SM2_N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123


@pytest.fixture(scope="module")
def sm2_key() -> p.PrivateKey:
    return p.generate_signing_key("SM2-SM3")


@pytest.fixture(scope="module")
def rsa_key() -> p.PrivateKey:
    return p.generate_signing_key("RSA-SHA256")


# --- digest ------------------------------------------------------------------------------------------


def test_sm3_matches_gbt_32905_example_1_abc() -> None:
    assert p.digest("SM3", b"abc").hex() == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"


def test_sm3_matches_gbt_32905_example_2_sixty_four_bytes() -> None:
    assert p.digest("SM3", b"abcd" * 16).hex() == "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"


def test_sha256_is_the_standard_one() -> None:
    assert p.digest("SHA256", b"abc").hex() == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_unknown_digest_is_refused() -> None:
    with pytest.raises(CryptoError):
        p.digest("MD5", b"abc")  # type: ignore[arg-type]


# --- seal / open ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", p.SEAL_ALGORITHMS)
def test_sealed_value_opens_with_the_same_key_and_context(algorithm: p.SealAlgorithm) -> None:
    sealer = Sealer(algorithm, p.new_data_key(algorithm))
    sealed = sealer.seal("身份证 110101199003074514".encode(), aad=b"patients.id_number")
    assert len(sealed) == p.NONCE_BYTES + len("身份证 110101199003074514".encode()) + p.TAG_BYTES
    assert sealer.open(sealed, aad=b"patients.id_number") == "身份证 110101199003074514".encode()


@pytest.mark.parametrize("algorithm", p.SEAL_ALGORITHMS)
def test_each_seal_uses_a_fresh_nonce(algorithm: p.SealAlgorithm) -> None:
    sealer = Sealer(algorithm, p.new_data_key(algorithm))
    assert sealer.seal(b"same") != sealer.seal(b"same")


@pytest.mark.parametrize("algorithm", p.SEAL_ALGORITHMS)
@pytest.mark.parametrize("position", [0, p.NONCE_BYTES, -1])
def test_a_flipped_byte_anywhere_is_refused(algorithm: p.SealAlgorithm, position: int) -> None:
    sealer = Sealer(algorithm, p.new_data_key(algorithm))
    sealed = bytearray(sealer.seal(b"13012345689"))
    sealed[position] ^= 0x01
    with pytest.raises(CryptoError, match="altered"):
        sealer.open(bytes(sealed))


@pytest.mark.parametrize("algorithm", p.SEAL_ALGORITHMS)
def test_a_value_moved_to_another_context_is_refused(algorithm: p.SealAlgorithm) -> None:
    sealer = Sealer(algorithm, p.new_data_key(algorithm))
    sealed = sealer.seal(b"13012345689", aad=b"patients.phone:1")
    with pytest.raises(CryptoError):
        sealer.open(sealed, aad=b"patients.phone:2")
    with pytest.raises(CryptoError):
        sealer.open(sealed)


@pytest.mark.parametrize("algorithm", p.SEAL_ALGORITHMS)
def test_another_key_cannot_open(algorithm: p.SealAlgorithm) -> None:
    sealed = Sealer(algorithm, p.new_data_key(algorithm)).seal(b"13012345689")
    with pytest.raises(CryptoError):
        Sealer(algorithm, p.new_data_key(algorithm)).open(sealed)


@pytest.mark.parametrize(("algorithm", "size"), [("A256GCM", 16), ("A256GCM", 31), ("SM4GCM", 32), ("SM4GCM", 15)])
def test_a_key_of_the_wrong_length_is_refused(algorithm: p.SealAlgorithm, size: int) -> None:
    with pytest.raises(CryptoError, match="byte key"):
        Sealer(algorithm, os.urandom(size))


@pytest.mark.parametrize("algorithm", p.SEAL_ALGORITHMS)
def test_a_truncated_value_is_refused(algorithm: p.SealAlgorithm) -> None:
    with pytest.raises(CryptoError, match="too short"):
        Sealer(algorithm, p.new_data_key(algorithm)).open(b"\x00" * (p.NONCE_BYTES + p.TAG_BYTES - 1))


def test_sm4_gcm_is_nonce_ciphertext_tag_as_cryptography_decrypts_it() -> None:
    key, aad = p.new_data_key("SM4GCM"), b"audit:42"
    sealed = Sealer("SM4GCM", key).seal(b"x" * 100, aad=aad)
    nonce, body, tag = sealed[:12], sealed[12:-16], sealed[-16:]
    decryptor = Cipher(algorithms.SM4(key), modes.GCM(nonce, tag)).decryptor()
    decryptor.authenticate_additional_data(aad)
    assert decryptor.update(body) + decryptor.finalize() == b"x" * 100


def test_sm4_gcm_opens_what_cryptography_seals() -> None:
    key, nonce = p.new_data_key("SM4GCM"), os.urandom(12)
    encryptor = Cipher(algorithms.SM4(key), modes.GCM(nonce)).encryptor()
    encryptor.authenticate_additional_data(b"ctx")
    body = encryptor.update(b"hello") + encryptor.finalize()
    assert Sealer("SM4GCM", key).open(nonce + body + encryptor.tag, aad=b"ctx") == b"hello"


def test_aes_gcm_is_nonce_then_what_aesgcm_produces() -> None:
    key = p.new_data_key("A256GCM")
    sealed = Sealer("A256GCM", key).seal(b"hello", aad=b"ctx")
    assert AESGCM(key).decrypt(sealed[:12], sealed[12:], b"ctx") == b"hello"
    nonce = os.urandom(12)
    assert Sealer("A256GCM", key).open(nonce + AESGCM(key).encrypt(nonce, b"back", None)) == b"back"


# --- SM4-ECB (the insurance platform's format) ------------------------------------------------------


def test_sm4_block_matches_gbt_32907_example_1() -> None:
    key = bytes.fromhex("0123456789abcdeffedcba9876543210")
    assert p.sm4_ecb_encrypt(key, key)[:16].hex() == "681edf34d206965e86b3e94f536e4246"
    raw = Cipher(algorithms.SM4(key), modes.ECB()).encryptor()  # noqa: S305 - a single-block test vector
    assert (raw.update(key) + raw.finalize()).hex() == "681edf34d206965e86b3e94f536e4246"


def test_sm4_ecb_pads_with_pkcs7_and_round_trips() -> None:
    key = os.urandom(16)
    assert len(p.sm4_ecb_encrypt(key, b"x" * 16)) == 32
    for size in (0, 1, 15, 16, 17, 100):
        assert p.sm4_ecb_decrypt(key, p.sm4_ecb_encrypt(key, b"y" * size)) == b"y" * size


def test_sm4_ecb_refuses_a_ragged_or_foreign_ciphertext() -> None:
    key = os.urandom(16)
    with pytest.raises(CryptoError, match="multiple of 16"):
        p.sm4_ecb_decrypt(key, b"\x00" * 17)
    foreign = p.sm4_ecb_encrypt(os.urandom(16), b"z" * 20)
    outcomes = []
    for _ in range(4):  # another key gives valid PKCS7 padding by chance about once in 256 tries
        try:
            outcomes.append(p.sm4_ecb_decrypt(key, foreign) == b"z" * 20)
        except CryptoError:
            outcomes.append(False)
    assert not any(outcomes)


# --- sign / verify -------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["sm2_key", "rsa_key"])
def test_a_signature_verifies_and_altered_data_does_not(which: str, request: pytest.FixtureRequest) -> None:
    key = request.getfixturevalue(which)
    signature = p.sign(key, b"appId=a1&nonce=n&ts=1")
    assert p.verify(key.public_key(), signature, b"appId=a1&nonce=n&ts=1")
    assert not p.verify(key.public_key(), signature, b"appId=a1&nonce=n&ts=2")


@pytest.mark.parametrize("which", ["sm2_key", "rsa_key"])
def test_another_key_does_not_verify(which: str, request: pytest.FixtureRequest) -> None:
    key = request.getfixturevalue(which)
    other = p.generate_signing_key(p.algorithm_of(key))
    assert not p.verify(other.public_key(), p.sign(key, b"data"), b"data")


@pytest.mark.parametrize("which", ["sm2_key", "rsa_key"])
def test_a_flipped_signature_byte_is_refused(which: str, request: pytest.FixtureRequest) -> None:
    key = request.getfixturevalue(which)
    signature = bytearray(p.sign(key, b"data"))
    signature[-1] ^= 0x01
    assert not p.verify(key.public_key(), bytes(signature), b"data")


def test_sm2_signs_der_by_default_and_raw_on_request(sm2_key: p.PrivateKey) -> None:
    der = p.sign(sm2_key, b"data")
    assert der[0] == 0x30 and DSASignature.load(der)["r"].native > 0
    raw = p.sign(sm2_key, b"data", encoding="raw")
    assert len(raw) == 64


def test_sm2_verify_accepts_raw_and_der_of_the_same_signature(sm2_key: p.PrivateKey) -> None:
    der = p.sign(sm2_key, b"data")
    raw = p.sm2_signature_to_raw(der)
    assert p.verify(sm2_key.public_key(), der, b"data")
    assert p.verify(sm2_key.public_key(), raw, b"data")
    assert p.sm2_signature_to_der(raw) == der


@pytest.mark.parametrize(
    "signature",
    [b"", b"garbage", b"\x30\x00", b"\x00" * 64, b"\x30" * 70,
     DSASignature({"r": -5, "s": 5}).dump(), DSASignature({"r": 1 << 300, "s": 5}).dump()],
    ids=["empty", "garbage", "empty-sequence", "zero-raw", "bad-length", "negative-r", "huge-r"],
)
def test_a_malformed_sm2_signature_is_a_failed_verification_not_an_exception(
    sm2_key: p.PrivateKey, signature: bytes
) -> None:
    assert p.verify(sm2_key.public_key(), signature, b"data") is False


def test_sm2_signature_with_trailing_bytes_is_refused(sm2_key: p.PrivateKey) -> None:
    assert not p.verify(sm2_key.public_key(), p.sign(sm2_key, b"data") + b"\x00", b"data")


@given(r=st.integers(1, SM2_N - 1), s=st.integers(1, SM2_N - 1))
def test_der_and_raw_convert_into_each_other(r: int, s: int) -> None:
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    der = p.sm2_signature_to_der(raw)
    parsed = DSASignature.load(der)
    assert (parsed["r"].native, parsed["s"].native) == (r, s)
    assert p.sm2_signature_to_raw(der) == raw


@pytest.mark.parametrize("bad", [b"not der", DSASignature({"r": 1 << 256, "s": 1}).dump(),
                                 DSASignature({"r": -1, "s": 1}).dump()])
def test_der_to_raw_refuses_what_is_not_an_sm2_signature(bad: bytes) -> None:
    with pytest.raises(CryptoError, match="not a DER-encoded SM2 signature"):
        p.sm2_signature_to_raw(bad)


def test_raw_signature_is_sixty_four_bytes() -> None:
    with pytest.raises(CryptoError, match="64 bytes"):
        p.sm2_signature_to_der(b"\x01" * 63)


def test_rsa_keys_come_in_the_sizes_we_allow() -> None:
    with pytest.raises(CryptoError, match="2048, 3072, 4096"):
        p.generate_signing_key("RSA-SHA256", rsa_bits=1024)
    with pytest.raises(CryptoError, match="unknown signature algorithm"):
        p.generate_signing_key("ECDSA-P256")  # type: ignore[arg-type]


def test_algorithm_follows_the_key(sm2_key: p.PrivateKey, rsa_key: p.PrivateKey) -> None:
    assert p.algorithm_of(sm2_key) == p.algorithm_of(sm2_key.public_key()) == "SM2-SM3"
    assert p.algorithm_of(rsa_key) == p.algorithm_of(rsa_key.public_key()) == "RSA-SHA256"


# --- PEM ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["sm2_key", "rsa_key"])
@pytest.mark.parametrize("password", [None, b"correct horse"])
def test_private_key_pem_round_trips(which: str, password: bytes | None, request: pytest.FixtureRequest) -> None:
    key = request.getfixturevalue(which)
    pem = p.private_key_pem(key, password=password)
    assert (b"ENCRYPTED" in pem) is (password is not None)
    loaded = p.load_private_key(pem, password=password)
    assert p.public_key_pem(loaded) == p.public_key_pem(key)
    assert p.verify(key.public_key(), p.sign(loaded, b"data"), b"data")


@pytest.mark.parametrize("which", ["sm2_key", "rsa_key"])
def test_a_wrong_or_missing_password_is_refused(which: str, request: pytest.FixtureRequest) -> None:
    pem = p.private_key_pem(request.getfixturevalue(which), password=b"right")
    with pytest.raises(CryptoError, match="password"):
        p.load_private_key(pem, password=b"wrong")
    with pytest.raises(CryptoError):
        p.load_private_key(pem)


@pytest.mark.parametrize("which", ["sm2_key", "rsa_key"])
def test_public_key_pem_round_trips(which: str, request: pytest.FixtureRequest) -> None:
    key = request.getfixturevalue(which)
    pem = p.public_key_pem(key)
    assert pem.startswith(b"-----BEGIN PUBLIC KEY-----")
    loaded = p.load_public_key(pem)
    assert p.public_key_pem(loaded) == pem
    assert p.verify(loaded, p.sign(key, b"data"), b"data")


def test_garbage_is_not_a_key() -> None:
    with pytest.raises(CryptoError):
        p.load_private_key(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(CryptoError):
        p.load_public_key(b"not a key")


def test_sm2_public_key_travels_as_its_uncompressed_point(sm2_key: p.PrivateKey) -> None:
    assert isinstance(sm2_key, p.sm_ec.EllipticCurvePrivateKey)
    point = p.sm2_public_point(sm2_key)
    assert len(point) == 65 and point[0] == 4
    public = p.sm2_public_key_from_point(point)
    assert p.verify(public, p.sign(sm2_key, b"data"), b"data")
    with pytest.raises(CryptoError, match="point"):
        p.sm2_public_key_from_point(b"\x04" + b"\x01" * 64)


# --- wrap / unwrap ----------------------------------------------------------------------------------------


def test_a_wrapped_data_key_unwraps_with_the_server_key_only(rsa_key: p.PrivateKey) -> None:
    assert isinstance(rsa_key, p.rsa.RSAPrivateKey)
    data_key = p.new_data_key("SM4GCM")
    wrapped = p.wrap(rsa_key.public_key(), data_key)
    assert len(wrapped) == 256
    assert p.unwrap(rsa_key, wrapped) == data_key
    assert p.wrap(rsa_key.public_key(), data_key) != wrapped  # OAEP is randomised
    other = p.generate_signing_key("RSA-SHA256")
    assert isinstance(other, p.rsa.RSAPrivateKey)
    with pytest.raises(CryptoError, match="does not open"):
        p.unwrap(other, wrapped)
