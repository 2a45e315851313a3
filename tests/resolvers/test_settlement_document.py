"""The sealed settlement statement: what the hospital signs is what a receiver verifies, and nothing else passes.

gmssl (pure Python) is the independent reference for the SM2 signature; it only verifies here.
"""

from __future__ import annotations

import base64
import io
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from gmssl import sm2
from pypdf import PdfReader, PdfWriter

from datasources.crypto import primitives as p
from datasources.crypto.certificates import CertificateAuthority, CertificateError, create_authority, issue
from resolvers.settlement_document import (
    CERTIFICATE_FILE,
    CONTENT_FILE,
    SIGNATURE_FILE,
    KeyStatementSigner,
    SealInvalid,
    SettlementStatement,
    StatementInconsistent,
    StatementLine,
    canonical_content,
    render_statement_pdf,
    verify_statement_pdf,
)

NOW = datetime(2026, 11, 30, 2, 30, tzinfo=UTC)  # 10:30 in the hospital
HOSPITAL = "示例市第一人民医院"
INSTITUTION = "H44010600123"


def _authority(name: str) -> CertificateAuthority:
    return create_authority(
        "SM2-SM3", common_name=name, organization=HOSPITAL, valid_days=3650, now=NOW - timedelta(days=30)
    )


def _seal(authority: CertificateAuthority, institution: str = INSTITUTION, *, days: int = 365) -> KeyStatementSigner:
    key = p.generate_signing_key("SM2-SM3")
    assert isinstance(key, p.sm_ec.EllipticCurvePrivateKey)
    issued = issue(
        authority,
        subject_public_key=key.public_key(),
        app_id=institution,
        app_name="电子签章",
        not_before=NOW - timedelta(days=1),
        not_after=NOW + timedelta(days=days),
    )
    return KeyStatementSigner(key=key, certificate_pem=issued.pem)


@pytest.fixture(scope="module")
def root() -> CertificateAuthority:
    return _authority("示例市第一人民医院 电子签章 CA")


@pytest.fixture(scope="module")
def signer(root: CertificateAuthority) -> KeyStatementSigner:
    return _seal(root)


def _statement(**changes: object) -> SettlementStatement:
    lines = (
        StatementLine("阿莫西林胶囊", "0.25g*24粒", "2盒", 1850, 3700, "A"),
        StatementLine("血常规(五分类)", "", "1次", 2500, 2500, "A"),
        StatementLine("胸部CT平扫", "", "1次", 24000, 24000, "B"),
        StatementLine("一次性输液器", "带针", "3套", 350, 1050, "C"),
    )
    statement = SettlementStatement(
        statement_no="JS20261130-000123",
        hospital_name=HOSPITAL,
        institution_code=INSTITUTION,
        patient_name="张*明",
        insurance_type="职工基本医疗保险",
        visit_kind="OUTPATIENT",
        setl_id="440100G0000012345678",
        settled_at=datetime(2026, 11, 30, 2, 10, tzinfo=UTC),
        lines=lines,
        total_fen=31250,
        fund_paid_fen=20000,
        personal_account_fen=6000,
        family_account_fen=1000,
        cash_fen=4250,
    )
    return replace(statement, **changes)  # type: ignore[arg-type]


def _sealed(signer: KeyStatementSigner, statement: SettlementStatement | None = None) -> bytes:
    return render_statement_pdf(statement or _statement(), signer=signer, sealed_at=NOW)


def _attachments(pdf: bytes) -> dict[str, bytes]:
    found = PdfReader(io.BytesIO(pdf)).attachments
    return {name: found[name][0] for name in found}


def _reembed(pdf: bytes, *, pages_from: bytes | None = None, **files: bytes) -> bytes:
    """What someone editing the PDF can do: keep (or swap) the pages, replace any embedded file."""
    embedded = _attachments(pdf) | {name.replace("_", "."): data for name, data in files.items()}
    writer = PdfWriter()
    for page in PdfReader(io.BytesIO(pages_from or pdf)).pages:
        writer.add_page(page)
    for name, data in embedded.items():
        writer.add_attachment(name, data)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _refusal(pdf: bytes, root: CertificateAuthority) -> str:
    with pytest.raises(SealInvalid) as refused:
        verify_statement_pdf(pdf, trusted_roots=[root.certificate])
    return refused.value.reason


def test_a_sealed_statement_verifies_against_the_hospitals_root(
    root: CertificateAuthority, signer: KeyStatementSigner
) -> None:
    pdf = _sealed(signer)
    assert pdf.startswith(b"%PDF-")
    verified = verify_statement_pdf(pdf, trusted_roots=[_authority("another CA").certificate, root.certificate.pem])
    assert verified.statement == _statement()
    assert verified.sealed_at == NOW
    assert verified.signer.subject_cn == INSTITUTION
    assert verified.root == root.certificate
    assert verified.content_sm3 == p.digest("SM3", canonical_content(_statement(), sealed_at=NOW)).hex()


