"""Outpatient payments over HTTP: the registration fee and pending bills, paid through the patient's
own app, the channels' notifications arriving as real HTTP requests (duplicated, late, forged), the
HIS told once, refunds by the original route."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlmodel import col

from datasources.clock import FixedClock, local_date
from datasources.his import billing as b
from datasources.his.billing_sandbox import SandboxHISBillingAdmin
from datasources.his.tables import HisCard
from datasources.store.models import MedicalCardBinding, Notification, PaymentOrder
from resolvers.payments import orders
from resolvers.payments import refunds as payment_refunds
from resolvers.registration import release_expired_holds
from tests.conftest import LiveServer
from tests.factories import ADD_PATIENT, CREATE_RECORD, Hospital, PatientHandle, complete_patient

BOOK = """
mutation Book($patientId: ID!, $slotId: ID!) {
  bookAppointment(input: {patientId: $patientId, slotId: $slotId}) {
    __typename ... on AppointmentBooked { registration { id paymentStatus holdExpiresAt fee { fen } } }
    ... on UserError { code message }
  }
}"""
PAY_REGISTRATION = """
mutation Pay($id: ID!, $key: String!) {
  payRegistration(input: {registrationId: $id, idempotencyKey: $key}) {
    __typename
    ... on PaymentStarted {
      order { orderNo status amount { fen } channel purpose expiresAt }
      wechatPay { appId timeStamp nonceStr package signType paySign }
      alipay { tradeNo }
    }
    ... on NotAllowedError { reason }
    ... on UserError { code message }
  }
}"""
PAY_BILLS = """
mutation PayBills($ids: [ID!]!, $key: String!) {
  payBills(input: {billIds: $ids, idempotencyKey: $key}) {
    __typename
    ... on PaymentStarted { order { orderNo status amount { fen } channel } alipay { tradeNo } wechatPay { paySign } }
    ... on NotAllowedError { reason }
    ... on UserError { code message }
  }
}"""
CONFIRM = """
mutation Confirm($no: String!) {
  confirmPayment(input: {orderNo: $no}) {
    __typename ... on PaymentOrder { status receiptNo paidAt } ... on UserError { code message }
  }
}"""
PAYMENT = """
query Payment($no: String!) {
  me { payment(orderNo: $no) {
    status amount { fen } refunded { fen } receiptNo invoiceUrl
    refunds { refundNo status amount { fen } reason }
  } }
}"""
REGISTRATION = "query ($id: ID!) { me { registration(id: $id) { paymentStatus status } } }"
PENDING = """
{ me { pendingBills { id title category total { fen yuan } items { name quantity unitPrice { fen } amount { fen } } } } }"""
CANCEL = """
mutation Cancel($id: ID!) {
  cancelRegistration(input: {registrationId: $id}) {
    __typename ... on RegistrationCancelled { refundPending registration { status paymentStatus } }
    ... on UserError { code message }
  }
}"""
ALIPAY_LOGIN = """
mutation ($code: String!) {
  loginWithAlipay(input: {authCode: $code}) { __typename ... on LoginSuccess { token account { id } } }
}"""


def key() -> str:
    return str(uuid.uuid4())


async def _unpaid_registration(server: LiveServer, clock: FixedClock) -> tuple[Hospital, PatientHandle, dict[str, Any]]:
    """A patient with arrears elsewhere books: no pay-later, so the fee is due within the hold."""
    hospital = await Hospital(server.deps.db, clock).build()
    patient = await hospital.patient(server.url, credit="DEFAULTED_ELSEWHERE")
    _, slots = await hospital.session(day=local_date(clock.now()) + timedelta(days=1))
    booked = (await patient.client.execute(BOOK, {"patientId": patient.patient_id, "slotId": slots[0]}))
    registration = booked["bookAppointment"]["registration"]
    assert registration["paymentStatus"] == "UNPAID" and registration["holdExpiresAt"], registration
    return hospital, patient, registration


def _wechatpay(server: LiveServer) -> Any:
    return server.deps.sources.wechatpay


async def _notifications(server: LiveServer, account_id: str, kind: str) -> int:
    async with server.deps.db.reading() as s:
        return int(
            (
                await s.execute(
                    select(func.count()).where(
                        col(Notification.account_id) == int(account_id), col(Notification.kind) == kind
                    )
                )
            ).scalar_one()
        )


async def test_a_registration_fee_paid_in_wechat_reaches_the_his_once(server: LiveServer, clock: FixedClock) -> None:
    _, patient, registration = await _unpaid_registration(server, clock)
    pay_key = key()
    started = (await patient.client.execute(PAY_REGISTRATION, {"id": registration["id"], "key": pay_key}))
    result = started["payRegistration"]
    assert result["__typename"] == "PaymentStarted", result
    order = result["order"]
    assert (order["status"], order["amount"]["fen"], order["channel"]) == ("PAYING", 5000, "WECHAT_PAY")
    assert result["wechatPay"]["signType"] == "RSA" and result["wechatPay"]["package"].startswith("prepay_id=")
    assert result["alipay"] is None

    # The patient pays; WeChat Pay notifies over HTTP, and sends the same notification three more times.
    wechatpay = _wechatpay(server)
    await wechatpay.pay(order["orderNo"], deliver=False)
    [notice] = await wechatpay.notifications(order["orderNo"])
    assert await wechatpay.deliver(notice.notify_id, copies=4)

    paid = (await patient.client.execute(PAYMENT, {"no": order["orderNo"]}))["me"]["payment"]
    assert paid["status"] == "SETTLED" and paid["receiptNo"] and paid["invoiceUrl"]
    seen = (await patient.client.execute(REGISTRATION, {"id": registration["id"]}))["me"]["registration"]
    assert seen["paymentStatus"] == "PAID"
    receipts = await server.deps.sources.billing.receipts_by_references([order["orderNo"]])
    assert [r.registration_id for r in receipts] == [registration["id"]]
    assert await _notifications(server, patient.account_id, "PAYMENT_SUCCEEDED") == 1

    # The app says "paid" too, and retries the mutation with its key: nothing moves again.
    confirmed = (await patient.client.execute(CONFIRM, {"no": order["orderNo"]}))["confirmPayment"]
    assert confirmed["status"] == "SETTLED"
    again = (await patient.client.execute(PAY_REGISTRATION, {"id": registration["id"], "key": pay_key}))
    assert again["payRegistration"]["order"]["orderNo"] == order["orderNo"]
    fresh = (await patient.client.execute(PAY_REGISTRATION, {"id": registration["id"], "key": key()}))
    assert fresh["payRegistration"]["__typename"] == "NotAllowedError"
    assert fresh["payRegistration"]["reason"] == "NOT_PAYABLE"
    assert await _notifications(server, patient.account_id, "PAYMENT_SUCCEEDED") == 1


async def test_twenty_concurrent_duplicates_make_one_order_and_one_charge(
    server: LiveServer, clock: FixedClock
) -> None:
    _, patient, registration = await _unpaid_registration(server, clock)
    pay_key = key()
    answers = await asyncio.gather(
        *(patient.client.execute(PAY_REGISTRATION, {"id": registration["id"], "key": pay_key}) for _ in range(20))
    )
    numbers = {a["payRegistration"]["order"]["orderNo"] for a in answers if a["payRegistration"].get("order")}
    kinds = {a["payRegistration"]["__typename"] for a in answers}
    assert len(numbers) == 1, numbers
    assert kinds <= {"PaymentStarted", "IdempotencyConflictError"}, kinds
    async with server.deps.db.reading() as s:
        count = (await s.execute(select(func.count()).select_from(PaymentOrder))).scalar_one()
    assert count == 1
    # Another key for the same registration while this order is open: the same order, not a second one.
    other = (await patient.client.execute(PAY_REGISTRATION, {"id": registration["id"], "key": key()}))
    assert other["payRegistration"]["order"]["orderNo"] in numbers
    order_no = numbers.pop()
    await _wechatpay(server).pay(order_no)
    settled = await orders.confirm(server.deps, server.deps.payments, order_no)  # type: ignore[arg-type]
    assert settled.status == "SETTLED"
    receipts = await server.deps.sources.billing.receipts_by_references([order_no])
    assert len(receipts) == 1


async def test_an_unpaid_order_closes_and_the_slot_goes_back(server: LiveServer, clock: FixedClock) -> None:
    _, patient, registration = await _unpaid_registration(server, clock)
    started = (await patient.client.execute(PAY_REGISTRATION, {"id": registration["id"], "key": key()}))
    order_no = started["payRegistration"]["order"]["orderNo"]
    clock.advance(minutes=16)
    assert await orders.sweep(server.deps, server.deps.payments) == 1  # type: ignore[arg-type]
    await release_expired_holds(server.deps)
    closed = (await patient.client.execute(PAYMENT, {"no": order_no}))["me"]["payment"]
    assert closed["status"] == "CLOSED"
    channel = await _wechatpay(server).query(order_no)
    assert channel.trade_state == "CLOSED"  # closed at WeChat Pay too: it can no longer be paid
    seen = (await patient.client.execute(REGISTRATION, {"id": registration["id"]}))["me"]["registration"]
    assert seen["status"] == "EXPIRED"
    retry = (await patient.client.execute(PAY_REGISTRATION, {"id": registration["id"], "key": key()}))
    assert retry["payRegistration"]["__typename"] == "NotAllowedError"


async def test_a_payment_that_arrives_after_the_hold_ended_is_refunded_in_full(
    server: LiveServer, clock: FixedClock
) -> None:
    _, patient, registration = await _unpaid_registration(server, clock)
    started = (await patient.client.execute(PAY_REGISTRATION, {"id": registration["id"], "key": key()}))
    order_no = started["payRegistration"]["order"]["orderNo"]
    wechatpay = _wechatpay(server)
    await wechatpay.pay(order_no, deliver=False)  # paid at the last second; the notification is late
    clock.advance(minutes=15, seconds=1)
    await release_expired_holds(server.deps)  # the HIS gives the place away meanwhile
    [notice] = await wechatpay.notifications(order_no)
    assert await wechatpay.deliver(notice.notify_id)
    await wechatpay.settle_refunds()  # WeChat Pay finishes the refund and notifies it
    order = (await patient.client.execute(PAYMENT, {"no": order_no}))["me"]["payment"]
    assert order["status"] == "REFUNDED", order
    assert [(r["status"], r["amount"]["fen"]) for r in order["refunds"]] == [("SUCCEEDED", 5000)]
    assert await _notifications(server, patient.account_id, "REFUND_SUCCEEDED") == 1
    assert await _notifications(server, patient.account_id, "PAYMENT_SUCCEEDED") == 0


async def test_cancelling_a_paid_appointment_refunds_by_the_original_route(
    server: LiveServer, clock: FixedClock
) -> None:
    _, patient, registration = await _unpaid_registration(server, clock)
    started = (await patient.client.execute(PAY_REGISTRATION, {"id": registration["id"], "key": key()}))
    order_no = started["payRegistration"]["order"]["orderNo"]
    await _wechatpay(server).pay(order_no)
    cancelled = (await patient.client.execute(CANCEL, {"id": registration["id"]}))["cancelRegistration"]
    assert cancelled["__typename"] == "RegistrationCancelled", cancelled
    assert cancelled["refundPending"] is True  # WeChat Pay refunds take a moment
    [refund] = await _wechatpay(server).settle_refunds()
    assert (refund.out_trade_no, refund.refund_fen, refund.status) == (order_no, 5000, "SUCCESS")
    order = (await patient.client.execute(PAYMENT, {"no": order_no}))["me"]["payment"]
    assert order["status"] == "REFUNDED" and order["refunded"]["fen"] == 5000
    seen = (await patient.client.execute(REGISTRATION, {"id": registration["id"]}))["me"]["registration"]
    assert (seen["status"], seen["paymentStatus"]) == ("CANCELLED", "REFUNDED")
    ledger = await server.deps.sources.billing.ledger(local_date(clock.now()))
    assert sorted((e.kind, e.amount_fen) for e in ledger) == [("PAYMENT", 5000), ("REFUND", 5000)]
    # A second refund of the same payment is refused: nothing is left.
    order_row = await orders.load(server.deps, order_no)
    assert order_row is not None
    try:
        await payment_refunds.request(
            server.deps, server.deps.payments, order_row, amount_fen=1, reason="again",  # type: ignore[arg-type]
            cause=payment_refunds.OPERATOR,
        )
    except Exception as exc:
        assert type(exc).__name__ == "RefundExceedsPaid"
    else:
        raise AssertionError("a refund beyond the paid amount went through")


async def _alipay_patient(server: LiveServer, hospital: Hospital) -> tuple[Any, str, str]:
    code = await hospital.channels.issue_code("ALIPAY", f"2088{uuid.uuid4().int % 10**12:012d}")
    anonymous = server.client()
    login = (await anonymous.execute(ALIPAY_LOGIN, {"code": code}))["loginWithAlipay"]
    await anonymous.aclose()
    client = server.client(login["token"])
    added = (await client.execute(ADD_PATIENT, {"input": complete_patient("赵六")}))["addPatient"]
    patient_id = added["patient"]["id"]
    card = (await client.execute(CREATE_RECORD, {"patientId": patient_id}))["createHospitalRecord"]["card"]
    return client, patient_id, card["cardNo"]


async def test_pending_bills_are_paid_together_in_alipay(server: LiveServer, clock: FixedClock) -> None:
    hospital = await Hospital(server.deps.db, clock).build()
    client, patient_id, _ = await _alipay_patient(server, hospital)
    owner, card_no = await _his_card_of(server, int(patient_id))
    admin = SandboxHISBillingAdmin(server.deps.db)
    drug = b.BillItem("Y001", "阿莫西林胶囊", "0.25g*24粒", "盒", "2", 1850, 3700, "XJ01CAA040", "A")
    lab = b.BillItem("L001", "血常规", "", "次", "1", 2500, 2500, "", "A")
    ids = [
        await admin.add_bill(owner, card_no, department_id=hospital.department_id, doctor_id=hospital.doctor_id,
                             category=b.PRESCRIPTION, title="处方", items=[drug], at=clock.now()),
        await admin.add_bill(owner, card_no, department_id=hospital.department_id, doctor_id=hospital.doctor_id,
                             category=b.LAB, title="检验", items=[lab], at=clock.now()),
    ]
    pending = (await client.execute(PENDING))["me"]["pendingBills"]
    assert [(p["title"], p["total"]["fen"]) for p in pending] == [("处方", 3700), ("检验", 2500)]
    started = (await client.execute(PAY_BILLS, {"ids": ids, "key": key()}))["payBills"]
    assert started["__typename"] == "PaymentStarted", started
    assert started["order"]["amount"]["fen"] == 6200 and started["order"]["channel"] == "ALIPAY"
    assert started["alipay"]["tradeNo"] and started["wechatPay"] is None
    order_no = started["order"]["orderNo"]
    alipay = server.deps.sources.alipay
    await alipay.pay(order_no)  # Alipay's async notify arrives over HTTP as a signed form
    for notify_id in await alipay.notifications(order_no):
        assert await alipay.deliver(notify_id)  # and again: answered "success", nothing moves twice
    order = (await client.execute(PAYMENT, {"no": order_no}))["me"]["payment"]
    assert order["status"] == "SETTLED"
    assert (await client.execute(PENDING))["me"]["pendingBills"] == []
    paid = await server.deps.sources.billing.bills_by_ids(ids)
    assert {bill.status for bill in paid} == {b.PAID} and {bill.payment_reference for bill in paid} == {order_no}


async def _his_card_of(server: LiveServer, patient_id: int) -> tuple[str, str]:
    """The HIS patient and card behind the BFF's patient (the API shows the card number masked)."""
    async with server.deps.db.reading() as s:
        binding = (
            await s.execute(select(MedicalCardBinding).where(col(MedicalCardBinding.patient_id) == patient_id))
        ).scalar_one()
        card = (
            await s.execute(select(HisCard).where(col(HisCard.patient_id) == int(binding.his_patient_id)))
        ).scalar_one()
    return binding.his_patient_id, card.card_no


