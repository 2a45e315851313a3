"""医保移动支付 over HTTP: pending bills paid by the pooled fund, the personal and family accounts, with
the rest in cash in one WeChat Pay medical-insurance order; insurance-only payments; the typed
refusals (authorization, balance); a refund returning each part to where it came from."""

from __future__ import annotations

import base64
import io
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from pypdf import PdfReader, PdfWriter
from sqlalchemy import select, update
from sqlmodel import col

from datasources.clock import FixedClock
from datasources.his import billing as b
from datasources.his.billing_sandbox import SandboxHISBillingAdmin
from datasources.his.tables import HisCard
from datasources.mobile_insurance.sandbox import SandboxMobileInsuranceAdmin
from datasources.mobile_insurance.tables import MipayInsuredPerson
from datasources.store.models import MedicalCardBinding
from resolvers.payments import orders
from resolvers.payments import refunds as payment_refunds
from resolvers.settlement_document import verify_statement_pdf
from tests.conftest import LiveServer
from tests.factories import Hospital, PatientHandle

PAY = """
mutation Pay($ids: [ID!]!, $code: String!, $key: String!) {
  payBillsWithInsurance(input: {billIds: $ids, authCode: $code, idempotencyKey: $key}) {
    __typename
    ... on PaymentStarted {
      order { orderNo status channel amount { fen } selfPay { fen }
              insurance { fund { fen } personalAccount { fen } familyAccount { fen } status } }
      wechatMedicalInsurance { mixTradeNo paySign package }
      wechatPay { paySign }
    }
    ... on UserError { code message }
  }
}"""
PAYMENT = """
query ($no: String!) { me { payment(orderNo: $no) {
  status channel amount { fen } selfPay { fen } refunded { fen } receiptNo
  insurance { fund { fen } personalAccount { fen } familyAccount { fen } status }
  refunds { status amount { fen } }
} } }"""
STATEMENT = "query ($no: String!) { me { payment(orderNo: $no) { settlementStatementPdf } } }"
AUTHORIZE = 'query ($u: String!) { me { insuranceAuthorizeUrl(returnUrl: $u, state: "s1") } }'
RETURN_URL = "https://hospital.example/pay/insurance"


async def _insured_patient(server: LiveServer, clock: FixedClock, *, personal: int, family: int) -> tuple[
    Hospital, PatientHandle, list[str]
]:
    """A patient with an insured person at the platform, and two bills: drugs 37.00 (09) and a lab test 25.00 (04)."""
    hospital = await Hospital(server.deps.db, clock).build()
    patient = await hospital.patient(server.url, name="钱七")
    await SandboxMobileInsuranceAdmin(server.deps.db).add_insured_person(
        id_no=patient.document_number, name=patient.name, insurance_area="440100",
        personal_balance_fen=personal, family_balance_fen=family,
    )
    async with server.deps.db.reading() as s:
        binding = (
            await s.execute(select(MedicalCardBinding).where(col(MedicalCardBinding.patient_id) == int(patient.patient_id)))
        ).scalar_one()
        card = (
            await s.execute(select(HisCard).where(col(HisCard.patient_id) == int(binding.his_patient_id)))
        ).scalar_one()
    admin = SandboxHISBillingAdmin(server.deps.db)
    drug = b.BillItem("Y001", "阿莫西林胶囊", "0.25g*24粒", "盒", "2", 1850, 3700, "XJ01CAA040A001010104459", "A")
    lab = b.BillItem("L001", "血常规", "", "次", "1", 2500, 2500, "250101015", "A")
    ids = [
        await admin.add_bill(binding.his_patient_id, card.card_no, department_id=hospital.department_id,
                             doctor_id=hospital.doctor_id, category=category, title=title, items=[item], at=clock.now())
        for category, title, item in ((b.PRESCRIPTION, "处方", drug), (b.LAB, "检验", lab))
    ]
    return hospital, patient, ids


async def _auth_code(server: LiveServer, patient: PatientHandle, *, id_no: str | None = None, name: str | None = None) -> str:
    """The patient authorizes on the platform's page, which sends them back with an authCode."""
    url = (await patient.client.execute(AUTHORIZE, {"u": RETURN_URL}))["me"]["insuranceAuthorizeUrl"]
    assert "/mipay/auth" in url
    back = await server.deps.sources.mobile_insurance.authorize(  # type: ignore[union-attr]
        id_no=id_no or patient.document_number, name=name or patient.name, return_url=RETURN_URL, state="s1"
    )
    return parse_qs(urlsplit(back).query)["authCode"][0]