def test_the_pdf_embeds_the_canonical_content_its_signature_and_the_seal_certificate(
    signer: KeyStatementSigner,
) -> None:
    files = _attachments(_sealed(signer))
    content = files[CONTENT_FILE]
    assert content == canonical_content(_statement(), sealed_at=NOW)
    assert b'"total_fen":31250' in content and b'": ' not in content and b'", ' not in content
    assert HOSPITAL.encode() in content  # UTF-8, not \\u escapes
    assert p.verify(p.load_public_key(p.public_key_pem(signer.key)), base64.b64decode(files[SIGNATURE_FILE]), content)
    assert files[CERTIFICATE_FILE].decode() == signer.certificate_pem


def test_the_page_shows_the_hospital_the_amounts_in_yuan_and_the_seal(signer: KeyStatementSigner) -> None:
    pdf = _sealed(signer)
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    digest = p.digest("SM3", canonical_content(_statement(), sealed_at=NOW)).hex()
    for shown in (
        HOSPITAL,
        "医疗保障基金结算清单",
        "阿莫西林胶囊",
        "张*明",
        "312.50",
        "200.00",
        "60.00",
        "10.00",
        "42.50",
        "37.00",
        "240.00",
        "电子签章",
        digest[:16],
        "门诊",
    ):
        assert shown in text, shown


def test_the_signature_verifies_in_gmssl_an_independent_sm2_implementation(signer: KeyStatementSigner) -> None:
    files = _attachments(_sealed(signer))
    xy = p.sm2_public_point(signer.key.public_key())[1:].hex()
    reference = sm2.CryptSM2(private_key="", public_key=xy)
    reference.public_key = xy  # gmssl's lstrip("04") would eat a leading "04" of x (see test_interop_gmssl)
    raw = p.sm2_signature_to_raw(base64.b64decode(files[SIGNATURE_FILE]))
    assert reference.verify_with_sm3(raw.hex(), files[CONTENT_FILE])
    assert not reference.verify_with_sm3(raw.hex(), files[CONTENT_FILE].replace(b"31250", b"31251"))


def test_content_changed_after_sealing_is_refused(root: CertificateAuthority, signer: KeyStatementSigner) -> None:
    pdf = _sealed(signer)
    cheaper = canonical_content(_statement(cash_fen=250, fund_paid_fen=24000), sealed_at=NOW)
    assert _refusal(_reembed(pdf, statement_json=cheaper), root) == "CONTENT_ALTERED"


def test_a_changed_signature_is_refused(root: CertificateAuthority, signer: KeyStatementSigner) -> None:
    pdf = _sealed(signer)
    other = base64.b64encode(signer.sign(b"another statement"))
    assert _refusal(_reembed(pdf, statement_sig=other), root) == "SIGNATURE_INVALID"
    assert _refusal(_reembed(pdf, statement_sig=b"not base64!"), root) == "SIGNATURE_MALFORMED"


def test_a_certificate_from_another_ca_is_refused_even_with_a_matching_signature(
    root: CertificateAuthority, signer: KeyStatementSigner
) -> None:
    pdf = _sealed(signer)
    forger = _seal(_authority("示例市第一人民医院 电子签章 CA"), INSTITUTION)  # same names, another key
    content = _attachments(pdf)[CONTENT_FILE]
    forged = _reembed(
        pdf, signer_pem=forger.certificate_pem.encode(), statement_sig=base64.b64encode(forger.sign(content))
    )
    assert _refusal(forged, root) == "CERT_UNTRUSTED"
    assert _refusal(_reembed(pdf, signer_pem=forger.certificate_pem.encode()), root) == "CERT_UNTRUSTED"


def test_a_seal_of_another_institution_from_the_same_ca_is_refused(
    root: CertificateAuthority, signer: KeyStatementSigner
) -> None:
    pdf = _sealed(signer)
    neighbour = _seal(root, "H44010600999")
    with pytest.raises(ValueError, match="not issued to institution"):
        render_statement_pdf(_statement(), signer=neighbour, sealed_at=NOW)
    content = _attachments(pdf)[CONTENT_FILE]
    resealed = _reembed(
        pdf, signer_pem=neighbour.certificate_pem.encode(), statement_sig=base64.b64encode(neighbour.sign(content))
    )
    assert _refusal(resealed, root) == "SIGNER_NOT_INSTITUTION"


