"""The BFF's CA: what it issues names the app, chains to its root only, and is read back the same way.

SM2 certificates are checked by an independent path too: asn1crypto for the structure, gmssl (pure
Python) for the signature over the tbsCertificate bytes, and the openssl CLI when it is installed.
"""

from __future__ import annotations

import hashlib
import secrets
import shutil
import subprocess
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from asn1crypto import algos, x509
from cryptography import x509 as cx509
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from gmssl import sm2

from datasources.crypto import primitives as p
from datasources.crypto.certificates import (
    CertificateAuthority,
    CertificateError,
    CertificateInfo,
    check_issued_by,
    check_valid_at,
    create_authority,
    issue,
    load_authority,
    parse,
    verify_issued_by,
)

NOW = datetime(2026, 11, 23, 1, 10, tzinfo=UTC)  # 09:10 in the hospital
YEAR = timedelta(days=365)
ALGORITHMS: tuple[p.SignatureAlgorithm, ...] = ("SM2-SM3", "RSA-SHA256")


def _authority(algorithm: p.SignatureAlgorithm, name: str = "Hospital BFF Root", rsa_bits: int = 2048
               ) -> CertificateAuthority:
    return create_authority(algorithm, common_name=name, organization="示例市第一人民医院", valid_days=3650,
                            now=NOW, rsa_bits=rsa_bits)


def _app_cert(authority: CertificateAuthority, app_id: str = "wx-miniprogram-01", **times: datetime
              ) -> CertificateInfo:
    key = p.generate_signing_key(authority.algorithm)
    return issue(authority, subject_public_key=key.public_key(), app_id=app_id, app_name="微信小程序",
                 not_before=times.get("not_before", NOW), not_after=times.get("not_after", NOW + YEAR))


@pytest.fixture(scope="module")
def authorities() -> dict[str, CertificateAuthority]:
    return {algorithm: _authority(algorithm) for algorithm in ALGORITHMS}


@pytest.fixture(scope="module", params=ALGORITHMS)
def authority(request: pytest.FixtureRequest, authorities: dict[str, CertificateAuthority]) -> CertificateAuthority:
    return authorities[request.param]


# --- what is issued ----------------------------------------------------------------------------------


def test_the_app_id_is_the_subject_cn_and_the_root_the_issuer(authority: CertificateAuthority) -> None:
    cert = _app_cert(authority, app_id="his-callback")
    assert cert.subject_cn == cert.app_id == "his-callback"
    assert cert.subject_organization == "示例市第一人民医院"
    assert cert.subject_unit == "微信小程序"
    assert cert.issuer_cn == "Hospital BFF Root"
    assert cert.signature_algorithm == authority.algorithm
    assert not cert.is_ca and authority.certificate.is_ca


def test_the_certificate_carries_the_apps_public_key(authority: CertificateAuthority) -> None:
    key = p.generate_signing_key(authority.algorithm)
    cert = issue(authority, subject_public_key=key.public_key(), app_id="a1", app_name="n",
                 not_before=NOW, not_after=NOW + YEAR)
    assert p.public_key_pem(cert.public_key) == p.public_key_pem(key)
    assert p.verify(cert.public_key, p.sign(key, b"a signed request"), b"a signed request")


def test_validity_is_kept_in_aware_utc_to_the_second(authority: CertificateAuthority) -> None:
    shanghai = timezone(timedelta(hours=8))
    cert = _app_cert(authority, not_before=datetime(2026, 11, 23, 9, 10, 0, 999, tzinfo=shanghai),
                     not_after=datetime(2027, 11, 23, 9, 10, tzinfo=shanghai))
    assert cert.not_before == datetime(2026, 11, 23, 1, 10, tzinfo=UTC)
    assert cert.not_after == datetime(2027, 11, 23, 1, 10, tzinfo=UTC)
    assert cert.not_before.utcoffset() == timedelta(0)


def test_serials_are_random_positive_and_at_most_128_bits(authority: CertificateAuthority) -> None:
    serials = {int(_app_cert(authority).serial, 16) for _ in range(4)}
    assert len(serials) == 4
    assert all(0 < serial < 1 << 128 for serial in serials)


def test_a_given_serial_is_used(authority: CertificateAuthority) -> None:
    key = p.generate_signing_key(authority.algorithm)
    cert = issue(authority, subject_public_key=key.public_key(), app_id="a", app_name="n",
                 not_before=NOW, not_after=NOW + YEAR, serial=0x1234ABCD)
    assert cert.serial == "1234abcd"