async def test_a_forged_notification_is_refused_and_changes_nothing(server: LiveServer, clock: FixedClock) -> None:
    _, patient, registration = await _unpaid_registration(server, clock)
    started = (await patient.client.execute(PAY_REGISTRATION, {"id": registration["id"], "key": key()}))
    order_no = started["payRegistration"]["order"]["orderNo"]
    forged = b'{"id":"x","event_type":"TRANSACTION.SUCCESS","resource":{}}'
    headers = {"Wechatpay-Serial": "PUB_KEY_ID_0000", "Wechatpay-Signature": "AAAA", "Wechatpay-Timestamp":
               str(int(clock.now().timestamp())), "Wechatpay-Nonce": "n", "Content-Type": "application/json"}
    async with httpx.AsyncClient() as http:
        answer = await http.post(server.url + orders.NOTIFY_PREFIX + "wechatpay", content=forged, headers=headers)
        alipay = await http.post(server.url + orders.NOTIFY_PREFIX + "alipay", data={"out_trade_no": order_no,
                                 "trade_status": "TRADE_SUCCESS", "sign": "forged", "sign_type": "RSA2"})
    assert answer.status_code == 401 and answer.json()["code"] == "FAIL"
    assert alipay.status_code == 400 and alipay.text == "failure"
    order = (await patient.client.execute(PAYMENT, {"no": order_no}))["me"]["payment"]
    assert order["status"] == "PAYING"


