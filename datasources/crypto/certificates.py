"""The BFF's own certificate authority: one root per algorithm, and the certificates of the apps it trusts.

Every app that calls the gateway from the hospital's side holds a certificate issued here; the
gateway verifies the app's request signatures with the public key inside it, so what matters is
that the certificate names the app (subject CN = app id) and carries a signature of our root.

- An SM2 root issues SM2 certificates (SM2-with-SM3, GM/T 0015 layout: the key is id-ecPublicKey on
  the SM2 curve, the signature a DER SEQUENCE{r, s} with the default user ID). ``cryptography`` has
  no SM2, so these are assembled with asn1crypto and signed through ``primitives.sign`` (tongsuopy).
- An RSA root issues RSA certificates (SHA256withRSA) built by ``cryptography.x509``.
- Mixing (an SM2 root signing an RSA app key, or the reverse) is refused: each app is configured for
  one algorithm and chains to the root of that algorithm, which keeps each path to one library.

Every certificate, ours or presented, is read the same way (asn1crypto), so an SM2 and an RSA
certificate give the same ``CertificateInfo`` and are verified by the same ``verify_issued_by``.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from asn1crypto import keys, pem, x509
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from tongsuopy.crypto.asymciphers import ec as sm_ec

from datasources.crypto.primitives import (
    RSA_KEY_SIZES,
    CryptoError,
    PrivateKey,
    PublicKey,
    SignatureAlgorithm,
    algorithm_of,
    generate_signing_key,
    load_private_key,
    load_public_key,
    private_key_pem,
    public_key_pem,
    sign,
    sm2_public_key_from_point,
    sm2_public_point,
    verify,
)

SM2_WITH_SM3 = "1.2.156.10197.1.501"
SHA256_WITH_RSA = "1.2.840.113549.1.1.11"
EC_PUBLIC_KEY = "1.2.840.10045.2.1"
SM2_CURVE = "1.2.156.10197.1.301"
RSA_ENCRYPTION = "1.2.840.113549.1.1.1"
_SIGNATURE_OIDS: dict[str, SignatureAlgorithm] = {SM2_WITH_SM3: "SM2-SM3", SHA256_WITH_RSA: "RSA-SHA256"}

CertificateErrorCode = Literal[
    "CERT_MALFORMED",  # not a certificate, or one this CA cannot read
    "CERT_UNSUPPORTED_ALGORITHM",  # signed or keyed with something other than SM2-SM3 / RSA-SHA256
    "CERT_BAD_SIGNATURE",  # not issued by the given authority, or altered since
    "CERT_EXPIRED",
    "CERT_NOT_YET_VALID",
    "CERT_ALGORITHM_MISMATCH",  # an SM2 root asked to certify an RSA key, or the reverse
    "CERT_KEY_MISMATCH",  # a root certificate loaded with a private key that is not its own
    "CERT_NOT_A_CA",  # a root loaded from a certificate without basicConstraints CA=true
    "CERT_INVALID_REQUEST",  # what to issue is inconsistent (naive times, empty app id, …)
]


class CertificateError(CryptoError):
    """A certificate that cannot be issued, read or trusted; ``code`` is stable, the message says what to do."""

    def __init__(self, code: CertificateErrorCode, message: str) -> None:
        super().__init__(message)
        self.code: CertificateErrorCode = code


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    """What the gateway needs from a certificate, the same for SM2 and RSA.

    ``tbs`` and ``signature`` are kept so the issuer's signature can be checked without parsing again.
    Two infos are equal when their certificates are (the key object itself is not compared).
    """

    serial: str  # lower-case hex, no separators
    subject_cn: str  # the app id (the CA's own name for a root)
    subject_organization: str | None
    subject_unit: str | None  # the app name
    issuer_cn: str
    not_before: datetime  # aware, UTC
    not_after: datetime  # aware, UTC
    signature_algorithm: SignatureAlgorithm
    public_key: PublicKey = field(compare=False)  # tongsuopy keys compare by identity; ``der`` decides
    is_ca: bool
    fingerprint: str  # SHA-256 of the DER, lower-case hex
    pem: str
    der: bytes
    tbs: bytes
    signature: bytes

    @property
    def app_id(self) -> str:
        return self.subject_cn


IssuedCertificate = CertificateInfo
"""What ``issue`` returns: the new certificate, read back through ``parse`` (so it is known to parse)."""


@dataclass(frozen=True, slots=True)
class CertificateAuthority:
    """A root key and its self-signed certificate. Persist it with ``key_pem`` and ``certificate.pem``."""

    key: PrivateKey
    certificate: CertificateInfo

    @property
    def algorithm(self) -> SignatureAlgorithm:
        return self.certificate.signature_algorithm

    def key_pem(self, *, password: bytes | None = None) -> bytes:
        return private_key_pem(self.key, password=password)


# --- reading ----------------------------------------------------------------------------------------


def parse(data: bytes | str) -> CertificateInfo:
    """A certificate in PEM (first ``CERTIFICATE`` block) or DER, SM2-SM3 or RSA-SHA256."""
    raw = data.encode() if isinstance(data, str) else data
    try:
        if pem.detect(raw):
            kind, _, raw = pem.unarmor(raw)
            if kind != "CERTIFICATE":
                raise CertificateError("CERT_MALFORMED", f"a PEM {kind} block is not a certificate; send the "
                                       "app's certificate (-----BEGIN CERTIFICATE-----)")
        cert = x509.Certificate.load(raw, strict=True)
        tbs = cert["tbs_certificate"]
        outer_oid = cert["signature_algorithm"]["algorithm"].dotted
        inner_oid = tbs["signature"]["algorithm"].dotted
        signature = cert["signature_value"].native
        names = tbs["subject"].native, tbs["issuer"].native
        not_before, not_after = tbs["validity"]["not_before"].native, tbs["validity"]["not_after"].native
        serial = tbs["serial_number"].native
        spki = tbs["subject_public_key_info"]
        basic = cert.basic_constraints_value
        is_ca = bool(basic is not None and basic["ca"].native)
    except CertificateError:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        raise CertificateError("CERT_MALFORMED", f"not a readable X.509 certificate ({exc}); send the PEM or "
                               "DER the CA issued, unmodified") from exc
    if outer_oid != inner_oid:
        raise CertificateError("CERT_MALFORMED", "the certificate names two different signature algorithms")
    if not_before.tzinfo is None or not_after.tzinfo is None:
        raise CertificateError("CERT_MALFORMED", "the validity times carry no time zone (RFC 5280 asks for Z)")
    if outer_oid not in _SIGNATURE_OIDS:
        raise CertificateError("CERT_UNSUPPORTED_ALGORITHM", f"signature algorithm {outer_oid} is neither "
                               "SM2-with-SM3 nor SHA256withRSA; ask for a certificate from the BFF's CA")
    algorithm = _SIGNATURE_OIDS[outer_oid]
    der = cert.dump()
    return CertificateInfo(
        serial=_hex(serial),
        subject_cn=_first(names[0], "common_name") or "",
        subject_organization=_first(names[0], "organization_name"),
        subject_unit=_first(names[0], "organizational_unit_name"),
        issuer_cn=_first(names[1], "common_name") or "",
        not_before=not_before.astimezone(UTC),
        not_after=not_after.astimezone(UTC),
        signature_algorithm=algorithm,
        public_key=_public_key(spki),
        is_ca=is_ca,
        fingerprint=hashlib.sha256(der).hexdigest(),
        pem=pem.armor("CERTIFICATE", der).decode(),
        der=der,
        tbs=tbs.dump(),
        signature=signature,
    )


def verify_issued_by(certificate: CertificateInfo | bytes | str, authority: CertificateInfo | bytes | str) -> bool:
    """True when ``authority`` (a CA certificate) names itself as the issuer and its key signed this tbsCertificate.

    A changed byte anywhere in the signed part, a certificate of another CA with the same name, or an
    authority certificate that is not a CA all give False.
    """
    cert = certificate if isinstance(certificate, CertificateInfo) else parse(certificate)
    ca = authority if isinstance(authority, CertificateInfo) else parse(authority)
    if not ca.is_ca or algorithm_of(ca.public_key) != cert.signature_algorithm:
        return False
    issuer = x509.Certificate.load(cert.der)["tbs_certificate"]["issuer"]
    if issuer != x509.Certificate.load(ca.der)["tbs_certificate"]["subject"]:
        return False
    return verify(ca.public_key, cert.signature, cert.tbs)


def check_valid_at(certificate: CertificateInfo, now: datetime) -> None:
    """Raises ``CERT_NOT_YET_VALID`` or ``CERT_EXPIRED``; both bounds are inclusive (RFC 5280)."""
    _require_aware(now, "now")
    if now < certificate.not_before:
        raise CertificateError("CERT_NOT_YET_VALID", f"certificate {certificate.serial} of "
                               f"{certificate.subject_cn!r} is valid from {certificate.not_before.isoformat()}; "
                               "check the caller's clock or wait until then")
    if now > certificate.not_after:
        raise CertificateError("CERT_EXPIRED", f"certificate {certificate.serial} of {certificate.subject_cn!r} "
                               f"expired at {certificate.not_after.isoformat()}; renew it with the BFF's CA")


def check_issued_by(certificate: CertificateInfo | bytes | str, authority: CertificateInfo, *,
                    now: datetime) -> CertificateInfo:
    """What the gateway does with a presented certificate: signed by our root and valid now, or an error."""
    cert = certificate if isinstance(certificate, CertificateInfo) else parse(certificate)
    if not verify_issued_by(cert, authority):
        raise CertificateError("CERT_BAD_SIGNATURE", f"certificate {cert.serial} of {cert.subject_cn!r} is not "
                               f"signed by {authority.subject_cn!r} or was altered; use the one the BFF's CA issued")
    check_valid_at(cert, now)
    return cert


# --- the authority ----------------------------------------------------------------------------------


def create_authority(algorithm: SignatureAlgorithm, *, common_name: str, organization: str, valid_days: int,
                     now: datetime, rsa_bits: int = 2048) -> CertificateAuthority:
    """A new root key and its self-signed certificate (CA=true, path length 0: it certifies apps only)."""
    _require_aware(now, "now")
    if valid_days <= 0:
        raise CertificateError("CERT_INVALID_REQUEST", "valid_days must be positive")
    key = generate_signing_key(algorithm, rsa_bits=rsa_bits)
    not_before = now.astimezone(UTC).replace(microsecond=0)
    subject = {"common_name": common_name, "organization_name": organization}
    der = _build(key, key.public_key(), subject=subject, issuer=None, serial=_random_serial(), ca=True,
                 not_before=not_before, not_after=not_before + timedelta(days=valid_days), authority_ski=None)
    return CertificateAuthority(key=key, certificate=parse(der))


def load_authority(key_pem: bytes, certificate_pem: bytes | str, *, password: bytes | None = None
                   ) -> CertificateAuthority:
    """A root back from storage; refuses a certificate that is not a CA or a key that is not its own."""
    key = load_private_key(key_pem, password=password)
    cert = parse(certificate_pem)
    if not cert.is_ca:
        raise CertificateError("CERT_NOT_A_CA", f"{cert.subject_cn!r} is not a CA certificate (basicConstraints "
                               "CA=true is missing); load the root certificate, not an app's")
    if public_key_pem(key) != public_key_pem(cert.public_key):
        raise CertificateError("CERT_KEY_MISMATCH", f"the private key does not belong to {cert.subject_cn!r}; "
                               "load the key that was generated with this root certificate")
    return CertificateAuthority(key=key, certificate=cert)


def issue(authority: CertificateAuthority, *, subject_public_key: PublicKey, app_id: str, app_name: str,
          not_before: datetime, not_after: datetime, serial: int | None = None) -> IssuedCertificate:
    """An app certificate: CN = app id, O = the root's organization, OU = app name; CA=false, digitalSignature.

    The serial is 128 random bits unless given (a given one must be positive and at most 20 bytes).
    """
    _require_aware(not_before, "not_before")
    _require_aware(not_after, "not_after")
    start, end = not_before.astimezone(UTC).replace(microsecond=0), not_after.astimezone(UTC).replace(microsecond=0)
    if not app_id.strip():
        raise CertificateError("CERT_INVALID_REQUEST", "an app certificate needs the app id (its subject CN)")
    if end <= start:
        raise CertificateError("CERT_INVALID_REQUEST", "not_after must be later than not_before")
    if end > authority.certificate.not_after:
        raise CertificateError("CERT_INVALID_REQUEST", f"not_after {end.isoformat()} outlives the root "
                               f"({authority.certificate.not_after.isoformat()}); shorten it or renew the root first")
    if serial is not None and not 0 < serial < 1 << 159:
        raise CertificateError("CERT_INVALID_REQUEST", "a serial number is positive and at most 20 bytes")
    if algorithm_of(subject_public_key) != authority.algorithm:
        raise CertificateError("CERT_ALGORITHM_MISMATCH", f"the {authority.algorithm} root certifies "
                               f"{authority.algorithm} keys only; this app's key is {algorithm_of(subject_public_key)}")
    if isinstance(subject_public_key, rsa.RSAPublicKey) and subject_public_key.key_size not in RSA_KEY_SIZES:
        raise CertificateError("CERT_INVALID_REQUEST", f"RSA app keys are {RSA_KEY_SIZES} bits")
    subject = {"common_name": app_id, "organization_name": authority.certificate.subject_organization or "",
               "organizational_unit_name": app_name}
    ca_cert = x509.Certificate.load(authority.certificate.der)
    der = _build(authority.key, subject_public_key, subject=subject, issuer=ca_cert, serial=serial or _random_serial(),
                 ca=False, not_before=start, not_after=end, authority_ski=ca_cert.key_identifier)
    return parse(der)


# --- building ---------------------------------------------------------------------------------------


def _build(key: PrivateKey, public: PublicKey, *, subject: dict[str, str], issuer: Any, serial: int, ca: bool,
           not_before: datetime, not_after: datetime, authority_ski: bytes | None) -> bytes:
    """DER of a certificate signed by ``key``.

    ``issuer`` is the issuing root as an asn1crypto certificate, None when the certificate signs itself.
    """
    subject = {name: value for name, value in subject.items() if value}
    if isinstance(key, rsa.RSAPrivateKey):
        assert isinstance(public, rsa.RSAPublicKey)
        return _build_rsa(key, public, subject=subject, issuer=issuer, serial=serial, ca=ca,
                          not_before=not_before, not_after=not_after)
    assert isinstance(public, sm_ec.EllipticCurvePublicKey)
    spki = keys.PublicKeyInfo({
        "algorithm": {"algorithm": EC_PUBLIC_KEY, "parameters": ("named", SM2_CURVE)},
        "public_key": sm2_public_point(public),
    })
    ski = _key_identifier(spki)
    extensions: list[dict[str, Any]] = [
        {"extn_id": "basic_constraints", "critical": True,
         "extn_value": {"ca": True, "path_len_constraint": 0} if ca else {"ca": False}},
        {"extn_id": "key_usage", "critical": True,
         "extn_value": {"key_cert_sign", "crl_sign"} if ca else {"digital_signature"}},
        {"extn_id": "key_identifier", "critical": False, "extn_value": ski},
        {"extn_id": "authority_key_identifier", "critical": False,
         "extn_value": {"key_identifier": authority_ski or ski}},
    ]
    subject_name = x509.Name.build(subject)
    tbs = x509.TbsCertificate({
        "version": "v3",
        "serial_number": serial,
        "signature": {"algorithm": SM2_WITH_SM3},
        "issuer": subject_name if issuer is None else issuer["tbs_certificate"]["subject"],
        "validity": {"not_before": _time(not_before), "not_after": _time(not_after)},
        "subject": subject_name,
        "subject_public_key_info": spki,
        "extensions": extensions,
    })
    tbs_der = tbs.dump()
    return x509.Certificate({
        "tbs_certificate": tbs,
        "signature_algorithm": {"algorithm": SM2_WITH_SM3},
        "signature_value": sign(key, tbs_der),
    }).dump()


def _build_rsa(key: rsa.RSAPrivateKey, public: rsa.RSAPublicKey, *, subject: dict[str, str], issuer: Any,
               serial: int, ca: bool, not_before: datetime, not_after: datetime) -> bytes:
    oids = {"common_name": NameOID.COMMON_NAME, "organization_name": NameOID.ORGANIZATION_NAME,
            "organizational_unit_name": NameOID.ORGANIZATIONAL_UNIT_NAME}
    order = ("organization_name", "organizational_unit_name", "common_name")  # as asn1crypto's Name.build
    subject_name = cx509.Name([cx509.NameAttribute(oids[n], subject[n]) for n in order if n in subject])
    issuer_name = subject_name if issuer is None else cx509.load_der_x509_certificate(issuer.dump()).subject
    issuer_key = public if issuer is None else key.public_key()
    usage = cx509.KeyUsage(digital_signature=not ca, content_commitment=False, key_encipherment=False,
                           data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                           encipher_only=False, decipher_only=False)
    builder = (
        cx509.CertificateBuilder()
        .subject_name(subject_name)
        .issuer_name(issuer_name)
        .public_key(public)
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(cx509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(cx509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(cx509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key), critical=False)
    )
    return builder.sign(key, hashes.SHA256()).public_bytes(Encoding.DER)


# --- small pieces -----------------------------------------------------------------------------------

def _public_key(spki: Any) -> PublicKey:
    algorithm = spki["algorithm"]["algorithm"].dotted
    try:
        if algorithm == RSA_ENCRYPTION:
            return load_public_key(pem.armor("PUBLIC KEY", spki.dump()))
        if algorithm == EC_PUBLIC_KEY and spki["algorithm"]["parameters"].chosen.dotted == SM2_CURVE:
            return sm2_public_key_from_point(spki["public_key"].native)
    except (CryptoError, ValueError, TypeError, KeyError) as exc:
        raise CertificateError("CERT_MALFORMED", "the certificate's public key does not load") from exc
    raise CertificateError("CERT_UNSUPPORTED_ALGORITHM", f"public key {algorithm} is neither SM2 nor RSA; ask for "
                           "a certificate from the BFF's CA")


def _key_identifier(spki: Any) -> bytes:
    """RFC 5280 §4.2.1.2 method 1 (SHA-1 of the key bits), as OpenSSL and ``cryptography`` compute it."""
    return hashlib.sha1(spki["public_key"].contents[1:], usedforsecurity=False).digest()


def _time(moment: datetime) -> Any:
    """UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 §4.1.2.5)."""
    return x509.Time({"utc_time" if moment.year < 2050 else "general_time": moment})


def _random_serial() -> int:
    return secrets.randbits(128) or 1


def _hex(number: int) -> str:
    return number.to_bytes(max(1, (number.bit_length() + 7) // 8), "big").hex()


def _first(name: dict[str, Any], field: str) -> str | None:
    value = name.get(field)
    if isinstance(value, list):
        value = value[0] if value else None
    return value if isinstance(value, str) else None


def _require_aware(moment: datetime, what: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise CertificateError("CERT_INVALID_REQUEST", f"{what} must be timezone-aware (a naive time is ambiguous)")
