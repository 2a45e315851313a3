"""Outpatient payments: the registration fee and the pending bills (待缴费), paid by the patient's
own channel (the app they are in), once per idempotency key, refunded by the original route.

The HIS says what is owed; the BFF never prices anything itself. A bill list is paid as one
order (merged payment), all of the bills or none, and the total is checked against their items.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlmodel import col

from datasources.his import billing as b
from datasources.his import contract as his
from datasources.store.models import ChannelIdentity, PaymentOrder
from resolvers import idempotency
from resolvers.deps import Deps
from resolvers.errors import InvalidInput, NotAllowed, NotFound, OrderClosed, ServiceUnavailable, in_service
from resolvers.payments import orders as o
from resolvers.payments import refunds
from resolvers.registration import his_patient_owners, owned_registration

NOT_ENABLED = "Online payment is not enabled at this hospital; please pay at the cashier."


@dataclass(frozen=True, slots=True)
class Started:
    order: o.Order
    client: dict[str, str]  # for wx.requestPayment / my.tradePay


def payments_of(deps: Deps) -> o.Payments:
    if deps.payments is None:
        raise NotAllowed(NOT_ENABLED, "CHANNEL_NOT_ENABLED")
    return deps.payments


async def payer(deps: Deps, *, account_id: int, session_channel: str | None) -> tuple[str, str]:
    """(payment channel, payer id): the channel of the app the patient is in, and who they are there."""
    front_end = deps.front_ends.get(session_channel or "")
    if front_end is None or front_end.payment is None:
        raise NotAllowed("This app cannot take payments; open the hospital's mini-program.", "CHANNEL_NOT_ENABLED")
    async with deps.db.reading() as s:
        subject = (
            await s.execute(
                select(col(ChannelIdentity.subject)).where(
                    col(ChannelIdentity.account_id) == account_id, col(ChannelIdentity.channel) == front_end.login
                )
            )
        ).scalar_one_or_none()
    if subject is None:
        raise NotAllowed("Log in with the app you pay with first.", "PAYER_UNKNOWN")
    return front_end.payment, subject


async def started_of(deps: Deps, payments: o.Payments, order_no: str) -> Started:
    order = await o.load(deps, order_no)
    assert order is not None
    if order.status == o.CLOSED:
        raise OrderClosed("This payment was closed before it was paid; start it again.")
    return Started(order, o.client_parameters(payments, order))


async def pay_registration(
    deps: Deps, *, account_id: int, session_channel: str | None, registration_id: str, idempotency_key: str
) -> Started:
    payments = payments_of(deps)

    async def run() -> str:
        registration, patient_id = await owned_registration(
            deps, account_id=account_id, registration_id=registration_id
        )
        if registration.payment_status != "UNPAID" or registration.status not in ("BOOKED", "CHECKED_IN"):
            raise NotAllowed(_why_not_payable(registration), "NOT_PAYABLE")
        if registration.hold_expires_at is not None and registration.hold_expires_at <= deps.clock.now():
            raise OrderClosed("The time to pay for this registration has run out; book again.")
        channel, who = await payer(deps, account_id=account_id, session_channel=session_channel)
        payable = o.Payable(
            purpose=o.REGISTRATION, subject={"registrationId": registration.id},
            open_subject=f"REGISTRATION:{registration.id}", patient_id=patient_id,
            his_patient_id=registration.his_patient_id, description="挂号费 Registration fee",
            total_fen=registration.fee_fen,
            pay_by=registration.hold_expires_at or deps.clock.now() + payments.order_timeout,
        )
        order = await o.start(deps, payments, account_id=account_id, payable=payable, channel_code=channel, payer=who)
        return order.order_no

    order_no = await idempotency.once(
        deps.db, deps.clock, account_id=account_id, scope="payRegistration", key=idempotency_key,
        request={"registrationId": registration_id}, run=run,
    )
    return await started_of(deps, payments, order_no)


def _why_not_payable(r: his.Registration) -> str:
    if r.payment_status == "PAID":
        return "This registration is already paid."
    if r.payment_status == "PAY_LATER":
        return "This visit is treat first, pay later: its bills appear under pending payments after the visit."
    return "This registration can no longer be paid."


async def pending_bills(deps: Deps, *, account_id: int, patient_id: int | None = None) -> list[tuple[b.Bill, int]]:
    """The unpaid bills of the account's patients (or one of them), with the patient each belongs to."""
    billing = _billing(deps)
    owners = await his_patient_owners(deps, account_id)
    wanted = [h for h, p in owners.items() if patient_id is None or p == patient_id]
    if patient_id is not None and not wanted:
        raise NotFound("No such patient on this account.")
    bills = await in_service(billing.pending_bills(wanted)) if wanted else []
    return [(bill, owners[bill.his_patient_id]) for bill in bills]


