"""Deposits (预交金): topping up the outpatient or an inpatient deposit through the patient's app, or
through a payment link and its QR code that someone else can scan (a relative, a kiosk screen).

A top-up first clears what the patient owes the hospital (欠费); when that brings the arrears to
nothing, the hospital reports it to the provincial credit platform, and a patient who was refused
booking for arrears here (DEFAULTED_HERE) can book and check in again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from datasources.errors import SourceUnavailable
from datasources.his import billing as b
from resolvers import idempotency, patients
from resolvers.deps import Deps
from resolvers.errors import InvalidInput, MedicalCardRequired, NotFound, in_service
from resolvers.payments import orders as o
from resolvers.payments.outpatient import Started, payer, payments_of, started_of

log = logging.getLogger(__name__)

KINDS = (b.OUTPATIENT, b.INPATIENT)
MAX_TOP_UP_FEN = 5_000_000  # 50,000 yuan: above this the cashier's counter, not a phone


@dataclass(frozen=True, slots=True)
class Account:
    patient_id: int
    kind: str
    admission_id: str | None
    balance_fen: int
    arrears_fen: int


async def accounts(deps: Deps, *, account_id: int, patient_id: int) -> list[Account]:
    patient = await patients.owned(deps, account_id=account_id, patient_id=patient_id)
    if not patient.his_patient_id or deps.sources.billing is None:
        return []
    found = await in_service(deps.sources.billing.deposit_accounts([patient.his_patient_id]))
    return [Account(patient_id, a.kind, a.admission_id, a.balance_fen, a.arrears_fen) for a in found]


async def top_up(
    deps: Deps, *, account_id: int, session_channel: str | None, patient_id: int, kind: str,
    admission_id: str | None, amount_fen: int, idempotency_key: str,
) -> Started:
    payments = payments_of(deps)
    if kind not in KINDS:
        raise InvalidInput("kind", "A deposit is OUTPATIENT or INPATIENT.")
    if (kind == b.INPATIENT) != bool(admission_id):
        raise InvalidInput("admissionId", "An inpatient deposit names its admission; an outpatient one does not.")
    if not 1 <= amount_fen <= MAX_TOP_UP_FEN:
        raise InvalidInput("amountFen", f"Top up between 0.01 and {MAX_TOP_UP_FEN // 100:,} yuan.")

    async def run() -> str:
        patient = await patients.owned(deps, account_id=account_id, patient_id=patient_id)
        if not patient.his_patient_id:
            raise MedicalCardRequired(patient_id)
        channel, who = await payer(deps, account_id=account_id, session_channel=session_channel)
        subject = {"kind": kind, "admissionId": admission_id, "amountFen": amount_fen}
        payable = o.Payable(
            purpose=o.DEPOSIT, subject=subject,
            open_subject=f"DEPOSIT:{patient.his_patient_id}:{kind}:{admission_id or ''}",
            patient_id=patient_id, his_patient_id=patient.his_patient_id,
            description="门诊预交金 Outpatient deposit" if kind == b.OUTPATIENT else "住院预交金 Inpatient deposit",
            total_fen=amount_fen, pay_by=deps.clock.now() + payments.order_timeout,
        )
        order = await o.start(deps, payments, account_id=account_id, payable=payable, channel_code=channel, payer=who)
        return order.order_no

    order_no = await idempotency.once(
        deps.db, deps.clock, account_id=account_id, scope="topUpDeposit", key=idempotency_key,
        request={"patientId": patient_id, "kind": kind, "admissionId": admission_id, "amountFen": amount_fen},
        run=run,
    )
    return await started_of(deps, payments, order_no)


async def write_back(deps: Deps, order: o.Order) -> b.Receipt | None:
    """The top-up reaches the HIS; if it cleared the arrears, the credit platform hears of it."""
    billing = deps.sources.billing
    assert billing is not None
    account = await billing.top_up_deposit(
        order.his_patient_id, order.subject["kind"], order.subject.get("admissionId"),
        b.PaymentRecord(
            reference=order.order_no, channel=o.HIS_CHANNEL.get(order.channel, order.channel),
            total_fen=order.total_fen, self_pay_fen=order.self_pay_fen, channel_trade_no=order.channel_trade_no or "",
            paid_at=order.paid_at,
        ),
    )
    if account.kind == b.OUTPATIENT:
        await report_arrears(deps, order, account.arrears_fen)
    return None


async def report_arrears(deps: Deps, order: o.Order, arrears_fen: int) -> None:
    try:
        patient = await patients.owned(deps, account_id=order.account_id, patient_id=order.patient_id)
    except NotFound:
        return  # the patient was removed from the account meanwhile; the counter reports it
    try:
        await deps.sources.credit.report_arrears(
            name=patient.name, document_number=patient.document_number, arrears_fen=arrears_fen
        )
    except SourceUnavailable:
        log.warning("credit platform unavailable: arrears of order %s's patient not reported yet", order.order_no)

