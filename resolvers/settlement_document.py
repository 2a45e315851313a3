"""The insurance settlement statement (医保结算清单) as a PDF that carries the hospital's SM2 e-seal (电子签章).

A patient takes the statement to an employer, a commercial insurer or a court; whoever receives it
must be able to tell, without asking the hospital, that the amounts are the ones the hospital
settled. So the PDF carries, as standard embedded files a PDF reader lists as attachments:

- ``statement.json``: the canonical content (sorted keys, no spaces, UTF-8, amounts as integer
  fen, times in ISO 8601 with their offset), with the sealing time and a format name;
- ``statement.sig``: the SM2-with-SM3 signature over exactly those bytes (base64 of the DER);
- ``signer.pem``: the seal certificate, issued by an SM2 CA (``datasources.crypto.certificates``)
  with subject CN = the institution code, so a certificate of another hospital, or an app
  certificate of the same CA, cannot seal this hospital's statement.

The visible pages are drawn from the signed bytes themselves (parsed back before drawing), and the
seal block shows the certificate serial and the first 16 hex digits of the content's SM3 digest.
``verify_statement_pdf`` checks the chain, the validity at the sealing time (the signer's claim:
there is no time-stamp authority), the signature, the canonical form, the totals and that the pages
still show the main fields and amounts of the signed content. What it vouches for is the embedded
content: a page added or drawn over by someone else is not detected beyond those fields.

reportlab draws (its built-in CID font STSong-Light, so no font file ships); pypdf embeds and reads
back the attachments, since reportlab writes no embedded files and a hand-written PDF parser would
be more code to trust than a pure-Python library without dependencies.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal, Protocol

from pypdf import PdfReader, PdfWriter
from reportlab.lib.colors import HexColor, black
from reportlab.lib.pagesizes import A4
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen.canvas import Canvas
from tongsuopy.crypto.asymciphers import ec as sm_ec

from datasources.clock import SHANGHAI
from datasources.crypto import certificates, primitives
from datasources.crypto.certificates import CertificateError, CertificateInfo
from datasources.his.billing import INPATIENT, OUTPATIENT
from datasources.money import yuan_text

FORMAT = "hospital-bff/settlement-statement/1"
CONTENT_FILE = "statement.json"
SIGNATURE_FILE = "statement.sig"
CERTIFICATE_FILE = "signer.pem"
VISIT_KINDS = {OUTPATIENT: "门诊", INPATIENT: "住院"}
INSURANCE_CLASSES = {"A": "甲", "B": "乙", "C": "丙"}  # 甲类 fully covered, 乙类 partly, 丙类 self-paid

SealReason = Literal[
    "NOT_SEALED",  # not a PDF, or the content, signature or certificate is not embedded (once each)
    "CERT_MALFORMED",
    "CERT_NOT_FOR_SEALING",  # a CA certificate, or one that is not SM2
    "CERT_UNTRUSTED",  # not issued by any of the trusted roots
    "CERT_NOT_VALID_AT_SEALING",  # the certificate or its root was expired or not yet valid then
    "SIGNER_NOT_INSTITUTION",  # the certificate names another institution
    "SIGNATURE_MALFORMED",
    "SIGNATURE_INVALID",  # the signature was changed, or made with another key
    "CONTENT_ALTERED",  # the content no longer matches the digest printed on the seal, nor the signature
    "CONTENT_MALFORMED",  # signed, but not a canonical, consistent statement
    "PAGE_MISMATCH",  # the pages do not show what was signed
]


class StatementInconsistent(ValueError):
    """A statement whose amounts do not add up, or that misses what a statement must show: never sealed."""


class SealInvalid(ValueError):
    """A sealed statement that must not be trusted; ``reason`` is stable, the message says what was found."""

    def __init__(self, reason: SealReason, message: str) -> None:
        super().__init__(message)
        self.reason: SealReason = reason


@dataclass(frozen=True, slots=True)
class StatementLine:
    name: str
    spec: str  # 规格, "" when none
    quantity: str  # as HIS writes it, e.g. "2盒" or "0.5"; not checked against the amount
    unit_price_fen: int
    amount_fen: int
    insurance_class: str  # A, B or C (甲/乙/丙类)


@dataclass(frozen=True, slots=True)
class SettlementStatement:
    """One insurance settlement as printed. ``patient_name`` is printed as given: mask it before, if needed."""

    statement_no: str
    hospital_name: str
    institution_code: str  # 定点医药机构编码; the seal certificate's CN must be this
    patient_name: str
    insurance_type: str  # 险种, as the insurance platform names it (e.g. 职工基本医疗保险)
    visit_kind: str  # OUTPATIENT or INPATIENT
    setl_id: str
    settled_at: datetime  # aware
    lines: tuple[StatementLine, ...]
    total_fen: int
    fund_paid_fen: int  # 统筹基金支付
    personal_account_fen: int  # 个人账户支付
    family_account_fen: int  # 共济账户支付
    cash_fen: int  # 个人现金支付
    admitted_on: date | None = None
    discharged_on: date | None = None


@dataclass(frozen=True, slots=True)
class VerifiedStatement:
    statement: SettlementStatement
    sealed_at: datetime
    signer: CertificateInfo = field(repr=False)
    root: CertificateInfo = field(repr=False)
    content_sm3: str  # hex of SM3 over the embedded content


class StatementSigner(Protocol):
    """Who applies the seal: an SM2 key in this process, or one in an HSM or a seal service."""

    @property
    def certificate_pem(self) -> str: ...

    def sign(self, data: bytes) -> bytes:
        """SM2-with-SM3 over ``data`` (default user ID), DER-encoded."""
        ...


@dataclass(frozen=True, slots=True)
class KeyStatementSigner:
    """A seal key held in this process, with the certificate its CA issued for it."""

    key: sm_ec.EllipticCurvePrivateKey = field(repr=False)
    certificate_pem: str

    def __post_init__(self) -> None:
        cert = certificates.parse(self.certificate_pem)
        if cert.signature_algorithm != "SM2-SM3" or primitives.algorithm_of(self.key) != "SM2-SM3":
            raise ValueError("the e-seal is SM2-with-SM3: use an SM2 key and its SM2 certificate")
        if primitives.public_key_pem(self.key) != primitives.public_key_pem(cert.public_key):
            raise ValueError(f"the key does not belong to certificate {cert.serial}")

    def sign(self, data: bytes) -> bytes:
        return primitives.sign(self.key, data)


# --- the content ------------------------------------------------------------------------------------


def check_consistent(statement: SettlementStatement) -> None:
    """Raises ``StatementInconsistent``: a sealed statement with wrong sums would be a signed falsehood."""
    s = statement
    for name in ("statement_no", "hospital_name", "institution_code", "patient_name", "insurance_type", "setl_id"):
        value = getattr(s, name)
        if not isinstance(value, str) or not value.strip():
            raise StatementInconsistent(f"the statement's {name} is empty")
    if s.visit_kind not in VISIT_KINDS:
        raise StatementInconsistent(f"visit_kind is {' or '.join(VISIT_KINDS)}, not {s.visit_kind!r}")
    if s.settled_at.tzinfo is None or s.settled_at.utcoffset() is None:
        raise StatementInconsistent("settled_at must be timezone-aware")
    if s.admitted_on and s.discharged_on and s.discharged_on < s.admitted_on:
        raise StatementInconsistent("the discharge date is before the admission date")
    if not s.lines:
        raise StatementInconsistent("a statement has at least one line")
    for number, line in enumerate(s.lines, 1):
        if not line.name.strip():
            raise StatementInconsistent(f"line {number} has no item name")
        if line.insurance_class not in INSURANCE_CLASSES:
            raise StatementInconsistent(f"line {number}: insurance class is A, B or C, not {line.insurance_class!r}")
        _check_fen(f"line {number} unit price", line.unit_price_fen)
        _check_fen(f"line {number} amount", line.amount_fen)
    totals = {
        "total": s.total_fen,
        "pooled fund": s.fund_paid_fen,
        "personal account": s.personal_account_fen,
        "family account": s.family_account_fen,
        "self-pay cash": s.cash_fen,
    }
    for name, fen in totals.items():
        _check_fen(name, fen)
    lines_sum = sum(line.amount_fen for line in s.lines)
    if lines_sum != s.total_fen:
        raise StatementInconsistent(
            f"the lines add up to {yuan_text(lines_sum)} yuan, the total says {yuan_text(s.total_fen)}"
        )
    paid = s.fund_paid_fen + s.personal_account_fen + s.family_account_fen + s.cash_fen
    if paid != s.total_fen:
        raise StatementInconsistent(
            f"fund, accounts and cash add up to {yuan_text(paid)} yuan, the total says {yuan_text(s.total_fen)}"
        )


def canonical_content(statement: SettlementStatement, *, sealed_at: datetime) -> bytes:
    """The bytes that are signed: one encoding per statement, so a verifier can re-derive it exactly."""
    s = statement
    document = {
        "format": FORMAT,
        "sealed_at": sealed_at.isoformat(),
        "statement": {
            "statement_no": s.statement_no,
            "hospital_name": s.hospital_name,
            "institution_code": s.institution_code,
            "patient_name": s.patient_name,
            "insurance_type": s.insurance_type,
            "visit_kind": s.visit_kind,
            "setl_id": s.setl_id,
            "settled_at": s.settled_at.isoformat(),
            "admitted_on": s.admitted_on.isoformat() if s.admitted_on else None,
            "discharged_on": s.discharged_on.isoformat() if s.discharged_on else None,
            "lines": [
                {
                    "name": line.name,
                    "spec": line.spec,
                    "quantity": line.quantity,
                    "unit_price_fen": line.unit_price_fen,
                    "amount_fen": line.amount_fen,
                    "insurance_class": line.insurance_class,
                }
                for line in s.lines
            ],
            "total_fen": s.total_fen,
            "fund_paid_fen": s.fund_paid_fen,
            "personal_account_fen": s.personal_account_fen,
            "family_account_fen": s.family_account_fen,
            "cash_fen": s.cash_fen,
        },
    }
    return json.dumps(document, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def parse_content(content: bytes) -> tuple[SettlementStatement, datetime]:
    """The statement and sealing time back from ``canonical_content``; anything else is ``StatementInconsistent``."""
    try:
        document = json.loads(content.decode())
        if set(document) != {"format", "sealed_at", "statement"} or document["format"] != FORMAT:
            raise StatementInconsistent(f"not a {FORMAT} document")
        raw = document["statement"]
        lines = tuple(
            StatementLine(
                name=_text(line, "name"),
                spec=_text(line, "spec"),
                quantity=_text(line, "quantity"),
                unit_price_fen=line["unit_price_fen"],
                amount_fen=line["amount_fen"],
                insurance_class=_text(line, "insurance_class"),
            )
            for line in raw["lines"]
        )
        statement = SettlementStatement(
            statement_no=_text(raw, "statement_no"),
            hospital_name=_text(raw, "hospital_name"),
            institution_code=_text(raw, "institution_code"),
            patient_name=_text(raw, "patient_name"),
            insurance_type=_text(raw, "insurance_type"),
            visit_kind=_text(raw, "visit_kind"),
            setl_id=_text(raw, "setl_id"),
            settled_at=datetime.fromisoformat(_text(raw, "settled_at")),
            lines=lines,
            total_fen=raw["total_fen"],
            fund_paid_fen=raw["fund_paid_fen"],
            personal_account_fen=raw["personal_account_fen"],
            family_account_fen=raw["family_account_fen"],
            cash_fen=raw["cash_fen"],
            admitted_on=date.fromisoformat(raw["admitted_on"]) if raw["admitted_on"] is not None else None,
            discharged_on=date.fromisoformat(raw["discharged_on"]) if raw["discharged_on"] is not None else None,
        )
        sealed_at = datetime.fromisoformat(_text(document, "sealed_at"))
    except StatementInconsistent:
        raise
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise StatementInconsistent(f"not a readable statement ({type(exc).__name__})") from exc
    check_consistent(statement)
    if sealed_at.tzinfo is None:
        raise StatementInconsistent("sealed_at must be timezone-aware")
    if canonical_content(statement, sealed_at=sealed_at) != content:
        raise StatementInconsistent("not the canonical encoding (sorted keys, no spaces, integer fen, known fields)")
    return statement, sealed_at


# --- sealing and verifying --------------------------------------------------------------------------


def render_statement_pdf(
    statement: SettlementStatement, *, signer: StatementSigner, sealed_at: datetime | None = None
) -> bytes:
    """The sealed PDF. Refuses (``StatementInconsistent``) a statement whose sums do not hold, and
    (``CertificateError``/``ValueError``) a seal certificate that is not valid now or names another institution."""
    check_consistent(statement)
    sealed_at = sealed_at or datetime.now(UTC)
    if sealed_at.tzinfo is None or sealed_at.utcoffset() is None:
        raise ValueError("sealed_at must be timezone-aware")
    cert = certificates.parse(signer.certificate_pem)
    if cert.signature_algorithm != "SM2-SM3" or cert.is_ca:
        raise CertificateError("CERT_INVALID_REQUEST", "the e-seal needs an SM2 end-entity certificate, not a CA's")
    certificates.check_valid_at(cert, sealed_at)
    if cert.subject_cn != statement.institution_code:
        raise ValueError(f"seal certificate {cert.serial} is not issued to institution {statement.institution_code}")
    content = canonical_content(statement, sealed_at=sealed_at)
    signature = signer.sign(content)
    if not primitives.verify(cert.public_key, signature, content):
        raise ValueError(f"the signer's signature does not verify with certificate {cert.serial}")
    drawn, _ = parse_content(content)  # the pages show the signed bytes, not the caller's object
    page = _draw(drawn, sealed_at=sealed_at, serial=cert.serial, digest=primitives.digest("SM3", content).hex())
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(page)))
    writer.add_attachment(CONTENT_FILE, content)
    writer.add_attachment(SIGNATURE_FILE, base64.b64encode(signature))
    writer.add_attachment(CERTIFICATE_FILE, cert.pem.encode())
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def verify_statement_pdf(
    pdf_bytes: bytes, *, trusted_roots: Iterable[CertificateInfo | bytes | str]
) -> VerifiedStatement:
    """The signed statement, or ``SealInvalid`` with the first reason it must not be trusted."""
    content, signature_b64, cert_pem, page_text = _read(pdf_bytes)
    try:
        cert = certificates.parse(cert_pem)
    except CertificateError as exc:
        raise SealInvalid("CERT_MALFORMED", f"the embedded certificate does not read: {exc}") from exc
    if cert.signature_algorithm != "SM2-SM3" or cert.is_ca:
        raise SealInvalid("CERT_NOT_FOR_SEALING", f"certificate {cert.serial} is not an SM2 end-entity certificate")
    root = _issuer_among(cert, trusted_roots)
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SealInvalid("SIGNATURE_MALFORMED", "the embedded signature is not base64") from exc
    digest = primitives.digest("SM3", content).hex()
    if not primitives.verify(cert.public_key, signature, content):
        if digest[:16] not in page_text:
            raise SealInvalid(
                "CONTENT_ALTERED",
                "the embedded content changed after sealing: its SM3 digest is not "
                "the one on the seal and the signature does not match it",
            )
        raise SealInvalid("SIGNATURE_INVALID", f"the signature does not verify with certificate {cert.serial}")
    try:
        statement, sealed_at = parse_content(content)
    except StatementInconsistent as exc:
        raise SealInvalid("CONTENT_MALFORMED", f"the signed content is not a valid statement: {exc}") from exc
    try:
        certificates.check_valid_at(root, sealed_at)
        certificates.check_valid_at(cert, sealed_at)
    except CertificateError as exc:
        raise SealInvalid("CERT_NOT_VALID_AT_SEALING", str(exc)) from exc
    if cert.subject_cn != statement.institution_code:
        raise SealInvalid(
            "SIGNER_NOT_INSTITUTION",
            f"certificate {cert.serial} is issued to {cert.subject_cn!r}, not to the institution on the statement",
        )
    missing = [name for name, value in _visible_fields(statement, cert.serial, digest) if value not in page_text]
    if missing:
        raise SealInvalid("PAGE_MISMATCH", f"the pages do not show the signed {', '.join(missing)}")
    return VerifiedStatement(statement=statement, sealed_at=sealed_at, signer=cert, root=root, content_sm3=digest)


def _read(pdf_bytes: bytes) -> tuple[bytes, bytes, bytes, str]:
    """Content, signature, certificate and the pages' text (whitespace removed) from an untrusted PDF."""
    try:
        reader = PdfReader(io.BytesIO(pdf_bytes))
        attachments = reader.attachments
        files = {
            name: attachments[name] for name in (CONTENT_FILE, SIGNATURE_FILE, CERTIFICATE_FILE) if name in attachments
        }
        text = "".join("".join((page.extract_text() or "").split()) for page in reader.pages)
    except Exception as exc:  # pypdf raises many kinds on a malformed file; none may escape as a crash
        raise SealInvalid("NOT_SEALED", f"not a readable PDF ({type(exc).__name__})") from exc
    for name in (CONTENT_FILE, SIGNATURE_FILE, CERTIFICATE_FILE):
        if len(files.get(name, [])) != 1:
            raise SealInvalid("NOT_SEALED", f"the PDF must embed {name} exactly once")
    return files[CONTENT_FILE][0], files[SIGNATURE_FILE][0], files[CERTIFICATE_FILE][0], text


