"""The cryptographic primitives, one interface per purpose: digest, seal/open, sign/verify, wrap/unwrap.

Everything else (field encryption, the audit log, app certificates, signed requests, mobile
insurance payment, CA signatures) goes through this module, so an algorithm switch is a name
in configuration and never a code path of its own.

What the libraries give: `cryptography` has SM3, SM4, AES, RSA and X.509 but no SM2; tongsuopy
(Tongsuo, native) signs and verifies SM2 with SM3 and the default user ID 1234567812345678 and
emits DER signatures. SM2 is used for signatures only; keys travel wrapped with RSA-OAEP.
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from typing import Literal, TypeAlias

from asn1crypto.algos import DSASignature
from cryptography.exceptions import InvalidSignature, InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from tongsuopy.crypto import hashes as sm_hashes
from tongsuopy.crypto import serialization as sm_serialization
from tongsuopy.crypto.asymciphers import ec as sm_ec
from tongsuopy.crypto.exceptions import InternalError as SmInternalError
from tongsuopy.crypto.exceptions import InvalidSignature as SmInvalidSignature

DigestAlgorithm = Literal["SM3", "SHA256", "SHA1"]  # SHA1: only to check peers' published file hashes
SealAlgorithm = Literal["A256GCM", "SM4GCM"]
SignatureAlgorithm = Literal["SM2-SM3", "RSA-SHA256"]
SignatureEncoding = Literal["der", "raw"]

SEAL_ALGORITHMS: tuple[SealAlgorithm, ...] = ("A256GCM", "SM4GCM")
SIGNATURE_ALGORITHMS: tuple[SignatureAlgorithm, ...] = ("SM2-SM3", "RSA-SHA256")
RSA_KEY_SIZES = (2048, 3072, 4096)
NONCE_BYTES = 12
TAG_BYTES = 16


class CryptoError(ValueError):
    """A value that cannot be opened or verified, or a key or algorithm that does not fit."""


# --- digest -------------------------------------------------------------------------------------


def digest(algorithm: DigestAlgorithm, data: bytes) -> bytes:
    if algorithm == "SM3":
        h = hashes.Hash(hashes.SM3())
        h.update(data)
        return h.finalize()
    if algorithm == "SHA256":
        return hashlib.sha256(data).digest()
    if algorithm == "SHA1":
        return hashlib.sha1(data, usedforsecurity=False).digest()
    raise CryptoError(f"unknown digest algorithm {algorithm!r}")


# --- seal / open (authenticated symmetric encryption) --------------------------------------------


def data_key_size(algorithm: SealAlgorithm) -> int:
    if algorithm == "A256GCM":
        return 32
    if algorithm == "SM4GCM":
        return 16
    raise CryptoError(f"unknown sealing algorithm {algorithm!r}; use one of {', '.join(SEAL_ALGORITHMS)}")


def new_data_key(algorithm: SealAlgorithm) -> bytes:
    return os.urandom(data_key_size(algorithm))


@dataclass(frozen=True, slots=True)
class Sealer:
    """AES-256-GCM or SM4-GCM over one key: ``seal`` gives nonce ‖ ciphertext ‖ tag.

    ``aad`` (associated data) binds the value to where it belongs (a column, a record number):
    opened anywhere else it fails.
    """

    algorithm: SealAlgorithm
    key: bytes

    def __post_init__(self) -> None:
        if len(self.key) != data_key_size(self.algorithm):
            raise CryptoError(f"{self.algorithm} needs a {data_key_size(self.algorithm)}-byte key")

    def seal(self, plaintext: bytes, aad: bytes = b"", *, nonce: bytes | None = None) -> bytes:
        """``nonce`` is random unless a peer's format dictates it (12 bytes, never reused with a key)."""
        if nonce is None:
            nonce = os.urandom(NONCE_BYTES)
        elif len(nonce) != NONCE_BYTES:
            raise CryptoError(f"the nonce is {NONCE_BYTES} bytes")
        if self.algorithm == "A256GCM":
            return nonce + AESGCM(self.key).encrypt(nonce, plaintext, aad or None)
        encryptor = Cipher(algorithms.SM4(self.key), modes.GCM(nonce)).encryptor()
        if aad:
            encryptor.authenticate_additional_data(aad)
        body = encryptor.update(plaintext) + encryptor.finalize()
        return nonce + body + encryptor.tag

    def open(self, sealed: bytes, aad: bytes = b"") -> bytes:
        if len(sealed) < NONCE_BYTES + TAG_BYTES:
            raise CryptoError("sealed value too short")
        nonce, body = sealed[:NONCE_BYTES], sealed[NONCE_BYTES:]
        try:
            if self.algorithm == "A256GCM":
                return AESGCM(self.key).decrypt(nonce, body, aad or None)
            decryptor = Cipher(algorithms.SM4(self.key), modes.GCM(nonce, body[-TAG_BYTES:])).decryptor()
            if aad:
                decryptor.authenticate_additional_data(aad)
            return decryptor.update(body[:-TAG_BYTES]) + decryptor.finalize()
        except InvalidTag as exc:
            raise CryptoError("the value was altered, or sealed with another key or context") from exc


