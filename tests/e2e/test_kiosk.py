"""Kiosks and bedside terminals over HTTP: the device signs its requests and is its own caller; the
patient proves who they are per transaction (ID card, face), gets a ticket bound to the device,
creates a record when they have none, and sees their pending bills."""

from __future__ import annotations

from typing import Any

import pytest

from clients.reference import GraphQLClient
from clients.signing import RequestSigner
from datasources.clock import FixedClock
from datasources.face.sandbox import SandboxFaceVerification
from resolvers import apps
from tests.conftest import LiveServer
from tests.factories import Hospital, his_card_of, resident_id

IDENTIFY_BY_CARD = """
mutation ($name: String!, $number: String!) {
  identifyPatient(input: {idCard: {name: $name, number: $number}}) {
    __typename
    ... on PatientIdentified { ticket name hasRecord cards { cardNo } }
    ... on UserError { code message }
  }
}"""
IDENTIFY_BY_FACE = """
mutation ($name: String!, $number: String!, $capture: String!) {
  identifyPatient(input: {face: {name: $name, number: $number, captureToken: $capture}}) {
    __typename ... on PatientIdentified { ticket hasRecord } ... on UserError { code message }
  }
}"""
CREATE_RECORD = """
mutation ($ticket: String!) {
  kioskCreateRecord(input: {ticket: $ticket, phone: "13900139000"}) {
    __typename ... on PatientIdentified { ticket hasRecord cards { cardNo } } ... on UserError { code message }
  }
}"""
BILLS = """
query ($ticket: String!) {
  kioskPendingBills(ticket: $ticket) {
    __typename ... on KioskBills { bills { title total { fen } patientId } } ... on UserError { code message }
  }
}"""


async def device(server: LiveServer, app_id: str) -> GraphQLClient:
    """A kiosk registered as a DEVICE app with its certificate, as the console does it."""
    deps = server.deps
    await apps.register_app(deps.db, deps.security_clock, app_id=app_id, name="门诊一楼自助机", kind="DEVICE",
                            algorithm="SM2-SM3")
    issued = await apps.issue_certificate(deps.db, deps.cipher.keyring, deps.security_clock, deps.certificates,
                                          app_id=app_id)
    await server.app.state.gateway_state.verifier.registry.refresh()
    assert issued.private_key_pem is not None
    return GraphQLClient(server.url, signer=RequestSigner.from_pem(app_id, issued.certificate.serial,
                                                                   issued.private_key_pem))


async def _identified(kiosk: GraphQLClient, name: str, number: str) -> dict[str, Any]:
    result: dict[str, Any] = (await kiosk.execute(IDENTIFY_BY_CARD, {"name": name, "number": number}))["identifyPatient"]
    return result


async def test_an_id_card_identifies_a_patient_whose_bills_the_kiosk_then_shows(
    server: LiveServer, clock: FixedClock
) -> None:
    hospital = await Hospital(server.deps.db, clock).build()
    patient = await hospital.patient(server.url, name="周九")
    kiosk = await device(server, "kiosk-1")
    found = await _identified(kiosk, patient.name, patient.document_number)
    assert found["__typename"] == "PatientIdentified", found
    assert (found["name"], found["hasRecord"]) == ("周*", True)
    assert len(found["cards"]) == 1 and "*" in found["cards"][0]["cardNo"]
    bills = (await kiosk.execute(BILLS, {"ticket": found["ticket"]}))["kioskPendingBills"]
    assert bills == {"__typename": "KioskBills", "bills": []}
    assert patient.document_number not in found["ticket"]  # sealed, not merely encoded

    # Another device cannot use the ticket; a changed one is refused; an old one has ended.
    other = await device(server, "kiosk-2")
    refused = (await other.execute(BILLS, {"ticket": found["ticket"]}))["kioskPendingBills"]
    assert refused["code"] == "IDENTITY_NOT_VERIFIED"
    forged = found["ticket"][:-4] + ("AAAA" if not found["ticket"].endswith("AAAA") else "BBBB")
    assert (await kiosk.execute(BILLS, {"ticket": forged}))["kioskPendingBills"]["code"] == "IDENTITY_NOT_VERIFIED"
    clock.advance(minutes=6)
    assert (await kiosk.execute(BILLS, {"ticket": found["ticket"]}))["kioskPendingBills"]["code"] == (
        "IDENTITY_NOT_VERIFIED"
    )


async def test_a_face_must_match_the_id_be_live_and_verify_once(server: LiveServer, clock: FixedClock) -> None:
    hospital = await Hospital(server.deps.db, clock).build()
    patient = await hospital.patient(server.url, name="吴十")
    kiosk = await device(server, "bedside-7")
    camera = SandboxFaceVerification(server.deps.db, clock)
    capture = await camera.capture(id_no=patient.document_number)
    variables = {"name": patient.name, "number": patient.document_number, "capture": capture}
    found = (await kiosk.execute(IDENTIFY_BY_FACE, variables))["identifyPatient"]
    assert (found["__typename"], found["hasRecord"]) == ("PatientIdentified", True)
    again = (await kiosk.execute(IDENTIFY_BY_FACE, variables))["identifyPatient"]
    assert again["code"] == "IDENTITY_NOT_VERIFIED"
    someone_else = await camera.capture(id_no=resident_id())
    mismatch = (await kiosk.execute(IDENTIFY_BY_FACE, {**variables, "capture": someone_else}))["identifyPatient"]
    assert mismatch["code"] == "IDENTITY_NOT_VERIFIED"
    photo = await camera.capture(id_no=patient.document_number, live=False)
    assert (await kiosk.execute(IDENTIFY_BY_FACE, {**variables, "capture": photo}))["identifyPatient"]["code"] == (
        "IDENTITY_NOT_VERIFIED"
    )