def test_a_seal_certificate_not_valid_at_the_sealing_time_is_refused(root: CertificateAuthority) -> None:
    short_lived = _seal(root, days=10)
    later = NOW + timedelta(days=11)
    with pytest.raises(CertificateError) as refused:
        render_statement_pdf(_statement(), signer=short_lived, sealed_at=later)
    assert refused.value.code == "CERT_EXPIRED"
    pdf = render_statement_pdf(_statement(), signer=short_lived, sealed_at=NOW)
    backdated_claim = canonical_content(_statement(), sealed_at=later)
    claimed = _reembed(
        pdf,
        pages_from=render_statement_pdf(_statement(), signer=short_lived, sealed_at=NOW),
        statement_json=backdated_claim,
        statement_sig=base64.b64encode(short_lived.sign(backdated_claim)),
    )
    assert _refusal(claimed, root) == "CERT_NOT_VALID_AT_SEALING"


def test_signed_content_that_is_not_canonical_is_refused(
    root: CertificateAuthority, signer: KeyStatementSigner
) -> None:
    pdf = _sealed(signer)
    spaced = canonical_content(_statement(), sealed_at=NOW).replace(b'"total_fen":', b'"total_fen": ')
    reembedded = _reembed(pdf, statement_json=spaced, statement_sig=base64.b64encode(signer.sign(spaced)))
    assert _refusal(reembedded, root) == "CONTENT_MALFORMED"


def test_pages_of_another_statement_under_a_valid_seal_are_refused(
    root: CertificateAuthority, signer: KeyStatementSigner
) -> None:
    pdf = _sealed(signer)
    other = _sealed(signer, _statement(patient_name="李*华", statement_no="JS20261130-000999"))
    assert _refusal(_reembed(pdf, pages_from=other), root) == "PAGE_MISMATCH"


def test_what_is_not_a_sealed_pdf_is_refused(root: CertificateAuthority, signer: KeyStatementSigner) -> None:
    assert _refusal(b"%PDF-1.4 nothing here", root) == "NOT_SEALED"
    assert _refusal(b"", root) == "NOT_SEALED"
    writer = PdfWriter()
    for page in PdfReader(io.BytesIO(_sealed(signer))).pages:
        writer.add_page(page)  # the pages without their embedded files
    bare = io.BytesIO()
    writer.write(bare)
    assert _refusal(bare.getvalue(), root) == "NOT_SEALED"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"total_fen": 31200}, "lines add up to 312.50"),
        ({"cash_fen": 4200}, "fund, accounts and cash add up to 312.00"),
        ({"lines": ()}, "at least one line"),
        ({"visit_kind": "EMERGENCY"}, "visit_kind"),
        ({"fund_paid_fen": -1, "cash_fen": 24251}, "negative"),
        ({"settled_at": datetime(2026, 11, 30, 10, 10)}, "timezone-aware"),
        (
            {"visit_kind": "INPATIENT", "admitted_on": date(2026, 11, 20), "discharged_on": date(2026, 11, 19)},
            "discharge date",
        ),
    ],
    ids=["lines-vs-total", "split-vs-total", "no-lines", "visit-kind", "negative", "naive-time", "dates"],
)
def test_an_inconsistent_statement_is_never_sealed(
    signer: KeyStatementSigner, changes: dict[str, object], message: str
) -> None:
    with pytest.raises(StatementInconsistent, match=message):
        render_statement_pdf(_statement(**changes), signer=signer, sealed_at=NOW)


def test_a_long_inpatient_statement_runs_over_pages_and_still_verifies(
    root: CertificateAuthority, signer: KeyStatementSigner
) -> None:
    lines = tuple(
        StatementLine(f"注射用头孢曲松钠(第{day}日,含配药及静脉输液操作费用的长名称)", "1g", "2支", 1525, 3050, "B")
        for day in range(1, 61)
    )
    statement = _statement(
        lines=lines,
        total_fen=183000,
        fund_paid_fen=150000,
        personal_account_fen=20000,
        family_account_fen=0,
        cash_fen=13000,
        visit_kind="INPATIENT",
        admitted_on=date(2026, 10, 1),
        discharged_on=date(2026, 11, 29),
    )
    pdf = _sealed(signer, statement)
    assert len(PdfReader(io.BytesIO(pdf)).pages) > 1
    assert verify_statement_pdf(pdf, trusted_roots=[root.certificate]).statement == statement


def test_a_signer_refuses_a_key_that_is_not_its_certificates(signer: KeyStatementSigner) -> None:
    other = p.generate_signing_key("SM2-SM3")
    assert isinstance(other, p.sm_ec.EllipticCurvePrivateKey)
    with pytest.raises(ValueError, match="does not belong"):
        KeyStatementSigner(key=other, certificate_pem=signer.certificate_pem)