async def test_notifications_out_of_order_and_repeated_settle_each_payment_once(
    server: LiveServer, clock: FixedClock
) -> None:
    hospital, patient, first = await _unpaid_registration(server, clock)
    _, slots = await hospital.session(day=local_date(clock.now()) + timedelta(days=2))
    booked = (await patient.client.execute(BOOK, {"patientId": patient.patient_id, "slotId": slots[0]}))
    second = booked["bookAppointment"]["registration"]
    wechatpay = _wechatpay(server)
    numbers = []
    for registration in (first, second):
        started = (await patient.client.execute(PAY_REGISTRATION, {"id": registration["id"], "key": key()}))
        numbers.append(started["payRegistration"]["order"]["orderNo"])
        await wechatpay.pay(numbers[-1], deliver=False)
    notices = [(await wechatpay.notifications(n))[0].notify_id for n in numbers]
    for notify_id in (notices[1], notices[0], notices[1], notices[0]):  # the later payment's first, each twice
        assert await wechatpay.deliver(notify_id)
    for order_no, registration in zip(numbers, (first, second), strict=True):
        order = (await patient.client.execute(PAYMENT, {"no": order_no}))["me"]["payment"]
        assert order["status"] == "SETTLED"
        seen = (await patient.client.execute(REGISTRATION, {"id": registration["id"]}))["me"]["registration"]
        assert seen["paymentStatus"] == "PAID"
    receipts = await server.deps.sources.billing.receipts_by_references(numbers)
    assert sorted(r.reference for r in receipts) == sorted(numbers)
    assert await _notifications(server, patient.account_id, "PAYMENT_SUCCEEDED") == 2