async def bills_of(deps: Deps, *, account_id: int, bill_ids: Sequence[str]) -> list[tuple[b.Bill, int]]:
    billing = _billing(deps)
    owners = await his_patient_owners(deps, account_id)
    bills = await in_service(billing.bills_by_ids(list(bill_ids)))
    return [(bill, owners[bill.his_patient_id]) for bill in bills if bill.his_patient_id in owners]


def _billing(deps: Deps) -> b.HISBilling:
    if deps.sources.billing is None:
        raise ServiceUnavailable(NOT_ENABLED)
    return deps.sources.billing


async def pay_bills(
    deps: Deps, *, account_id: int, session_channel: str | None, bill_ids: Sequence[str], idempotency_key: str
) -> Started:
    """One order for several bills of one patient (merged payment)."""
    payments = payments_of(deps)
    wanted = sorted(set(bill_ids))
    if not wanted or len(wanted) > 50:
        raise InvalidInput("billIds", "Choose between 1 and 50 bills to pay.")

    async def run() -> str:
        found = await bills_of(deps, account_id=account_id, bill_ids=wanted)
        if len(found) != len(wanted):
            raise NotFound("One of these bills does not exist on this account.")
        patients = {patient_id for _, patient_id in found}
        his_patients = {bill.his_patient_id for bill, _ in found}
        if len(patients) != 1 or len(his_patients) != 1:
            raise InvalidInput("billIds", "Pay one patient's bills at a time.")
        unpaid = [bill for bill, _ in found if bill.status == b.UNPAID]
        if len(unpaid) != len(found):
            raise NotAllowed("One of these bills is already paid or was withdrawn; refresh the list.", "NOT_PAYABLE")
        for bill in unpaid:
            if sum(i.amount_fen for i in bill.items) != bill.total_fen:
                raise ServiceUnavailable("A bill's items do not add up to its total; please pay at the cashier.")
        channel, who = await payer(deps, account_id=account_id, session_channel=session_channel)
        titles = "、".join(bill.title for bill in unpaid)
        payable = o.Payable(
            purpose=o.BILLS, subject={"billIds": wanted}, open_subject="BILLS:" + ",".join(wanted)[:150],
            patient_id=patients.pop(), his_patient_id=his_patients.pop(), description=f"门诊缴费 {titles}"[:120],
            total_fen=sum(bill.total_fen for bill in unpaid), pay_by=deps.clock.now() + payments.order_timeout,
        )
        order = await o.start(deps, payments, account_id=account_id, payable=payable, channel_code=channel, payer=who)
        return order.order_no

    order_no = await idempotency.once(
        deps.db, deps.clock, account_id=account_id, scope="payBills", key=idempotency_key,
        request={"billIds": wanted}, run=run,
    )
    return await started_of(deps, payments, order_no)


async def confirm_payment(deps: Deps, *, account_id: int, order_no: str) -> o.Order:
    """The mini-program says "paid" (wx.requestPayment succeeded): ask the channel, do not believe it."""
    payments = payments_of(deps)
    await o.owned(deps, account_id=account_id, order_no=order_no)
    return await o.confirm(deps, payments, order_no)


async def cancel_payment(deps: Deps, *, account_id: int, order_no: str) -> o.Order:
    """The patient gives up an unpaid order: closed at the channel and here (a paid one is confirmed)."""
    payments = payments_of(deps)
    order = await o.owned(deps, account_id=account_id, order_no=order_no)
    if order.status not in o.OPEN:
        return order
    return await o.retire(deps, payments, order) or order


async def refund_cancelled_registration(deps: Deps, registration: his.Registration) -> refunds.Refund | None:
    """After the HIS cancelled a registration: a payment still open for it is closed (or, if the
    patient paid a moment ago, confirmed, and then refunded because the HIS refuses it); a paid fee
    goes back by the route it came."""
    if deps.payments is None:
        return None
    still_open = await o.open_for(deps, f"REGISTRATION:{registration.id}")
    if still_open is not None:
        await o.retire(deps, deps.payments, still_open)
    if registration.payment_status != "PAID":
        return None
    async with deps.db.reading() as s:
        order_no = (
            await s.execute(
                select(col(PaymentOrder.order_no)).where(
                    col(PaymentOrder.purpose) == o.REGISTRATION,
                    col(PaymentOrder.subject) == json.dumps({"registrationId": registration.id}, sort_keys=True),
                    col(PaymentOrder.status) == o.SETTLED,
                )
            )
        ).scalar_one_or_none()
    if order_no is None:
        return None  # paid at the counter: refunded there
    order = await o.load(deps, order_no)
    assert order is not None
    if refunds.refundable(order) <= 0:
        return None
    return await refunds.request(
        deps, deps.payments, order, amount_fen=refunds.refundable(order),
        reason="Appointment cancelled.", cause=refunds.PATIENT_CANCELLED,
    )