def test_fingerprint_pem_and_der_describe_the_same_certificate(authority: CertificateAuthority) -> None:
    cert = _app_cert(authority)
    assert cert.fingerprint == hashlib.sha256(cert.der).hexdigest()
    assert cert.pem.startswith("-----BEGIN CERTIFICATE-----")
    assert parse(cert.pem) == parse(cert.der) == parse(cert.pem.encode()) == cert


def test_extensions_say_end_entity_signing_key(authority: CertificateAuthority) -> None:
    cert = x509.Certificate.load(_app_cert(authority).der)
    root = x509.Certificate.load(authority.certificate.der)
    assert cert.basic_constraints_value["ca"].native is False
    assert cert.key_usage_value.native == {"digital_signature"}
    assert cert.authority_key_identifier == root.key_identifier is not None
    assert root.basic_constraints_value.native == {"ca": True, "path_len_constraint": 0}
    assert root.key_usage_value.native == {"key_cert_sign", "crl_sign"}
    assert cert.critical_extensions == {"basic_constraints", "key_usage"}


# --- verification ----------------------------------------------------------------------------------------


def test_a_certificate_verifies_against_its_root(authority: CertificateAuthority) -> None:
    cert = _app_cert(authority)
    assert verify_issued_by(cert, authority.certificate)
    assert verify_issued_by(cert.pem, authority.certificate.pem)
    assert check_issued_by(cert.der, authority.certificate, now=NOW) == cert


def test_the_root_verifies_itself(authority: CertificateAuthority) -> None:
    assert verify_issued_by(authority.certificate, authority.certificate)


def test_another_root_with_the_same_name_is_refused(authority: CertificateAuthority) -> None:
    impostor = _authority(authority.algorithm)
    assert impostor.certificate.subject_cn == authority.certificate.subject_cn
    cert = _app_cert(impostor)
    assert not verify_issued_by(cert, authority.certificate)
    with pytest.raises(CertificateError) as refused:
        check_issued_by(cert, authority.certificate, now=NOW)
    assert refused.value.code == "CERT_BAD_SIGNATURE"


def test_a_root_of_the_other_algorithm_is_refused(authorities: dict[str, CertificateAuthority]) -> None:
    cert = _app_cert(authorities["SM2-SM3"])
    assert not verify_issued_by(cert, authorities["RSA-SHA256"].certificate)


def test_an_app_certificate_cannot_act_as_a_root(authority: CertificateAuthority) -> None:
    app = _app_cert(authority)
    assert not verify_issued_by(app, app)


def test_a_certificate_with_one_changed_byte_is_refused(authority: CertificateAuthority) -> None:
    cert = _app_cert(authority, app_id="app-1000")
    tampered_der = cert.der.replace(b"app-1000", b"app-1001")
    assert tampered_der != cert.der
    tampered = parse(tampered_der)
    assert tampered.app_id == "app-1001"
    assert not verify_issued_by(tampered, authority.certificate)
    with pytest.raises(CertificateError) as refused:
        check_issued_by(tampered, authority.certificate, now=NOW)
    assert refused.value.code == "CERT_BAD_SIGNATURE"
    assert "app-1001" in str(refused.value)


def test_a_changed_signature_is_refused(authority: CertificateAuthority) -> None:
    cert = _app_cert(authority)
    signature = bytearray(cert.signature)
    signature[-1] ^= 0x01
    assert not verify_issued_by(replace(cert, signature=bytes(signature)), authority.certificate)