def sm4_ecb_encrypt(key: bytes, plaintext: bytes) -> bytes:
    """SM4/ECB/PKCS7: what mobile insurance payment 2.0 puts in ``encData`` (its SDK's choice, not ours)."""
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.SM4(key), modes.ECB()).encryptor()  # noqa: S305 - the peer's wire format
    return encryptor.update(padded) + encryptor.finalize()


def sm4_ecb_decrypt(key: bytes, ciphertext: bytes) -> bytes:
    if len(ciphertext) % 16:
        raise CryptoError("SM4 ciphertext length is not a multiple of 16 bytes")
    decryptor = Cipher(algorithms.SM4(key), modes.ECB()).decryptor()  # noqa: S305 - the peer's wire format
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError as exc:
        raise CryptoError("SM4 ciphertext does not decrypt with this key (bad padding)") from exc


# --- sign / verify ---------------------------------------------------------------------------------

PrivateKey: TypeAlias = sm_ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey: TypeAlias = sm_ec.EllipticCurvePublicKey | rsa.RSAPublicKey


def generate_signing_key(algorithm: SignatureAlgorithm, *, rsa_bits: int = 2048) -> PrivateKey:
    if algorithm == "SM2-SM3":
        return sm_ec.generate_private_key(sm_ec.SM2())
    if algorithm == "RSA-SHA256":
        if rsa_bits not in RSA_KEY_SIZES:
            raise CryptoError(f"RSA keys are {', '.join(map(str, RSA_KEY_SIZES))} bits, not {rsa_bits}")
        return rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
    raise CryptoError(f"unknown signature algorithm {algorithm!r}; use one of {', '.join(SIGNATURE_ALGORITHMS)}")


def algorithm_of(key: PrivateKey | PublicKey) -> SignatureAlgorithm:
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return "RSA-SHA256"
    return "SM2-SM3"


def sm2_signature_to_raw(der: bytes) -> bytes:
    """DER SEQUENCE{r, s} → r ‖ s (32 bytes each), the form many Chinese platforms exchange."""
    try:
        parsed = DSASignature.load(der)
        r, s = parsed["r"].native, parsed["s"].native
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    except (ValueError, TypeError, OverflowError) as exc:  # OverflowError: r or s negative or over 32 bytes
        raise CryptoError("not a DER-encoded SM2 signature") from exc


def sm2_signature_to_der(raw: bytes) -> bytes:
    if len(raw) != 64:
        raise CryptoError("a raw SM2 signature is 64 bytes (r ‖ s)")
    return DSASignature({"r": int.from_bytes(raw[:32], "big"), "s": int.from_bytes(raw[32:], "big")}).dump()


# Stateless parameter objects, made once: verification is on every signed request's path.
_PKCS1 = asym_padding.PKCS1v15()
_SHA256 = hashes.SHA256()
_SM2_SM3 = sm_ec.ECDSA(sm_hashes.SM3())


def sign(key: PrivateKey, data: bytes, *, encoding: SignatureEncoding = "der") -> bytes:
    """SM2-with-SM3 (DER by default, ``raw`` for r ‖ s) or RSA PKCS#1 v1.5 with SHA-256."""
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, _PKCS1, _SHA256)
    signature = key.sign(data, _SM2_SM3)
    return sm2_signature_to_raw(signature) if encoding == "raw" else signature