def _issuer_among(cert: CertificateInfo, roots: Iterable[CertificateInfo | bytes | str]) -> CertificateInfo:
    for candidate in roots:
        root = candidate if isinstance(candidate, CertificateInfo) else certificates.parse(candidate)
        if root.signature_algorithm == "SM2-SM3" and certificates.verify_issued_by(cert, root):
            return root
    raise SealInvalid(
        "CERT_UNTRUSTED",
        f"certificate {cert.serial} of {cert.subject_cn!r} (issuer "
        f"{cert.issuer_cn!r}) is not issued by a trusted SM2 root",
    )


def _visible_fields(s: SettlementStatement, serial: str, digest: str) -> list[tuple[str, str]]:
    """What the verifier looks for on the pages (names only ever reach messages, never the values)."""
    fields = [
        ("hospital name", s.hospital_name),
        ("institution code", s.institution_code),
        ("statement number", s.statement_no),
        ("settlement id", s.setl_id),
        ("patient name", s.patient_name),
        ("total", yuan_text(s.total_fen)),
        ("pooled fund", yuan_text(s.fund_paid_fen)),
        ("personal account", yuan_text(s.personal_account_fen)),
        ("family account", yuan_text(s.family_account_fen)),
        ("self-pay cash", yuan_text(s.cash_fen)),
        ("certificate serial", serial),
        ("content digest", digest[:16]),
    ]
    return [(name, "".join(value.split())) for name, value in fields]


