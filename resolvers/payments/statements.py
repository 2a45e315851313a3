"""医保结算单: the settlement statement of a payment the insurance took part in, as a PDF under the
hospital's electronic seal, and the check anyone holding it can run.

The seal is an SM2 key in the keyring (purpose E_SEAL) whose certificate the BFF's SM2 root issues
to the hospital's insurance institution code, on first use. The PDF carries the signed content,
the signature and the certificate (resolvers/settlement_document.py); a verifier needs only the
root, published at ``/security/certificates``, or can post the file to the BFF's verify endpoint.
Validity is judged by real time (the security clock), never by the hospital's business clock.
"""

from __future__ import annotations

from datetime import timedelta

from datasources.crypto import certificates, primitives
from datasources.crypto.certificates import CertificateInfo
from datasources.store.keyring import CA_SM2, E_SEAL
from resolvers import apps, patients
from resolvers.deps import Deps
from resolvers.errors import NotAllowed, NotFound, in_service
from resolvers.payments import orders as o
from resolvers.privacy import mask_name
from resolvers.settlement_document import (
    KeyStatementSigner,
    SettlementStatement,
    StatementLine,
    VerifiedStatement,
    render_statement_pdf,
    verify_statement_pdf,
)

SEAL_NAME = "电子签章"
SEAL_VALID_DAYS = 825


async def seal(deps: Deps, institution_code: str) -> KeyStatementSigner:
    keyring = deps.cipher.keyring
    key = await keyring.ensure(E_SEAL, "SM2-SM3")
    private = primitives.load_private_key(key.material)
    if key.certificate_pem is None or certificates.parse(key.certificate_pem).subject_cn != institution_code:
        root = await apps.authority(
            keyring, "SM2-SM3", clock=deps.security_clock, organization=deps.certificates.organization
        )
        now = deps.security_clock.now()
        issued = certificates.issue(
            root, subject_public_key=private.public_key(), app_id=institution_code, app_name=SEAL_NAME,
            not_before=now - timedelta(minutes=5),
            not_after=min(now + timedelta(days=SEAL_VALID_DAYS), root.certificate.not_after),
        )
        await keyring.set_certificate(key.kid, issued.pem, expires_at=issued.not_after)
        key = keyring.get(key.kid)
    assert key.certificate_pem is not None
    return KeyStatementSigner(private, key.certificate_pem)  # type: ignore[arg-type]


async def statement_pdf(deps: Deps, *, account_id: int, order_no: str) -> bytes:
    """The sealed statement of one of the account's payments that the insurance paid part of."""
    payments = deps.payments
    order = await o.owned(deps, account_id=account_id, order_no=order_no)
    if payments is None or order.insurance_status != "PAID" or order.status != o.SETTLED:
        raise NotAllowed("Only a payment settled with medical insurance has a settlement statement.", "NO_SETTLEMENT")
    billing = deps.sources.billing
    if billing is None:
        raise NotFound("The hospital's billing is not available.")
    bills = await in_service(billing.bills_by_ids([str(i) for i in order.subject.get("billIds", [])]))
    lines = tuple(
        StatementLine(
            name=item.name, spec=item.spec, quantity=f"{item.quantity}{item.unit}", unit_price_fen=item.unit_price_fen,
            amount_fen=item.amount_fen, insurance_class=item.insurance_class or "C",
        )
        for bill in bills
        for item in bill.items
    )
    patient = await patients.owned(deps, account_id=account_id, patient_id=order.patient_id)
    statement = SettlementStatement(
        statement_no=order.order_no, hospital_name=payments.institution.name,
        institution_code=payments.institution.org_code, patient_name=mask_name(patient.name),
        insurance_type="基本医疗保险", visit_kind="OUTPATIENT", setl_id=order.insurance_order or "",
        settled_at=order.paid_at or order.created_at, lines=lines, total_fen=order.total_fen,
        fund_paid_fen=order.fund_fen, personal_account_fen=order.personal_account_fen,
        family_account_fen=order.family_account_fen, cash_fen=order.self_pay_fen,
    )
    signer = await seal(deps, payments.institution.org_code)
    return render_statement_pdf(statement, signer=signer, sealed_at=deps.security_clock.now())


def trusted_roots(deps: Deps) -> list[CertificateInfo]:
    """Every SM2 root the BFF has had (a statement sealed before a root rotation still verifies)."""
    return [
        certificates.parse(key.certificate_pem)
        for key in deps.cipher.keyring.keys()
        if key.purpose == CA_SM2 and key.certificate_pem
    ]


def verify(deps: Deps, pdf: bytes) -> VerifiedStatement:
    return verify_statement_pdf(pdf, trusted_roots=trusted_roots(deps))
