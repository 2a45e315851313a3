"""预交金 and 先诊疗后付费 over HTTP: a top-up through the app or its payment link and QR code, arrears
cleared and reported so a defaulter can book again, an unpaid top-up cancelled, pay-later bills."""

from __future__ import annotations

import base64
import uuid
from datetime import timedelta

import httpx
from sqlalchemy import select
from sqlmodel import col

from datasources.clock import FixedClock, local_date
from datasources.his import billing as b
from datasources.his.billing_sandbox import SandboxHISBillingAdmin
from datasources.his.tables import HisCard
from datasources.store.models import MedicalCardBinding
from resolvers.payment_link import payment_qr_png
from tests.conftest import LiveServer
from tests.factories import Hospital

BOOK = """
mutation Book($patientId: ID!, $slotId: ID!) {
  bookAppointment(input: {patientId: $patientId, slotId: $slotId}) {
    __typename
    ... on AppointmentBooked { registration { id paymentStatus } }
    ... on CreditDefaultedError { arrears { fen } topUp { route amount { fen } } }
    ... on UserError { code message }
  }
}"""
TOP_UP = """
mutation TopUp($patientId: ID!, $amount: Int!, $key: String!) {
  topUpDeposit(input: {patientId: $patientId, kind: OUTPATIENT, amountFen: $amount, idempotencyKey: $key}) {
    __typename
    ... on PaymentStarted { order { orderNo status purpose amount { fen } } link qrCodePng wechatPay { paySign } }
    ... on InvalidInputError { field }
    ... on UserError { code message }
  }
}"""
DEPOSITS = """
query ($id: ID!) { me { depositAccounts(patientId: $id) { kind balance { fen } arrears { fen } } } }"""
PAYMENT = "query ($no: String!) { me { payment(orderNo: $no) { status purpose amount { fen } } } }"
CANCEL = """
mutation ($no: String!) { cancelPayment(input: {orderNo: $no}) { __typename ... on PaymentOrder { status } } }"""
PENDING = "{ me { pendingBills { id registrationId title total { fen } } } }"
PAY_BILLS = """
mutation PayBills($ids: [ID!]!, $key: String!) {
  payBills(input: {billIds: $ids, idempotencyKey: $key}) {
    __typename ... on PaymentStarted { order { orderNo amount { fen } } } ... on UserError { code message }
  }
}"""


async def _his_card(server: LiveServer, patient_id: str) -> tuple[str, str]:
    async with server.deps.db.reading() as s:
        binding = (
            await s.execute(select(MedicalCardBinding).where(col(MedicalCardBinding.patient_id) == int(patient_id)))
        ).scalar_one()
        card = (
            await s.execute(select(HisCard).where(col(HisCard.patient_id) == int(binding.his_patient_id)))
        ).scalar_one()
    return binding.his_patient_id, card.card_no


async def test_a_defaulter_clears_arrears_with_a_deposit_and_books_again(
    server: LiveServer, clock: FixedClock
) -> None:
    hospital = await Hospital(server.deps.db, clock).build()
    patient = await hospital.patient(server.url, credit="DEFAULTED_HERE", arrears_fen=23850)
    his_patient_id, _ = await _his_card(server, patient.patient_id)
    await SandboxHISBillingAdmin(server.deps.db).add_arrears(his_patient_id, 23850, at=clock.now())
    _, slots = await hospital.session(day=local_date(clock.now()) + timedelta(days=1))
    refused = (await patient.client.execute(BOOK, {"patientId": patient.patient_id, "slotId": slots[0]}))
    assert refused["bookAppointment"]["__typename"] == "CreditDefaultedError"
    assert refused["bookAppointment"]["arrears"]["fen"] == 23850

    started = (await patient.client.execute(
        TOP_UP, {"patientId": patient.patient_id, "amount": 30000, "key": str(uuid.uuid4())}
    ))["topUpDeposit"]
    assert started["__typename"] == "PaymentStarted", started
    order_no, link = started["order"]["orderNo"], started["link"]
    assert started["order"]["purpose"] == "DEPOSIT" and link == f"{server.url}/pay/{order_no}"
    assert base64.b64decode(started["qrCodePng"]) == payment_qr_png(link)

    # A relative opens the link (or scans the code) and pays there; the name is on nobody's screen.
    async with httpx.AsyncClient() as http:
        page = await http.get(link)
        assert page.status_code == 200 and "¥300.00" in page.text and "待支付" in page.text
        assert patient.name not in page.text
        qr = await http.get(link + "/qr.png")
        assert qr.headers["content-type"] == "image/png" and qr.content == payment_qr_png(link)
        paid = await http.post(link + "/sandbox-pay", follow_redirects=True)
        assert paid.status_code == 200 and "已支付" in paid.text

    order = (await patient.client.execute(PAYMENT, {"no": order_no}))["me"]["payment"]
    assert order["status"] == "SETTLED"
    accounts = (await patient.client.execute(DEPOSITS, {"id": patient.patient_id}))["me"]["depositAccounts"]
    assert accounts == [{"kind": "OUTPATIENT", "balance": {"fen": 30000 - 23850}, "arrears": {"fen": 0}}]
    booked = (await patient.client.execute(BOOK, {"patientId": patient.patient_id, "slotId": slots[0]}))
    assert booked["bookAppointment"]["__typename"] == "AppointmentBooked", booked