# --- drawing ----------------------------------------------------------------------------------------

FONT = "STSong-Light"
SEAL_RED = HexColor("#D0021B")
MARGIN = 40
PAGE_WIDTH, PAGE_HEIGHT = A4
# Item table: (heading, left x, width, right-aligned)
COLUMNS = (
    ("项目名称", 40, 200, False),
    ("规格", 245, 95, False),
    ("数量", 345, 45, False),
    ("单价(元)", 395, 60, True),
    ("金额(元)", 460, 65, True),
    ("类别", 530, 25, False),
)
LEADING = 13
SEAL_BLOCK_HEIGHT = 150  # totals and seal, kept together on the last page


def _draw(s: SettlementStatement, *, sealed_at: datetime, serial: str, digest: str) -> bytes:
    if FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(FONT))
    out = io.BytesIO()
    canvas = Canvas(out, pagesize=A4, invariant=1)  # invariant: no creation time, same bytes for the same input
    canvas.setTitle(f"医保结算清单 {s.statement_no}")
    canvas.setAuthor(s.hospital_name)
    canvas.setSubject(f"{FORMAT}; sealed SM2-SM3; content in {CONTENT_FILE}")
    page = 1
    y = _header(canvas, s, page)
    for line in s.lines:
        cells = [_wrap(text, 9, width - 4) for text, (_, _, width, _) in zip(_cells(line), COLUMNS, strict=True)]
        height = max(len(c) for c in cells) * LEADING
        if y - height < MARGIN + 20:
            canvas.showPage()
            page += 1
            y = _header(canvas, s, page)
        canvas.setFont(FONT, 9)
        for lines, (_, x, width, right) in zip(cells, COLUMNS, strict=True):
            for i, text in enumerate(lines):
                if right:
                    canvas.drawRightString(x + width, y - i * LEADING, text)
                else:
                    canvas.drawString(x, y - i * LEADING, text)
        y -= height
    if y - SEAL_BLOCK_HEIGHT < MARGIN:
        canvas.showPage()
        page += 1
        y = _header(canvas, s, page, table=False)
    _totals_and_seal(canvas, s, y - 6, sealed_at=sealed_at, serial=serial, digest=digest)
    canvas.showPage()
    canvas.save()
    return out.getvalue()