@pytest.mark.parametrize("data", [b"", b"garbage", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"])
def test_what_is_not_a_certificate_is_malformed(data: bytes | str) -> None:
    with pytest.raises(CertificateError) as refused:
        parse(data)
    assert refused.value.code == "CERT_MALFORMED"


def test_a_truncated_certificate_is_malformed(authority: CertificateAuthority) -> None:
    with pytest.raises(CertificateError) as refused:
        parse(_app_cert(authority).der[:-10])
    assert refused.value.code == "CERT_MALFORMED"


def test_a_pem_that_holds_a_key_is_not_a_certificate(authority: CertificateAuthority) -> None:
    with pytest.raises(CertificateError, match="not a certificate") as refused:
        parse(p.public_key_pem(authority.key))
    assert refused.value.code == "CERT_MALFORMED"


def test_certificate_errors_are_crypto_errors() -> None:
    assert issubclass(CertificateError, p.CryptoError)


# --- validity ---------------------------------------------------------------------------------------------


def test_a_certificate_is_valid_on_both_of_its_bounds(authority: CertificateAuthority) -> None:
    cert = _app_cert(authority)
    check_valid_at(cert, cert.not_before)
    check_valid_at(cert, cert.not_after)


def test_an_expired_certificate_is_refused(authority: CertificateAuthority) -> None:
    cert = _app_cert(authority, not_before=NOW - 2 * YEAR, not_after=NOW - YEAR)
    with pytest.raises(CertificateError, match="renew") as refused:
        check_valid_at(cert, NOW)
    assert refused.value.code == "CERT_EXPIRED"
    with pytest.raises(CertificateError) as also:
        check_issued_by(cert, authority.certificate, now=NOW)
    assert also.value.code == "CERT_EXPIRED"


def test_a_certificate_is_expired_one_second_after_not_after(authority: CertificateAuthority) -> None:
    cert = _app_cert(authority)
    with pytest.raises(CertificateError) as refused:
        check_valid_at(cert, cert.not_after + timedelta(seconds=1))
    assert refused.value.code == "CERT_EXPIRED"


def test_a_not_yet_valid_certificate_is_refused(authority: CertificateAuthority) -> None:
    cert = _app_cert(authority, not_before=NOW + timedelta(days=1), not_after=NOW + YEAR)
    with pytest.raises(CertificateError) as refused:
        check_valid_at(cert, NOW)
    assert refused.value.code == "CERT_NOT_YET_VALID"


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_validity_from_2050_on_is_kept_as_generalized_time(algorithm: p.SignatureAlgorithm) -> None:
    root = create_authority(algorithm, common_name="Long Root", organization="H", valid_days=40 * 365, now=NOW)
    assert root.certificate.not_after == NOW + timedelta(days=40 * 365)
    validity = x509.Certificate.load(root.certificate.der)["tbs_certificate"]["validity"]
    assert (validity["not_before"].name, validity["not_after"].name) == ("utc_time", "general_time")


def test_validity_needs_an_aware_time(authority: CertificateAuthority) -> None:
    with pytest.raises(CertificateError) as refused:
        check_valid_at(authority.certificate, datetime(2026, 11, 23, 9, 10))
    assert refused.value.code == "CERT_INVALID_REQUEST"


# --- what the CA refuses to issue --------------------------------------------------------------------------


def test_a_root_certifies_keys_of_its_own_algorithm_only(authorities: dict[str, CertificateAuthority]) -> None:
    for algorithm, other in (("SM2-SM3", "RSA-SHA256"), ("RSA-SHA256", "SM2-SM3")):
        key = p.generate_signing_key(other)  # type: ignore[arg-type]
        with pytest.raises(CertificateError) as refused:
            issue(authorities[algorithm], subject_public_key=key.public_key(), app_id="a", app_name="n",
                  not_before=NOW, not_after=NOW + YEAR)
        assert refused.value.code == "CERT_ALGORITHM_MISMATCH"


@pytest.mark.parametrize(
    ("app_id", "not_before", "not_after", "serial"),
    [
        (" ", NOW, NOW + YEAR, None),
        ("a", NOW, NOW, None),
        ("a", NOW, NOW + 20 * YEAR, None),
        ("a", NOW.replace(tzinfo=None), NOW + YEAR, None),
        ("a", NOW, NOW + YEAR, 0),
        ("a", NOW, NOW + YEAR, 1 << 160),
    ],
    ids=["no-app-id", "empty-validity", "outlives-root", "naive-time", "zero-serial", "serial-too-long"],
)
def test_an_inconsistent_request_is_refused(authority: CertificateAuthority, app_id: str, not_before: datetime,
                                            not_after: datetime, serial: int | None) -> None:
    key = p.generate_signing_key(authority.algorithm)
    with pytest.raises(CertificateError) as refused:
        issue(authority, subject_public_key=key.public_key(), app_id=app_id, app_name="n",
              not_before=not_before, not_after=not_after, serial=serial)
    assert refused.value.code == "CERT_INVALID_REQUEST"


# --- storing the root ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("password", [None, b"vault"])
def test_a_root_loads_back_from_its_pems_and_keeps_issuing(authority: CertificateAuthority,
                                                          password: bytes | None) -> None:
    loaded = load_authority(authority.key_pem(password=password), authority.certificate.pem, password=password)
    assert loaded.certificate == authority.certificate
    assert verify_issued_by(_app_cert(loaded), authority.certificate)


def test_a_root_with_someone_elses_key_is_refused(authority: CertificateAuthority) -> None:
    stranger = p.private_key_pem(p.generate_signing_key(authority.algorithm))
    with pytest.raises(CertificateError) as refused:
        load_authority(stranger, authority.certificate.pem)
    assert refused.value.code == "CERT_KEY_MISMATCH"


def test_an_app_certificate_cannot_be_loaded_as_a_root(authority: CertificateAuthority) -> None:
    key = p.generate_signing_key(authority.algorithm)
    app = issue(authority, subject_public_key=key.public_key(), app_id="a", app_name="n",
                not_before=NOW, not_after=NOW + YEAR)
    with pytest.raises(CertificateError) as refused:
        load_authority(p.private_key_pem(key), app.pem)
    assert refused.value.code == "CERT_NOT_A_CA"


# --- RSA: what cryptography thinks of it --------------------------------------------------------------------


def test_rsa_certificates_load_and_verify_with_cryptography(authorities: dict[str, CertificateAuthority]) -> None:
    ca = authorities["RSA-SHA256"]
    cert = cx509.load_pem_x509_certificate(_app_cert(ca, app_id="alipay-notify").pem.encode())
    root = cx509.load_pem_x509_certificate(ca.certificate.pem.encode())
    cert.verify_directly_issued_by(root)
    root_key = root.public_key()
    assert isinstance(root_key, rsa.RSAPublicKey) and cert.signature_hash_algorithm is not None
    root_key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), cert.signature_hash_algorithm)
    assert cert.signature_algorithm_oid.dotted_string == "1.2.840.113549.1.1.11"
    assert cert.subject.get_attributes_for_oid(cx509.NameOID.COMMON_NAME)[0].value == "alipay-notify"
    assert cert.extensions.get_extension_for_class(cx509.BasicConstraints).value.ca is False


