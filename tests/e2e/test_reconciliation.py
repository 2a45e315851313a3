"""Daily reconciliation over HTTP: patients pay through the real app and the channel sandboxes, the
day ends, an operator reconciles it against WeChat Pay's and Alipay's bills and the HIS ledger;
payments the BFF never took are refunded once an operator approves, every decision audited."""

from __future__ import annotations

import asyncio
import base64
import io
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook

from bff.app import create_app
from bff.settings import Settings
from clients.reference import GraphQLError
from datasources.clock import FixedClock, local_date
from datasources.his import billing as b
from datasources.his.billing_sandbox import SandboxHISBillingAdmin
from resolvers.payments import orders
from resolvers.payments import refunds as payment_refunds
from resolvers.reconciliation import runs as reconciliation_runs
from tests.conftest import DatabaseTarget, LiveServer, make_settings
from tests.e2e.test_outpatient_payments import (
    BOOK,
    PAY_BILLS,
    PAY_REGISTRATION,
    _alipay_patient,
    _his_card_of,
    key,
)
from tests.factories import Hospital, PatientHandle

RECONCILE = """
mutation Run($day: Date!, $channel: PaymentChannel!) {
  runReconciliation(input: {day: $day, channel: $channel}) {
    __typename
    ... on ReconciliationRan { run { ...Run } }
    ... on UserError { code message }
  }
}
fragment Run on ReconciliationRun {
  id day channel status startedBy failure
  totals {
    channel { payments paymentsAmount { fen } refunds refundsAmount { fen } }
    his { payments paymentsAmount { fen } refunds refundsAmount { fen } }
    bff { payments paymentsAmount { fen } refunds refundsAmount { fen } }
  }
  discrepancies {
    id kind entry reference orderNo channelAmount { fen } hisAmount { fen } bffAmount { fen }
    channelStatus hisStatus bffStatus reason action refundNo resolvedAt resolvedBy
  }
}"""
RUNS = """
query Runs($day: Date, $channel: PaymentChannel) {
  reconciliation { runs(day: $day, channel: $channel) { id day channel status discrepancies { kind resolvedAt } } }
}"""
REPORT = "query Report($id: ID!) { reconciliation { run(id: $id) { status reportXlsx } } }"
PENDING_REFUNDS = """
{ reconciliation { pendingRefunds { refundNo orderNo channel amount { fen } reason cause createdAt } } }"""
APPROVE = """
mutation Approve($nos: [String!]!) {
  approveRefunds(input: {refundNos: $nos}) {
    __typename
    ... on RefundsApproved { results { refundNo approved refund { status amount { fen } } errorCode errorMessage } }
    ... on UserError { code message }
  }
}"""
REJECT = """
mutation Reject($no: String!, $reason: String!) {
  rejectRefund(input: {refundNo: $no, reason: $reason}) {
    __typename
    ... on RefundRejected { refund { refundNo status } }
    ... on NotAllowedError { reason }
    ... on UserError { code message }
  }
}"""
RESOLVE = """
mutation Resolve($id: ID!, $note: String!) {
  resolveDiscrepancy(input: {id: $id, note: $note}) {
    __typename
    ... on DiscrepancyResolved { discrepancy { reference resolvedAt resolvedBy } }
    ... on NotAllowedError { reason }
    ... on UserError { code message }
  }
}"""
SIDES = ("channel", "his", "bff")


@pytest.fixture
def settings(database: DatabaseTarget, tmp_path: Path) -> Settings:
    """The sweeper stays away: these tests decide when the BFF learns of a payment."""
    return make_settings(database, tmp_path, payment_sweep_seconds=3600, reconciliation_hour=-1)


async def _booked(server: LiveServer, hospital: Hospital, slot_id: str) -> tuple[PatientHandle, str]:
    """A patient who must pay before the hold ends starts paying a registration in WeChat: the order no."""
    patient = await hospital.patient(server.url, credit="DEFAULTED_ELSEWHERE")
    booked = await patient.client.execute(BOOK, {"patientId": patient.patient_id, "slotId": slot_id})
    registration = booked["bookAppointment"]["registration"]
    started = await patient.client.execute(PAY_REGISTRATION, {"id": registration["id"], "key": key()})
    return patient, started["payRegistration"]["order"]["orderNo"]