def _cells(line: StatementLine) -> tuple[str, ...]:
    return (
        line.name,
        line.spec,
        line.quantity,
        yuan_text(line.unit_price_fen),
        yuan_text(line.amount_fen),
        INSURANCE_CLASSES[line.insurance_class],
    )


def _header(canvas: Canvas, s: SettlementStatement, page: int, *, table: bool = True) -> float:
    title_size = 16.0
    while title_size > 8 and pdfmetrics.stringWidth(s.hospital_name, FONT, title_size) > PAGE_WIDTH - 2 * MARGIN:
        title_size -= 1
    canvas.setFillColor(black)
    canvas.setFont(FONT, title_size)
    canvas.drawCentredString(PAGE_WIDTH / 2, PAGE_HEIGHT - 50, s.hospital_name)
    canvas.setFont(FONT, 14)
    canvas.drawCentredString(PAGE_WIDTH / 2, PAGE_HEIGHT - 72, "医疗保障基金结算清单")
    canvas.setFont(FONT, 8)
    canvas.drawRightString(PAGE_WIDTH - MARGIN, MARGIN - 20, f"第 {page} 页")
    settled = s.settled_at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")
    rows = [
        (f"清单编号: {s.statement_no}", f"结算编号: {s.setl_id}"),
        (f"定点医药机构编码: {s.institution_code}", f"结算时间: {settled}"),
        (f"患者姓名: {s.patient_name}", f"险种类型: {s.insurance_type}"),
        (
            f"就诊类型: {VISIT_KINDS[s.visit_kind]}",
            f"入院日期: {s.admitted_on or '—'}   出院日期: {s.discharged_on or '—'}"
            if s.admitted_on or s.discharged_on
            else "",
        ),
    ]
    y = PAGE_HEIGHT - 100
    canvas.setFont(FONT, 10)
    for left_text, right_text in rows:
        canvas.drawString(MARGIN, y, left_text)
        canvas.drawString(300, y, right_text)
        y -= 16
    if not table:
        return y
    y -= 4
    canvas.line(MARGIN, y + 12, PAGE_WIDTH - MARGIN, y + 12)
    canvas.setFont(FONT, 9)
    for heading, x, width, right in COLUMNS:
        if right:
            canvas.drawRightString(x + width, y, heading)
        else:
            canvas.drawString(x, y, heading)
    canvas.line(MARGIN, y - 4, PAGE_WIDTH - MARGIN, y - 4)
    return y - 18