async def _pay(patient: PatientHandle, ids: list[str], code: str) -> dict[str, Any]:
    answer = await patient.client.execute(PAY, {"ids": ids, "code": code, "key": str(uuid.uuid4())})
    result: dict[str, Any] = answer["payBillsWithInsurance"]
    return result


async def test_insurance_and_cash_in_one_wechat_order_then_each_part_refunded(
    server: LiveServer, clock: FixedClock
) -> None:
    _, patient, ids = await _insured_patient(server, clock, personal=1000, family=500)
    started = await _pay(patient, ids, await _auth_code(server, patient))
    assert started["__typename"] == "PaymentStarted", started
    order = started["order"]
    # Fund: 70 % of 37.00 + 60 % of 25.00 = 40.90; personal account 10.00, family 5.00; cash 6.10.
    assert (order["amount"]["fen"], order["selfPay"]["fen"], order["channel"]) == (6200, 610, "WECHAT_MED_INS")
    assert order["insurance"] == {"fund": {"fen": 4090}, "personalAccount": {"fen": 1000},
                                  "familyAccount": {"fen": 500}, "status": "UPLOADED"}
    params = started["wechatMedicalInsurance"]
    assert params["mixTradeNo"] and params["paySign"] and params["package"].startswith("prepay_id=")
    assert started["wechatPay"] is None

    # The patient confirms in WeChat: the cash prepay, then MEDICAL_INSURANCE.SUCCESS over HTTP.
    await server.deps.sources.wechat_med_ins.pay_med_ins(order["orderNo"])  # type: ignore[union-attr]
    paid = (await patient.client.execute(PAYMENT, {"no": order["orderNo"]}))["me"]["payment"]
    assert paid["status"] == "SETTLED" and paid["insurance"]["status"] == "PAID", paid
    assert await SandboxMobileInsuranceAdmin(server.deps.db).balances(patient.document_number) == (0, 0)
    bills = await server.deps.sources.billing.bills_by_ids(ids)  # type: ignore[union-attr]
    assert {bill.status for bill in bills} == {b.PAID}
    [receipt] = await server.deps.sources.billing.receipts_by_references([order["orderNo"]])  # type: ignore[union-attr]
    assert receipt.total_fen == 6200
    await _the_statement_is_sealed_and_verifies(server, patient, order["orderNo"])

    # Refunded whole: 6203 returns the fund and account shares, WeChat Pay the cash.
    loaded = await orders.load(server.deps, order["orderNo"])
    assert loaded is not None
    payments = server.deps.payments
    assert payments is not None
    await payment_refunds.request(server.deps, payments, loaded, amount_fen=6200, reason="退费", cause="OPERATOR")
    assert await SandboxMobileInsuranceAdmin(server.deps.db).balances(patient.document_number) == (1000, 500)
    [cash] = await server.deps.sources.wechatpay.settle_refunds()  # type: ignore[union-attr]
    assert cash.refund_fen == 610
    after = (await patient.client.execute(PAYMENT, {"no": order["orderNo"]}))["me"]["payment"]
    assert (after["status"], after["insurance"]["status"], after["refunded"]["fen"]) == ("REFUNDED", "REFUNDED", 6200)
    assert {bill.status for bill in await server.deps.sources.billing.bills_by_ids(ids)} == {b.REFUNDED}  # type: ignore[union-attr]


async def _the_statement_is_sealed_and_verifies(server: LiveServer, patient: PatientHandle, order_no: str) -> None:
    """医保结算单: the PDF under the hospital's SM2 e-seal, checked by the BFF's public endpoint and by
    anyone holding the published SM2 root; one changed byte of the signed content is caught."""
    data = await patient.client.execute(STATEMENT, {"no": order_no})
    pdf = base64.b64decode(data["me"]["payment"]["settlementStatementPdf"])
    async with httpx.AsyncClient() as http:
        checked = await http.post(server.url + "/documents/settlement-statements/verify", content=pdf)
        roots = (await http.get(server.url + "/security/certificates")).json()["authorities"]
        assert checked.status_code == 200, checked.text
        assert (checked.json()["valid"], checked.json()["totalFen"]) == (True, 6200)
        statement = verify_statement_pdf(pdf, trusted_roots=list(roots.values())).statement
        assert (statement.fund_paid_fen, statement.cash_fen, statement.patient_name) == (4090, 610, "钱*")
        forged = _reembed_content(pdf, lambda content: content.replace(b'"total_fen":6200', b'"total_fen":6300'))
        refused = await http.post(server.url + "/documents/settlement-statements/verify", content=forged)
    assert refused.status_code == 422 and refused.json()["valid"] is False
    assert refused.json()["reason"] in ("CONTENT_ALTERED", "SIGNATURE_INVALID")