async def _slots(hospital: Hospital, clock: FixedClock) -> list[str]:
    _, slots = await hospital.session(day=local_date(clock.now()) + timedelta(days=1))
    return slots


def _side(payments: int, paid: int, refunds: int, refunded: int) -> dict[str, Any]:
    return {"payments": payments, "paymentsAmount": {"fen": paid}, "refunds": refunds,
            "refundsAmount": {"fen": refunded}}


async def _run(operator: Any, day: str, channel: str) -> dict[str, Any]:
    result = (await operator.execute(RECONCILE, {"day": day, "channel": channel}))["runReconciliation"]
    assert result["__typename"] == "ReconciliationRan", result
    run: dict[str, Any] = result["run"]
    return run


async def test_a_clean_day_on_both_channels_reconciles_with_matching_totals(
    server: LiveServer, clock: FixedClock
) -> None:
    hospital = await Hospital(server.deps.db, clock).build()
    slots = await _slots(hospital, clock)
    wechatpay, alipay = server.deps.sources.wechatpay, server.deps.sources.alipay
    # WeChat Pay: two registration fees paid, one of them cancelled and refunded.
    first, first_order = await _booked(server, hospital, slots[0])
    _, second_order = await _booked(server, hospital, slots[1])
    for order_no in (first_order, second_order):
        await wechatpay.pay(order_no)
    cancel = "mutation ($id: ID!) { cancelRegistration(input: {registrationId: $id}) { __typename } }"
    paid = await orders.load(server.deps, first_order)
    assert paid is not None and paid.status == "SETTLED"
    await first.client.execute(cancel, {"id": paid.subject["registrationId"]})
    await wechatpay.settle_refunds()
    # Alipay: two bills paid together, then the lab test refunded.
    client, patient_id, _ = await _alipay_patient(server, hospital)
    owner, card_no = await _his_card_of(server, int(patient_id))
    admin = SandboxHISBillingAdmin(server.deps.db)
    drug = b.BillItem("Y001", "阿莫西林胶囊", "0.25g*24粒", "盒", "2", 1850, 3700, "XJ01CAA040", "A")
    lab = b.BillItem("L001", "血常规", "", "次", "1", 2500, 2500, "", "A")
    bills = [
        await admin.add_bill(owner, card_no, department_id=hospital.department_id, doctor_id=hospital.doctor_id,
                             category=category, title=title, items=[item], at=clock.now())
        for category, title, item in ((b.PRESCRIPTION, "处方", drug), (b.LAB, "检验", lab))
    ]
    started = (await client.execute(PAY_BILLS, {"ids": bills, "key": key()}))["payBills"]
    ali_order = started["order"]["orderNo"]
    await alipay.pay(ali_order)
    settled = await orders.load(server.deps, ali_order)
    assert settled is not None and settled.status == "SETTLED"
    refund = await payment_refunds.request(
        server.deps, server.deps.payments, settled, amount_fen=2500, reason="检验未做",  # type: ignore[arg-type]
        cause=payment_refunds.OPERATOR, bill_ids=(bills[1],),
    )
    assert refund.status == "SUCCEEDED"

    day = local_date(clock.now()).isoformat()
    early = await hospital.operator(server.url, "early", ["payments.reconcile"])
    too_soon = (await early.execute(RECONCILE, {"day": day, "channel": "WECHAT_PAY"}))["runReconciliation"]
    assert (too_soon["__typename"], too_soon["code"]) == ("InvalidInputError", "INVALID_INPUT")

    clock.advance(days=1)  # the day is over: the channels' bills are out
    operator = await hospital.operator(server.url, "finance", ["payments.reconcile"])
    wechat = await _run(operator, day, "WECHAT_PAY")
    assert (wechat["status"], wechat["discrepancies"], wechat["startedBy"]) == ("OK", [], "OPERATOR")
    assert {side: wechat["totals"][side] for side in SIDES} == {side: _side(2, 10000, 1, 5000) for side in SIDES}
    ali = await _run(operator, day, "ALIPAY")
    assert (ali["status"], ali["discrepancies"]) == ("OK", [])
    assert {side: ali["totals"][side] for side in SIDES} == {side: _side(1, 6200, 1, 2500) for side in SIDES}

    # Run again: a new run, the first one kept; listed by day and by channel.
    again = await _run(operator, day, "WECHAT_PAY")
    assert again["id"] != wechat["id"] and again["status"] == "OK"
    listed = (await operator.execute(RUNS, {"day": day, "channel": "WECHAT_PAY"}))["reconciliation"]["runs"]
    assert [r["id"] for r in listed] == [again["id"], wechat["id"]]
    every = (await operator.execute(RUNS, {"day": day}))["reconciliation"]["runs"]
    assert {r["channel"] for r in every} == {"WECHAT_PAY", "ALIPAY"} and len(every) == 3
    other_day = (local_date(clock.now()) - timedelta(days=5)).isoformat()
    assert (await operator.execute(RUNS, {"day": other_day}))["reconciliation"]["runs"] == []