def _totals_and_seal(
    canvas: Canvas, s: SettlementStatement, y: float, *, sealed_at: datetime, serial: str, digest: str
) -> None:
    canvas.line(MARGIN, y + 8, PAGE_WIDTH - MARGIN, y + 8)
    canvas.setFont(FONT, 10)
    totals = (
        ("费用总额", s.total_fen),
        ("统筹基金支付", s.fund_paid_fen),
        ("个人账户支付", s.personal_account_fen),
        ("共济账户支付", s.family_account_fen),
        ("个人现金支付", s.cash_fen),
    )
    for label, fen in totals:
        y -= 16
        canvas.drawString(MARGIN, y, f"{label}:")
        canvas.drawRightString(MARGIN + 200, y, f"{yuan_text(fen)} 元")
    centre_x, centre_y, radius = PAGE_WIDTH - MARGIN - 60, y + 30, 55
    canvas.setStrokeColor(SEAL_RED)
    canvas.setFillColor(SEAL_RED)
    canvas.setLineWidth(2.5)
    canvas.circle(centre_x, centre_y, radius, stroke=1, fill=0)
    canvas.setFont(FONT, 8)
    name_lines = _wrap(s.hospital_name, 8, radius * 1.5)[:3]
    for i, text in enumerate(name_lines):
        canvas.drawCentredString(centre_x, centre_y + 28 - i * 10, text)
    canvas.setFont(FONT, 18)
    canvas.drawCentredString(centre_x, centre_y - 12, "★")
    canvas.setFont(FONT, 10)
    canvas.drawCentredString(centre_x, centre_y - 36, "电子签章")
    canvas.setFillColor(black)
    canvas.setFont(FONT, 8)
    sealed = sealed_at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")
    notes = (
        "电子签章 SM2-SM3",
        f"证书序列号: {serial}",
        f"内容摘要(SM3): {digest[:16]}",
        f"签章时间: {sealed}",
        f"签名内容见附件 {CONTENT_FILE}",
    )
    for i, text in enumerate(notes):
        canvas.drawString(MARGIN + 212, y + 56 - i * 12, text)
    canvas.setStrokeColor(black)


def _wrap(text: str, size: float, width: float) -> list[str]:
    """Lines of at most ``width`` points, broken between any two characters (Chinese has no spaces to break at)."""
    lines: list[str] = []
    current = ""
    for char in text:
        if current and pdfmetrics.stringWidth(current + char, FONT, size) > width:
            lines.append(current)
            current = char
        else:
            current += char
    return [*lines, current]


def _check_fen(name: str, fen: Any) -> None:
    if isinstance(fen, bool) or not isinstance(fen, int):
        raise StatementInconsistent(f"{name} is integer fen, not {type(fen).__name__}")
    if fen < 0:
        raise StatementInconsistent(f"{name} is negative")


def _text(mapping: dict[str, Any], key: str) -> str:
    value = mapping[key]
    if not isinstance(value, str):
        raise TypeError(f"{key} is text")
    return value