async def test_a_payment_notified_after_the_patient_cancelled_goes_back_in_full(
    server: LiveServer, clock: FixedClock
) -> None:
    _, patient, registration = await _unpaid_registration(server, clock)
    started = (await patient.client.execute(PAY_REGISTRATION, {"id": registration["id"], "key": key()}))
    order_no = started["payRegistration"]["order"]["orderNo"]
    wechatpay = _wechatpay(server)
    await wechatpay.pay(order_no, deliver=False)  # paid, but the BFF has not heard yet
    cancelled = (await patient.client.execute(CANCEL, {"id": registration["id"]}))["cancelRegistration"]
    assert cancelled["__typename"] == "RegistrationCancelled"
    [notice] = await wechatpay.notifications(order_no)
    assert await wechatpay.deliver(notice.notify_id)  # late: the cancellation found the payment already
    await wechatpay.settle_refunds()
    order = (await patient.client.execute(PAYMENT, {"no": order_no}))["me"]["payment"]
    assert (order["status"], order["refunded"]["fen"]) == ("REFUNDED", 5000), order


async def test_cancelling_closes_a_payment_not_made_yet(server: LiveServer, clock: FixedClock) -> None:
    _, patient, registration = await _unpaid_registration(server, clock)
    started = (await patient.client.execute(PAY_REGISTRATION, {"id": registration["id"], "key": key()}))
    order_no = started["payRegistration"]["order"]["orderNo"]
    await patient.client.execute(CANCEL, {"id": registration["id"]})
    assert (await patient.client.execute(PAYMENT, {"no": order_no}))["me"]["payment"]["status"] == "CLOSED"
    assert (await _wechatpay(server).query(order_no)).trade_state == "CLOSED"