def test_a_4096_bit_rsa_root_issues_and_verifies() -> None:
    ca = _authority("RSA-SHA256", rsa_bits=4096)
    assert isinstance(ca.key, rsa.RSAPrivateKey) and ca.key.key_size == 4096
    cert = _app_cert(ca)
    assert verify_issued_by(cert, ca.certificate)
    cx509.load_der_x509_certificate(cert.der).verify_directly_issued_by(
        cx509.load_der_x509_certificate(ca.certificate.der))


# --- SM2: the structure GM/T 0015 asks for, verified by gmssl and openssl -----------------------------------


def test_sm2_certificate_structure(authorities: dict[str, CertificateAuthority]) -> None:
    key = p.generate_signing_key("SM2-SM3")
    assert isinstance(key, p.sm_ec.EllipticCurvePrivateKey)
    info = issue(authorities["SM2-SM3"], subject_public_key=key.public_key(), app_id="a", app_name="n",
                 not_before=NOW, not_after=NOW + YEAR)
    cert = x509.Certificate.load(info.der)
    tbs = cert["tbs_certificate"]
    assert tbs["version"].native == "v3"
    for algorithm in (cert["signature_algorithm"], tbs["signature"]):
        assert algorithm["algorithm"].dotted == "1.2.156.10197.1.501"
        assert algorithm.dump() == bytes.fromhex("300a06082a811ccf55018375")  # no parameters, as OpenSSL/GmSSL
    spki = tbs["subject_public_key_info"]
    assert spki["algorithm"]["algorithm"].dotted == "1.2.840.10045.2.1"
    assert spki["algorithm"]["parameters"].chosen.dotted == "1.2.156.10197.1.301"
    assert spki["public_key"].native == p.sm2_public_point(key)
    assert spki.dump() == key.public_key().public_bytes(  # the same bytes Tongsuo itself writes
        p.sm_serialization.Encoding.DER, p.sm_serialization.PublicFormat.SubjectPublicKeyInfo)
    assert cert.dump(force=True) == info.der  # re-encoding changes nothing: the DER is canonical


def _gmssl_verifies(certificate_der: bytes, root_der: bytes) -> bool:
    """The root's signature over tbsCertificate, checked with asn1crypto and gmssl only."""
    cert, root = x509.Certificate.load(certificate_der), x509.Certificate.load(root_der)
    point = root["tbs_certificate"]["subject_public_key_info"]["public_key"].native
    signature = algos.DSASignature.load(cert["signature_value"].native)
    raw_hex = f"{signature['r'].native:064x}{signature['s'].native:064x}"
    verifier = sm2.CryptSM2(private_key="", public_key="")
    verifier.public_key = point[1:].hex()  # set directly: gmssl's constructor mangles keys starting "04"
    return bool(verifier.verify_with_sm3(raw_hex, cert["tbs_certificate"].dump()))


def test_gmssl_verifies_our_sm2_certificates(authorities: dict[str, CertificateAuthority]) -> None:
    ca = authorities["SM2-SM3"]
    assert _gmssl_verifies(_app_cert(ca).der, ca.certificate.der)
    assert _gmssl_verifies(ca.certificate.der, ca.certificate.der)