async def test_an_unpaid_top_up_can_be_cancelled_and_then_not_paid(server: LiveServer, clock: FixedClock) -> None:
    hospital = await Hospital(server.deps.db, clock).build()
    patient = await hospital.patient(server.url)
    started = (await patient.client.execute(
        TOP_UP, {"patientId": patient.patient_id, "amount": 10000, "key": str(uuid.uuid4())}
    ))["topUpDeposit"]
    order_no = started["order"]["orderNo"]
    cancelled = (await patient.client.execute(CANCEL, {"no": order_no}))["cancelPayment"]
    assert cancelled == {"__typename": "PaymentOrder", "status": "CLOSED"}
    assert (await server.deps.sources.wechatpay.query(order_no)).trade_state == "CLOSED"
    async with httpx.AsyncClient() as http:
        page = await http.post(started["link"] + "/sandbox-pay", follow_redirects=True)
    assert "已关闭" in page.text
    bad = await patient.client.execute(TOP_UP, {"patientId": patient.patient_id, "amount": 0, "key": str(uuid.uuid4())})
    assert (bad["topUpDeposit"]["__typename"], bad["topUpDeposit"]["field"]) == ("InvalidInputError", "amountFen")


async def test_a_pay_later_visit_is_billed_afterwards_and_paid_in_the_app(
    server: LiveServer, clock: FixedClock
) -> None:
    hospital = await Hospital(server.deps.db, clock).build()
    patient = await hospital.patient(server.url)  # good credit: treat first, pay later
    _, slots = await hospital.session()
    booked = (await patient.client.execute(BOOK, {"patientId": patient.patient_id, "slotId": slots[-1]}))
    registration = booked["bookAppointment"]["registration"]
    assert registration["paymentStatus"] == "PAY_LATER"
    his_patient_id, card_no = await _his_card(server, patient.patient_id)
    fee = b.BillItem("G001", "普通门诊诊查费", "", "次", "1", 5000, 5000, "", "A")
    bill_id = await SandboxHISBillingAdmin(server.deps.db).add_bill(
        his_patient_id, card_no, registration_id=registration["id"], department_id=hospital.department_id,
        doctor_id=hospital.doctor_id, category=b.TREATMENT, title="诊查费", items=[fee], at=clock.now(),
    )
    pending = (await patient.client.execute(PENDING))["me"]["pendingBills"]
    assert pending == [{"id": bill_id, "registrationId": registration["id"], "title": "诊查费", "total": {"fen": 5000}}]
    started = (await patient.client.execute(PAY_BILLS, {"ids": [bill_id], "key": str(uuid.uuid4())}))["payBills"]
    await server.deps.sources.wechatpay.pay(started["order"]["orderNo"])
    assert (await patient.client.execute(PENDING))["me"]["pendingBills"] == []


async def test_a_top_up_is_refunded_out_of_the_deposit_by_its_route_and_never_beyond_the_balance(
    server: LiveServer, clock: FixedClock
) -> None:
    from resolvers.payments import orders, refunds

    hospital = await Hospital(server.deps.db, clock).build()
    patient = await hospital.patient(server.url)
    started = (await patient.client.execute(
        TOP_UP, {"patientId": patient.patient_id, "amount": 20000, "key": str(uuid.uuid4())}
    ))["topUpDeposit"]
    order_no = started["order"]["orderNo"]
    await server.deps.sources.wechatpay.pay(order_no)  # type: ignore[union-attr]
    order = await orders.load(server.deps, order_no)
    payments = server.deps.payments
    assert order is not None and order.status == "SETTLED" and payments is not None
    # Part of the deposit goes back (an operator's decision): out of the balance, then through WeChat Pay.
    done = await refunds.request(server.deps, payments, order, amount_fen=5000, reason="退预交金", cause="OPERATOR")
    assert done.status in ("PROCESSING", "SUCCEEDED"), done
    await server.deps.sources.wechatpay.settle_refunds()  # type: ignore[union-attr]
    accounts = (await patient.client.execute(DEPOSITS, {"id": patient.patient_id}))["me"]["depositAccounts"]
    assert accounts[0]["balance"]["fen"] == 15000
    # What the deposit no longer holds cannot go back: the HIS refuses and nothing moves.
    his_patient_id, card_no = await _his_card(server, patient.patient_id)
    fee = b.BillItem("T001", "治疗费", "", "次", "1", 14000, 14000, "", "A")
    bill = await SandboxHISBillingAdmin(server.deps.db).add_bill(
        his_patient_id, card_no, department_id=hospital.department_id, doctor_id=hospital.doctor_id,
        category=b.TREATMENT, title="治疗", items=[fee], at=clock.now(),
    )
    await server.deps.sources.billing.pay_bills(  # type: ignore[union-attr]
        [bill], b.PaymentRecord(reference="P-DEPOSIT-PAID-1", channel=b.DEPOSIT, total_fen=14000, self_pay_fen=0,
                                deposit_fen=14000)
    )
    fresh = await orders.load(server.deps, order_no)
    assert fresh is not None
    try:
        await refunds.request(server.deps, payments, fresh, amount_fen=5000, reason="再退", cause="OPERATOR")
    except Exception as exc:
        assert getattr(exc, "reason", "") == b.INSUFFICIENT_DEPOSIT, exc
    else:
        raise AssertionError("a refund beyond the deposit's balance went through")
    assert (await orders.load(server.deps, order_no)).refunded_fen == 5000  # type: ignore[union-attr]