def _reembed_content(pdf: bytes, change: Callable[[bytes], bytes]) -> bytes:
    """What someone editing the PDF can do: keep the pages, replace the embedded statement."""
    reader = PdfReader(io.BytesIO(pdf))
    files = {name: data[0] for name, data in reader.attachments.items()}
    changed = change(files["statement.json"])
    assert changed != files["statement.json"]
    files["statement.json"] = changed
    writer = PdfWriter()
    for page in reader.pages:
        writer.add_page(page)
    for name, data in files.items():
        writer.add_attachment(name, data)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


async def test_bills_the_insurance_covers_whole_are_paid_at_once(server: LiveServer, clock: FixedClock) -> None:
    _, patient, ids = await _insured_patient(server, clock, personal=100_000, family=0)
    started = await _pay(patient, ids, await _auth_code(server, patient))
    order = started["order"]
    assert (order["channel"], order["selfPay"]["fen"], order["status"]) == ("INSURANCE", 0, "SETTLED"), started
    assert started["wechatMedicalInsurance"] is None and started["wechatPay"] is None
    assert order["insurance"]["personalAccount"]["fen"] == 6200 - 4090
    balances = await SandboxMobileInsuranceAdmin(server.deps.db).balances(patient.document_number)
    assert balances == (100_000 - 2110, 0)


async def test_an_authorization_of_someone_else_or_used_twice_is_refused(server: LiveServer, clock: FixedClock) -> None:
    hospital, patient, ids = await _insured_patient(server, clock, personal=1000, family=0)
    other = await hospital.patient(server.url, name="孙八")
    await SandboxMobileInsuranceAdmin(server.deps.db).add_insured_person(
        id_no=other.document_number, name=other.name, insurance_area="440100", personal_balance_fen=0
    )
    foreign = await _auth_code(server, patient, id_no=other.document_number, name=other.name)
    refused = await _pay(patient, ids, foreign)
    assert (refused["__typename"], refused["code"]) == ("InsuranceNotAuthorizedError", "VOUCHER_NOT_AUTHORIZED")
    assert (await _pay(patient, ids, "no-such-code"))["__typename"] == "InsuranceNotAuthorizedError"
    code = await _auth_code(server, patient)
    assert (await _pay(patient, ids, code))["__typename"] == "PaymentStarted"
    again = await _pay(patient, ids, code)  # a new key, the same (now used) authorization
    assert again["__typename"] in ("InsuranceNotAuthorizedError", "NotAllowedError"), again


async def test_a_balance_spent_meanwhile_refunds_the_cash_and_leaves_the_bills_unpaid(
    server: LiveServer, clock: FixedClock
) -> None:
    _, patient, ids = await _insured_patient(server, clock, personal=1000, family=500)
    started = await _pay(patient, ids, await _auth_code(server, patient))
    order_no = started["order"]["orderNo"]
    async with server.deps.db.writing() as s:  # spent at a pharmacy while the patient hesitated
        await s.execute(
            update(MipayInsuredPerson)
            .where(col(MipayInsuredPerson.id_no) == patient.document_number.upper())
            .values(personal_balance_fen=0)
        )
    await server.deps.sources.wechat_med_ins.pay_med_ins(order_no)  # type: ignore[union-attr]
    await server.deps.sources.wechatpay.settle_refunds()  # type: ignore[union-attr]
    after = (await patient.client.execute(PAYMENT, {"no": order_no}))["me"]["payment"]
    assert after["status"] == "REFUNDED" and after["insurance"]["status"] == "CANCELLED", after
    assert [(r["status"], r["amount"]["fen"]) for r in after["refunds"]] == [("SUCCEEDED", 610)]
    assert {bill.status for bill in await server.deps.sources.billing.bills_by_ids(ids)} == {b.UNPAID}  # type: ignore[union-attr]