async def test_a_patient_without_a_record_gets_one_at_the_kiosk(server: LiveServer, clock: FixedClock) -> None:
    await Hospital(server.deps.db, clock).build()
    kiosk = await device(server, "kiosk-3")
    number = resident_id("19550505")
    found = await _identified(kiosk, "郑十一", number)
    assert (found["hasRecord"], found["cards"]) == (False, [])
    assert (await kiosk.execute(BILLS, {"ticket": found["ticket"]}))["kioskPendingBills"]["code"] == "NOT_ALLOWED"
    made = (await kiosk.execute(CREATE_RECORD, {"ticket": found["ticket"]}))["kioskCreateRecord"]
    assert (made["__typename"], made["hasRecord"], len(made["cards"])) == ("PatientIdentified", True, 1), made
    again = (await kiosk.execute(CREATE_RECORD, {"ticket": made["ticket"]}))["kioskCreateRecord"]
    assert again["code"] == "NOT_ALLOWED"
    bad = await _identified(kiosk, "郑十一", number[:-1] + ("0" if number[-1] != "0" else "1"))
    assert (bad["__typename"], bad["code"]) == ("InvalidInputError", "INVALID_INPUT")


async def test_only_signed_devices_reach_the_kiosk(server: LiveServer, clock: FixedClock) -> None:
    hospital = await Hospital(server.deps.db, clock).build()
    patient = await hospital.patient(server.url)
    for client in (server.client(), patient.client):
        response = await client.post(IDENTIFY_BY_CARD, {"name": patient.name, "number": patient.document_number})
        [error] = response.json()["errors"]
        assert error["extensions"]["code"] in ("UNAUTHENTICATED", "FORBIDDEN")


PAY_AT_KIOSK = """
mutation ($ticket: String!, $ids: [ID!]!, $key: String!, $channel: KioskPaymentChannel!) {
  kioskPayBills(input: {ticket: $ticket, billIds: $ids, channel: $channel, idempotencyKey: $key}) {
    __typename
    ... on PaymentStarted { order { orderNo status channel amount { fen } } qrContent qrCodePng wechatPay { paySign } }
    ... on UserError { code message }
  }
}"""
KIOSK_PAYMENT = "query ($no: String!) { kioskPayment(orderNo: $no) { status channel receiptNo } }"
BILL_IDS = "query ($ticket: String!) { kioskPendingBills(ticket: $ticket) { ... on KioskBills { bills { id } } } }"


@pytest.mark.parametrize(
    ("channel", "prefix"), [("WECHAT_NATIVE", "weixin://wxpay/bizpayurl?pr="), ("ALIPAY_QR", "https://qr.alipay.com/")]
)
async def test_the_kiosk_takes_a_bill_by_a_code_the_patient_scans(
    server: LiveServer, clock: FixedClock, channel: str, prefix: str
) -> None:
    import base64
    import uuid

    from datasources.his import billing as b
    from datasources.his.billing_sandbox import SandboxHISBillingAdmin
    from resolvers.payment_link import payment_qr_png

    hospital = await Hospital(server.deps.db, clock).build()
    patient = await hospital.patient(server.url, name="冯十二")
    kiosk = await device(server, f"kiosk-{channel.lower().replace('_', '-')}")
    found = await _identified(kiosk, patient.name, patient.document_number)
    his_patient_id, card_no = await his_card_of(server.deps.db, patient.patient_id)
    item = b.BillItem("E001", "心电图", "", "次", "1", 3000, 3000, "", "A")
    await SandboxHISBillingAdmin(server.deps.db).add_bill(
        his_patient_id, card_no, department_id=hospital.department_id, doctor_id=hospital.doctor_id,
        category=b.EXAM, title="检查", items=[item], at=clock.now(),
    )
    ids = [x["id"] for x in (await kiosk.execute(BILL_IDS, {"ticket": found["ticket"]}))["kioskPendingBills"]["bills"]]
    variables = {"ticket": found["ticket"], "ids": ids, "key": str(uuid.uuid4()), "channel": channel}
    started = await kiosk.execute(PAY_AT_KIOSK, variables)
    result = started["kioskPayBills"]
    assert result["__typename"] == "PaymentStarted", result
    assert (result["order"]["channel"], result["order"]["amount"]["fen"]) == (channel, 3000)
    assert result["qrContent"].startswith(prefix) and result["wechatPay"] is None
    assert base64.b64decode(result["qrCodePng"]) == payment_qr_png(result["qrContent"])
    order_no = result["order"]["orderNo"]
    assert (await kiosk.execute(KIOSK_PAYMENT, {"no": order_no}))["kioskPayment"]["status"] == "PAYING"

    scanned = server.deps.sources.wechatpay if channel == "WECHAT_NATIVE" else server.deps.sources.alipay
    await scanned.pay_code(result["qrContent"])  # type: ignore[union-attr]
    paid = (await kiosk.execute(KIOSK_PAYMENT, {"no": order_no}))["kioskPayment"]
    assert paid["status"] == "SETTLED" and paid["receiptNo"]
    assert (await kiosk.execute(BILLS, {"ticket": found["ticket"]}))["kioskPendingBills"]["bills"] == []
    # Another device sees nothing of it.
    other = await device(server, f"other-{channel.lower().replace('_', '-')}")
    assert (await other.execute(KIOSK_PAYMENT, {"no": order_no}))["kioskPayment"] is None