def test_gmssl_refuses_a_tampered_sm2_certificate(authorities: dict[str, CertificateAuthority]) -> None:
    ca = authorities["SM2-SM3"]
    der = _app_cert(ca, app_id="app-2000").der
    assert not _gmssl_verifies(der.replace(b"app-2000", b"app-2001"), ca.certificate.der)
    assert not _gmssl_verifies(der, _authority("SM2-SM3").certificate.der)


def test_an_sm2_certificate_signed_by_gmssl_verifies_with_us(authorities: dict[str, CertificateAuthority]) -> None:
    """The reverse direction: gmssl (nonce from ``secrets``) re-signs our tbsCertificate with the root key."""
    ca = authorities["SM2-SM3"]
    assert isinstance(ca.key, p.sm_ec.EllipticCurvePrivateKey)
    cert = x509.Certificate.load(_app_cert(ca).der)
    signer = sm2.CryptSM2(private_key=f"{ca.key.private_numbers().private_value:064x}", public_key="")
    signer.public_key = p.sm2_public_point(ca.key)[1:].hex()
    raw = signer.sign_with_sm3(cert["tbs_certificate"].dump(), secrets.token_hex(32))
    resigned = x509.Certificate({
        "tbs_certificate": cert["tbs_certificate"],
        "signature_algorithm": cert["signature_algorithm"],
        "signature_value": p.sm2_signature_to_der(bytes.fromhex(raw)),
    })
    assert verify_issued_by(resigned.dump(), ca.certificate)


OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="the openssl command is not installed")
DISTID = "distid:1234567812345678"  # OpenSSL 3 does not apply the GM/T default SM2 user ID on its own


def _openssl(*args: str | Path) -> subprocess.CompletedProcess[str]:
    assert OPENSSL is not None
    return subprocess.run(  # noqa: S603 - our own arguments to the openssl found on PATH
        [OPENSSL, *map(str, args)], capture_output=True, text=True, check=False, timeout=30)


@pytest.fixture(scope="module")
def openssl_sm2() -> None:
    if "SM2" not in _openssl("ecparam", "-list_curves").stdout:
        pytest.skip("this openssl is built without SM2")


@needs_openssl
def test_openssl_verifies_our_sm2_certificate(authorities: dict[str, CertificateAuthority], tmp_path: Path,
                                              openssl_sm2: None) -> None:
    ca = authorities["SM2-SM3"]
    (tmp_path / "root.pem").write_text(ca.certificate.pem)
    (tmp_path / "app.pem").write_text(_app_cert(ca, app_id="app-3000").pem)
    (tmp_path / "tampered.pem").write_bytes(parse(_app_cert(ca, app_id="app-3000").der.replace(
        b"app-3000", b"app-3001")).pem.encode())
    now = str(int(NOW.timestamp()) + 60)
    ok = _openssl("verify", "-vfyopt", DISTID, "-attime", now, "-CAfile", tmp_path / "root.pem", tmp_path / "app.pem")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip().endswith(": OK")
    bad = _openssl("verify", "-vfyopt", DISTID, "-attime", now, "-CAfile", tmp_path / "root.pem",
                   tmp_path / "tampered.pem")
    assert bad.returncode != 0
    text = _openssl("x509", "-in", tmp_path / "app.pem", "-noout", "-text").stdout
    assert "SM2-with-SM3" in text and "ASN1 OID: SM2" in text and "CN = app-3000" in text


@needs_openssl
def test_an_openssl_made_sm2_root_loads_and_issues(tmp_path: Path, openssl_sm2: None) -> None:
    key, root = tmp_path / "root.key", tmp_path / "root.pem"
    made = _openssl("genpkey", "-algorithm", "SM2", "-out", key)
    assert made.returncode == 0, made.stderr
    made = _openssl("req", "-x509", "-new", "-key", key, "-sm3", "-sigopt", DISTID, "-subj", "/O=Hospital/CN=Root",
                    "-days", "30", "-addext", "basicConstraints=critical,CA:TRUE", "-out", root)
    assert made.returncode == 0, made.stderr
    authority = load_authority(key.read_bytes(), root.read_text())
    assert authority.algorithm == "SM2-SM3" and verify_issued_by(authority.certificate, authority.certificate)
    now = datetime.now(UTC)
    app = _app_cert(authority, not_before=now, not_after=now + timedelta(days=1))
    (tmp_path / "app.pem").write_text(app.pem)
    ok = _openssl("verify", "-vfyopt", DISTID, "-CAfile", root, tmp_path / "app.pem")
    assert ok.returncode == 0, ok.stderr