async def test_payments_the_bff_never_took_are_found_and_refunded_once_approved(
    server: LiveServer, clock: FixedClock
) -> None:
    hospital = await Hospital(server.deps.db, clock).build()
    slots = await _slots(hospital, clock)
    wechatpay, alipay = server.deps.sources.wechatpay, server.deps.sources.alipay
    # Paid in WeChat, but no notification ever arrives and nobody asks: the BFF never confirms them.
    unconfirmed = [await _booked(server, hospital, slot) for slot in slots[:3]]
    for _, order_no in unconfirmed:
        await wechatpay.pay(order_no, deliver=False)
    # A trade made at each channel under a number the BFF never issued, and paid.
    expires = clock.now() + timedelta(minutes=10)
    await wechatpay.prepay_jsapi("STRAY20261130000001", "外部订单", 1234, "openid-stray",
                                 "https://example.invalid/notify", expires)
    await wechatpay.pay("STRAY20261130000001", deliver=False)
    await alipay.create_trade(out_trade_no="STRAY20261130000002", subject="外部订单", amount_fen=4321,
                              buyer_id="2088000000000001", notify_url="https://example.invalid/notify",
                              expires_at=expires)
    await alipay.pay("STRAY20261130000002", deliver=False)
    day = local_date(clock.now()).isoformat()
    clock.advance(days=1)

    operator = await hospital.operator(server.url, "finance", ["payments.reconcile"])
    run = await _run(operator, day, "WECHAT_PAY")
    assert run["status"] == "DISCREPANCIES"
    by_ref = {d["reference"]: d for d in run["discrepancies"]}
    stray = by_ref.pop("STRAY20261130000001")
    assert (stray["kind"], stray["action"], stray["channelAmount"], stray["hisAmount"], stray["bffAmount"]) == (
        "MISSING_AT_BFF", "MANUAL", {"fen": 1234}, None, None)
    assert "never made this order" in stray["reason"]
    assert set(by_ref) == {order_no for _, order_no in unconfirmed}
    for d in by_ref.values():
        assert (d["kind"], d["entry"], d["action"], d["bffStatus"]) == (
            "STATUS_MISMATCH", "PAYMENT", "REFUND_PENDING_APPROVAL", "PAYING")
        assert d["channelAmount"] == d["bffAmount"] == {"fen": 5000} and d["hisAmount"] is None
        assert d["refundNo"] and d["resolvedAt"] is None
    assert run["totals"]["channel"] == _side(4, 16234, 0, 0)
    assert run["totals"]["his"] == run["totals"]["bff"] == _side(0, 0, 0, 0)
    ali = await _run(operator, day, "ALIPAY")
    [ali_stray] = ali["discrepancies"]
    assert (ali_stray["kind"], ali_stray["reference"], ali_stray["channelAmount"]) == (
        "MISSING_AT_BFF", "STRAY20261130000002", {"fen": 4321})

    pending = (await operator.execute(PENDING_REFUNDS))["reconciliation"]["pendingRefunds"]
    refund_nos = {d["orderNo"]: d["refundNo"] for d in by_ref.values()}
    # Reconciled again before anyone decided: the same refunds are pointed at, no second one is made.
    second_look = await _run(operator, day, "WECHAT_PAY")
    assert {d["reference"]: (d["action"], d["refundNo"]) for d in second_look["discrepancies"]} == {
        "STRAY20261130000001": ("MANUAL", None),
        **{o: ("REFUND_PENDING_APPROVAL", r) for o, r in refund_nos.items()},
    }
    assert second_look["totals"]["bff"] == _side(3, 15000, 0, 0)  # the BFF now knows they were paid
    assert {(p["orderNo"], p["refundNo"], p["amount"]["fen"], p["cause"], p["channel"]) for p in pending} == {
        (o, r, 5000, "RECONCILIATION", "WECHAT_PAY") for o, r in refund_nos.items()}
    report = (await operator.execute(REPORT, {"id": run["id"]}))["reconciliation"]["run"]
    book = load_workbook(io.BytesIO(base64.b64decode(report["reportXlsx"])))
    assert book.sheetnames == ["对账汇总", "差异明细"]
    rows = list(book["差异明细"].iter_rows(values_only=True))
    assert rows[0][:4] == ("类型", "差异类别", "业务单号", "订单号")
    assert {row[2] for row in rows[1:]} == {"STRAY20261130000001", *refund_nos}
    assert ("渠道缺失" not in {row[1] for row in rows[1:]}) and "平台缺失" in {row[1] for row in rows[1:]}

    # Deciding on refunds needs refunds.approve: reconciling is not enough.
    with pytest.raises(GraphQLError) as refused:
        await operator.execute(APPROVE, {"nos": list(refund_nos.values())})
    assert refused.value.errors[0]["extensions"]["code"] == "FORBIDDEN"
    approver = await hospital.operator(server.url, "approver", ["refunds.approve", "payments.reconcile"])
    (first_order, first), (second_order, second), (third_order, third) = sorted(refund_nos.items())
    approved = (await approver.execute(APPROVE, {"nos": [first, second, "R-NO-SUCH-REFUND"]}))["approveRefunds"]
    results = {r["refundNo"]: r for r in approved["results"]}
    assert [results[n]["approved"] for n in (first, second)] == [True, True]
    assert {results[n]["refund"]["status"] for n in (first, second)} == {"PROCESSING"}  # WeChat takes a moment
    assert (results["R-NO-SUCH-REFUND"]["approved"], results["R-NO-SUCH-REFUND"]["errorCode"]) == (False, "NOT_FOUND")
    twice = (await approver.execute(APPROVE, {"nos": [first]}))["approveRefunds"]["results"][0]
    assert (twice["approved"], twice["errorCode"]) == (False, "NOT_PENDING")
    await wechatpay.settle_refunds()  # the money is back; WeChat Pay notifies the BFF over HTTP
    for order_no in (first_order, second_order):
        order = await orders.load(server.deps, order_no)
        assert order is not None and order.status == "REFUNDED"
        [refund] = (await payment_refunds.of_orders(server.deps, [order_no]))[0:1][0]
        assert refund.status == "SUCCEEDED"

    blank = (await approver.execute(REJECT, {"no": third, "reason": "  "}))["rejectRefund"]
    assert blank["__typename"] == "InvalidInputError"
    rejected = (await approver.execute(REJECT, {"no": third, "reason": "患者已到窗口改为现金退款"}))["rejectRefund"]
    assert rejected["refund"] == {"refundNo": third, "status": "REJECTED"}
    again = (await approver.execute(REJECT, {"no": third, "reason": "again"}))["rejectRefund"]
    assert (again["__typename"], again["reason"]) == ("NotAllowedError", "NOT_PENDING")
    assert (await approver.execute(PENDING_REFUNDS))["reconciliation"]["pendingRefunds"] == []

    decisions = [e for e in await server.deps.audit.read(server.deps.db) if e.action.startswith("refund.")]
    assert sorted((e.action, e.target_id) for e in decisions) == sorted(
        [("refund.approved", first), ("refund.approved", second), ("refund.rejected", third)])
    assert {e.actor_role for e in decisions} == {"OPERATOR"}
    assert next(e for e in decisions if e.target_id == third).detail["reason"] == "患者已到窗口改为现金退款"

    # The first run's items are resolved; a run of the same day now finds what is still open.
    first_run = (await approver.execute(REPORT.replace("status reportXlsx", "discrepancies { refundNo resolvedAt }"),
                                        {"id": run["id"]}))["reconciliation"]["run"]
    assert all(d["resolvedAt"] for d in first_run["discrepancies"] if d["refundNo"])
    rerun = await _run(approver, day, "WECHAT_PAY")
    still = {d["reference"]: (d["kind"], d["bffStatus"]) for d in rerun["discrepancies"]}
    assert still == {"STRAY20261130000001": ("MISSING_AT_BFF", None), third_order: ("STATUS_MISMATCH", "REFUNDING")}
    assert rerun["totals"]["bff"] == _side(3, 15000, 0, 0)

    # The stray trade was refunded from WeChat Pay's merchant platform by hand: closed with a note.
    stray_item = next(d for d in rerun["discrepancies"] if d["reference"] == "STRAY20261130000001")
    note = "已在微信支付商户平台原路退回"
    closed = (await approver.execute(RESOLVE, {"id": stray_item["id"], "note": note}))["resolveDiscrepancy"]
    assert closed["discrepancy"]["reference"] == "STRAY20261130000001" and closed["discrepancy"]["resolvedAt"]
    twice_closed = (await approver.execute(RESOLVE, {"id": stray_item["id"], "note": note}))["resolveDiscrepancy"]
    assert (twice_closed["__typename"], twice_closed["reason"]) == ("NotAllowedError", "ALREADY_RESOLVED")
    unknown = (await approver.execute(RESOLVE, {"id": "999999", "note": note}))["resolveDiscrepancy"]
    assert unknown["__typename"] == "NotFoundError"
    [resolved] = [e for e in await server.deps.audit.read(server.deps.db) if e.action == "reconciliation.resolved"]
    assert (resolved.target_id, resolved.detail["note"]) == (stray_item["id"], note)