def verify(key: PublicKey, signature: bytes, data: bytes) -> bool:
    """True when ``signature`` is ``data``'s; SM2 signatures are accepted in DER and in raw r ‖ s."""
    if isinstance(key, rsa.RSAPublicKey):
        try:
            key.verify(signature, data, _PKCS1, _SHA256)
        except InvalidSignature:
            return False
        return True
    if len(signature) == 64:
        signature = sm2_signature_to_der(signature)
    try:
        key.verify(signature, data, _SM2_SM3)
    except (SmInvalidSignature, SmInternalError, ValueError):  # Tongsuo reports malformed DER as InternalError
        return False
    return True


def private_key_pem(key: PrivateKey, *, password: bytes | None = None) -> bytes:
    if isinstance(key, rsa.RSAPrivateKey):
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
        )
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    sm_encryption: sm_serialization.KeySerializationEncryption = (
        sm_serialization.BestAvailableEncryption(password) if password else sm_serialization.NoEncryption()
    )
    return key.private_bytes(sm_serialization.Encoding.PEM, sm_serialization.PrivateFormat.PKCS8, sm_encryption)


def public_key_pem(key: PrivateKey | PublicKey) -> bytes:
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey | sm_ec.EllipticCurvePrivateKey) else key
    if isinstance(public, rsa.RSAPublicKey):
        return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return public.public_bytes(sm_serialization.Encoding.PEM, sm_serialization.PublicFormat.SubjectPublicKeyInfo)


def load_private_key(pem: bytes, *, password: bytes | None = None) -> PrivateKey:
    """Loaded once per PEM: checking an RSA private key on load costs ~50 ms here (cryptography
    validates it), and a merchant key signs every payment request and paySign. Key objects are
    immutable, so the same one serves every caller."""
    return _load_private_key(bytes(pem), password)


@functools.lru_cache(maxsize=64)
def _load_private_key(pem: bytes, password: bytes | None) -> PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=password)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        key = None
    if isinstance(key, rsa.RSAPrivateKey):
        return key
    try:
        sm2_key = sm_serialization.load_pem_private_key(pem, password=password)
    except (ValueError, TypeError) as exc:
        raise CryptoError("not a PEM private key of RSA or SM2 (or the password is wrong)") from exc
    if not isinstance(sm2_key, sm_ec.EllipticCurvePrivateKey) or not isinstance(sm2_key.curve, sm_ec.SM2):
        raise CryptoError("only RSA and SM2 private keys are accepted")
    return sm2_key


def load_public_key(pem: bytes) -> PublicKey:
    return _load_public_key(bytes(pem))


@functools.lru_cache(maxsize=256)
def _load_public_key(pem: bytes) -> PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        key = None
    if isinstance(key, rsa.RSAPublicKey):
        return key
    try:
        sm2_key = sm_serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise CryptoError("not a PEM public key of RSA or SM2") from exc
    if not isinstance(sm2_key, sm_ec.EllipticCurvePublicKey) or not isinstance(sm2_key.curve, sm_ec.SM2):
        raise CryptoError("only RSA and SM2 public keys are accepted")
    return sm2_key


def sm2_public_key_from_point(point: bytes) -> sm_ec.EllipticCurvePublicKey:
    """An SM2 public key from its uncompressed point (04 ‖ x ‖ y), as certificates and peers carry it."""
    try:
        return sm_ec.EllipticCurvePublicKey.from_encoded_point(sm_ec.SM2(), point)
    except ValueError as exc:
        raise CryptoError("not an SM2 public key point") from exc


def sm2_public_point(key: sm_ec.EllipticCurvePrivateKey | sm_ec.EllipticCurvePublicKey) -> bytes:
    public = key.public_key() if isinstance(key, sm_ec.EllipticCurvePrivateKey) else key
    numbers = public.public_numbers()
    return b"\x04" + numbers.x.to_bytes(32, "big") + numbers.y.to_bytes(32, "big")


# --- wrap / unwrap (a data key under an RSA-OAEP public key) -------------------------------------

_OAEP = asym_padding.OAEP(mgf=asym_padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def wrap(public_key: rsa.RSAPublicKey, data_key: bytes) -> bytes:
    """RSA-OAEP (SHA-256, MGF1-SHA-256): how a per-request SM4 or AES key travels to the server."""
    return public_key.encrypt(data_key, _OAEP)


def unwrap(private_key: rsa.RSAPrivateKey, wrapped: bytes) -> bytes:
    try:
        return private_key.decrypt(wrapped, _OAEP)
    except ValueError as exc:
        raise CryptoError("the wrapped key does not open with this server key") from exc