async def test_operators_without_the_permission_see_no_reconciliation(server: LiveServer, clock: FixedClock) -> None:
    hospital = await Hospital(server.deps.db, clock).build()
    nobody = await hospital.operator(server.url, "clerk", [])
    day = (local_date(clock.now()) - timedelta(days=1)).isoformat()
    for document, variables in ((RUNS, {"day": day}), (RECONCILE, {"day": day, "channel": "ALIPAY"}),
                                (REJECT, {"no": "R1", "reason": "x"})):
        with pytest.raises(GraphQLError) as refused:
            await nobody.execute(document, variables)
        assert refused.value.errors[0]["extensions"]["code"] == "FORBIDDEN"
    patient = await hospital.patient(server.url)
    with pytest.raises(GraphQLError) as refused:
        await patient.client.execute(RUNS, {"day": day})
    assert refused.value.errors[0]["extensions"]["code"] == "FORBIDDEN"


async def test_the_daily_job_makes_one_run_per_channel_however_many_processes_try(
    server: LiveServer, clock: FixedClock
) -> None:
    hospital = await Hospital(server.deps.db, clock).build()
    day = local_date(clock.now()) - timedelta(days=1)
    made = await asyncio.gather(*(reconciliation_runs.reconcile_scheduled(server.deps, day) for _ in range(3)))
    assert sorted(run.channel for runs in made for run in runs) == ["ALIPAY", "WECHAT_PAY"]
    operator = await hospital.operator(server.url, "finance", ["payments.reconcile"])
    listed = (await operator.execute(RUNS, {"day": day.isoformat()}))["reconciliation"]["runs"]
    assert sorted((r["channel"], r["status"]) for r in listed) == [("ALIPAY", "OK"), ("WECHAT_PAY", "OK")]
    assert await reconciliation_runs.reconcile_scheduled(server.deps, day) == []  # done for that day


async def test_a_day_whose_his_ledger_cannot_be_read_is_a_failed_run_kept_in_the_log(
    database: DatabaseTarget, tmp_path: Path, clock: FixedClock
) -> None:
    down = make_settings(database, tmp_path, reconciliation_hour=-1, his={
        "mode": "http", "url": "http://127.0.0.1:9/his", "timeout_seconds": 0.5, "retries": 0,
    })
    server = await LiveServer(create_app(down, clock=clock)).start()
    try:
        hospital = await Hospital(server.deps.db, clock).build()
        operator = await hospital.operator(server.url, "finance", ["payments.reconcile"])
        day = (local_date(clock.now()) - timedelta(days=1)).isoformat()
        run = await _run(operator, day, "WECHAT_PAY")
        assert (run["status"], run["totals"], run["discrepancies"]) == ("FAILED", None, [])
        assert "HIS ledger" in run["failure"]
        listed = (await operator.execute(RUNS, {"day": day, "channel": "WECHAT_PAY"}))["reconciliation"]["runs"]
        assert [(r["id"], r["status"]) for r in listed] == [(run["id"], "FAILED")]
    finally:
        await server.stop()
