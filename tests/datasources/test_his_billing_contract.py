"""The HIS billing contract, as one suite run against every implementation: the sandbox in-process,
and ``HttpHISBilling`` over real HTTP (uvicorn on loopback) to the sandbox served in the gateway's
wire format.

Both give the same answers and refuse with the same codes: bills and their items, write-backs that
are all or none and idempotent per reference, refunds never beyond what was paid, the day's
ledger, deposits with arrears, and races that pay once. At the end: what only the HTTP client has
(reads retried, writes never) and what the served app answers to malformed requests.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

import httpx
import pytest
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from datasources.clock import SHANGHAI, FixedClock, local_date
from datasources.errors import SourceRejected, SourceUnavailable
from datasources.his import billing as b
from datasources.his import billing_wire, wire
from datasources.his import contract as c
from datasources.his.billing_http import HttpHISBilling
from datasources.his.billing_sandbox import INVOICE_BASE, SandboxHISBilling, SandboxHISBillingAdmin
from datasources.his.billing_served import his_billing_sandbox_app, his_gateway_sandbox_app
from datasources.his.sandbox import SandboxHIS
from datasources.store.db import Database
from tests.conftest import LiveServer
from tests.factories import Hospital, resident_id

IMPLEMENTATIONS = ["sandbox_in_process", "http_to_served_sandbox"]

ASPIRIN = b.BillItem("X-B01AC06", "阿司匹林肠溶片", "100mg*30片", "盒", "2", 1550, 3100, "XB01ACA056A001010100483", "A")
BLOOD = b.BillItem("250101001", "血常规", "", "次", "1", 2000, 2000, "001202000010000", "A")
INFUSION = b.BillItem("120400006", "静脉输液", "", "组", "0.5", 1000, 500, "", "")


@dataclass
class Stage:
    """The implementation under test, the sandboxes whose state it shows, and the hospital in them."""

    billing: b.HISBilling
    sandbox: SandboxHISBilling
    admin: SandboxHISBillingAdmin
    his: SandboxHIS
    hospital: Hospital
    clock: FixedClock

    async def patient(self, name: str = "李四") -> c.MedicalCard:
        record = c.PatientRecordInput(name, "RESIDENT_ID", resident_id(), None, None, None, None, None)
        return await self.his.create_record(record)

    async def bill(
        self,
        card: c.MedicalCard,
        *items: b.BillItem,
        category: str = b.PRESCRIPTION,
        registration_id: str | None = None,
    ) -> str:
        return await self.admin.add_bill(
            card.his_patient_id,
            card.card_no,
            registration_id=registration_id,
            department_id=self.hospital.department_id,
            doctor_id=self.hospital.doctor_id,
            category=category,
            title="门诊处方",
            items=list(items or (ASPIRIN,)),
            at=self.clock.now(),
        )

    async def registration(
        self, card: c.MedicalCard, *, payment: str = "UNPAID", hold_minutes: int | None = 15, fee_fen: int = 5000
    ) -> c.Registration:
        tomorrow = local_date(self.clock.now()) + timedelta(days=1)
        _, (slot_id, *_) = await self.hospital.session(day=tomorrow, fee_fen=fee_fen, capacity=5)
        lock = await self.his.lock_slot(
            slot_id=slot_id,
            his_patient_id=card.his_patient_id,
            card_no=card.card_no,
            kind="APPOINTMENT",
            lock_seconds=300,
        )
        hold = self.clock.now() + timedelta(minutes=hold_minutes) if hold_minutes is not None else None
        return await self.his.confirm_registration(lock_id=lock.id, payment_status=payment, hold_expires_at=hold)

    async def status(self, *bill_ids: str) -> list[str]:
        return [x.status for x in await self.billing.bills_by_ids(list(bill_ids))]


def paid(
    reference: str,
    total: int,
    *,
    channel: str = b.WECHAT_PAY,
    fund_fen: int = 0,
    personal_account_fen: int = 0,
    deposit_fen: int = 0,
) -> b.PaymentRecord:
    """A payment record whose self-paid part is what the other parts leave."""
    return b.PaymentRecord(
        reference,
        channel,
        total,
        total - fund_fen - personal_account_fen - deposit_fen,
        fund_fen=fund_fen,
        personal_account_fen=personal_account_fen,
        deposit_fen=deposit_fen,
        channel_trade_no=f"42000{reference}",
    )


def refund_of(
    reference: str, payment_reference: str, amount: int, *bill_ids: str, insurance: int = 0
) -> b.RefundRecord:
    return b.RefundRecord(
        reference=reference,
        payment_reference=payment_reference,
        amount_fen=amount,
        self_pay_fen=amount - insurance,
        insurance_fen=insurance,
        reason="患者申请退费",
        bill_ids=bill_ids,
    )


@pytest.fixture(params=IMPLEMENTATIONS)
async def stage(request: pytest.FixtureRequest, db: Database, clock: FixedClock) -> AsyncIterator[Stage]:
    sandbox = SandboxHISBilling(db, clock)
    hospital = await Hospital(db, clock).build()
    parts = (sandbox, SandboxHISBillingAdmin(db), SandboxHIS(db, clock), hospital, clock)
    if request.param == "sandbox_in_process":
        yield Stage(sandbox, *parts)
        return
    live = await LiveServer(his_billing_sandbox_app(lambda: sandbox)).start()
    client = HttpHISBilling(live.url, timeout=10)
    try:
        yield Stage(client, *parts)
    finally:
        await client.aclose()
        await live.stop()


async def rejected(call: Awaitable[Any]) -> str:
    with pytest.raises(SourceRejected) as caught:
        await call
    return caught.value.code


# Bills ----------------------------------------------------------------------------------------------
async def test_pending_bills_read_back_with_their_items_oldest_first(stage: Stage) -> None:
    card, other = await stage.patient("甲"), await stage.patient("乙")
    first = await stage.bill(card, ASPIRIN, INFUSION)
    stage.clock.advance(minutes=5)
    second = await stage.bill(card, BLOOD, category=b.LAB)
    theirs = await stage.bill(other)
    voided = await stage.bill(card)
    await stage.admin.void_bill(voided)

    pending = await stage.billing.pending_bills([card.his_patient_id, "999999", "nonsense"])
    assert [x.id for x in pending] == [first, second]
    h = stage.hospital
    assert pending[0] == b.Bill(
        id=first,
        his_patient_id=card.his_patient_id,
        card_no=card.card_no,
        registration_id=None,
        department_id=h.department_id,
        doctor_id=h.doctor_id,
        category=b.PRESCRIPTION,
        title="门诊处方",
        total_fen=3600,
        items=(ASPIRIN, INFUSION),
        status=b.UNPAID,
        created_at=pending[0].created_at,
        paid_at=None,
        payment_reference=None,
        executed=False,
    )
    assert pending[1].created_at - pending[0].created_at == timedelta(minutes=5)
    assert [x.id for x in await stage.billing.pending_bills([card.his_patient_id, other.his_patient_id])] == [
        first,
        second,
        theirs,
    ]
    found = await stage.billing.bills_by_ids([voided, "123456", "x", "²", first])
    assert [(x.id, x.status) for x in found] == [(first, b.UNPAID), (voided, b.VOIDED)]


async def test_an_item_is_quantity_times_unit_price_exactly(stage: Stage) -> None:
    card = await stage.patient()
    for wrong in (replace(ASPIRIN, amount_fen=3101), replace(INFUSION, quantity="0.3"), replace(BLOOD, quantity="1e0")):
        with pytest.raises(ValueError):
            await stage.bill(card, wrong)
    with pytest.raises(ValueError):
        await stage.bill(card, ASPIRIN, category="SURGERY")
    stranger = await stage.patient("乙")
    with pytest.raises(ValueError):
        await stage.admin.add_bill(
            card.his_patient_id,
            stranger.card_no,
            department_id="1",
            doctor_id="1",
            category=b.LAB,
            title="x",
            items=[BLOOD],
            at=stage.clock.now(),
        )
    assert await stage.billing.pending_bills([card.his_patient_id]) == []


async def test_the_demo_hospital_bills_a_morning_in_cardiology(stage: Stage) -> None:
    card, h = await stage.patient(), stage.hospital
    ids = await stage.admin.add_demo_bills(
        card.his_patient_id, card.card_no, department_id=h.department_id, doctor_id=h.doctor_id, at=stage.clock.now()
    )
    pending = await stage.billing.pending_bills([card.his_patient_id])
    assert [(x.id, x.category, x.total_fen) for x in pending] == [
        (ids[0], b.PRESCRIPTION, 6370),
        (ids[1], b.LAB, 4800),
        (ids[2], b.EXAM, 2500),
    ]
    await stage.billing.pay_bills(ids, paid("DEMO-1", 13670, fund_fen=5000, channel=b.MIXED))
    assert await stage.billing.pending_bills([card.his_patient_id]) == []


# Paying bills ---------------------------------------------------------------------------------------
async def test_paying_bills_settles_them_all_and_gives_a_receipt(stage: Stage) -> None:
    card = await stage.patient()
    first, second = await stage.bill(card, ASPIRIN), await stage.bill(card, BLOOD, category=b.LAB)
    stage.clock.advance(minutes=1)
    payment = paid("PAY-1", 5100, fund_fen=2000, personal_account_fen=1000, channel=b.MIXED)

    receipt = await stage.billing.pay_bills([second, first], payment)
    assert receipt == b.Receipt(
        reference="PAY-1",
        receipt_no=receipt.receipt_no,
        his_patient_id=card.his_patient_id,
        bill_ids=(first, second),
        registration_id=None,
        total_fen=5100,
        paid_at=stage.clock.now(),
        invoice_url=INVOICE_BASE + receipt.receipt_no,
    )
    assert receipt.receipt_no
    bills = await stage.billing.bills_by_ids([first, second])
    assert {(x.status, x.payment_reference, x.paid_at) for x in bills} == {(b.PAID, "PAY-1", stage.clock.now())}
    assert await stage.billing.pending_bills([card.his_patient_id]) == []
    assert await stage.billing.receipts_by_references(["PAY-1", "PAY-unknown"]) == [receipt]

    given = datetime(2026, 11, 23, 9, 0, tzinfo=SHANGHAI)  # the channel's success time, when the BFF has it
    third = await stage.bill(card, INFUSION, category=b.TREATMENT)
    later = await stage.billing.pay_bills([third], replace(paid("PAY-2", 500), paid_at=given))
    assert later.paid_at == given


async def test_the_same_reference_returns_the_first_receipt_and_other_content_is_refused(stage: Stage) -> None:
    card = await stage.patient()
    bill, other = await stage.bill(card, ASPIRIN), await stage.bill(card, BLOOD)
    payment = paid("PAY-1", 3100)
    receipt = await stage.billing.pay_bills([bill], payment)
    stage.clock.advance(minutes=3)

    assert await stage.billing.pay_bills([bill], payment) == receipt
    assert await stage.billing.pay_bills([bill, bill], payment) == receipt
    for reused in (
        stage.billing.pay_bills([other], replace(payment, total_fen=2000, self_pay_fen=2000)),
        stage.billing.pay_bills([bill], replace(payment, channel_trade_no="4200999")),
        stage.billing.pay_bills([bill, other], payment),
        stage.billing.pay_registration("1", payment),
        stage.billing.top_up_deposit(card.his_patient_id, b.OUTPATIENT, None, payment),
    ):
        assert await rejected(reused) == b.REFERENCE_REUSED
    assert await stage.status(other) == [b.UNPAID]
    assert await rejected(stage.billing.pay_bills([bill], paid("", 3100))) == "INVALID_REFERENCE"


async def test_payment_refusals_leave_every_bill_as_it_was(stage: Stage) -> None:
    card, stranger = await stage.patient("甲"), await stage.patient("乙")
    first, second = await stage.bill(card, ASPIRIN), await stage.bill(card, BLOOD)
    theirs = await stage.bill(stranger, BLOOD)
    voided = await stage.bill(card, INFUSION)
    await stage.admin.void_bill(voided)
    pay = stage.billing.pay_bills

    assert await rejected(pay([first, "424242"], paid("P1", 3100))) == b.BILL_NOT_FOUND
    assert await rejected(pay(["²"], paid("P1", 3100))) == b.BILL_NOT_FOUND
    assert await rejected(pay([], paid("P2", 3100))) == b.BILL_NOT_FOUND
    assert await rejected(pay([first, theirs], paid("P3", 5100))) == b.BILLS_OF_SEVERAL_PATIENTS
    assert await rejected(pay([first, voided], paid("P4", 3600))) == b.BILL_NOT_PAYABLE
    assert await rejected(pay([first, second], paid("P5", 5000))) == b.AMOUNT_MISMATCH  # not the bills' sum
    parts_short = replace(paid("P6", 5100), self_pay_fen=5000)
    assert await rejected(pay([first, second], parts_short)) == b.AMOUNT_MISMATCH
    negative = replace(paid("P7", 5100, fund_fen=6000), self_pay_fen=-900)
    assert await rejected(pay([first, second], negative)) == b.AMOUNT_MISMATCH
    assert await stage.status(first, second) == [b.UNPAID, b.UNPAID]

    await pay([second], paid("P8", 2000))
    assert await rejected(pay([first, second], paid("P9", 5100))) == b.BILL_NOT_PAYABLE
    assert await stage.status(first, second) == [b.UNPAID, b.PAID]  # all or none
    assert await stage.billing.receipts_by_references([f"P{i}" for i in range(1, 10)]) == [
        (await stage.billing.receipts_by_references(["P8"]))[0]
    ]


async def test_a_payment_can_take_a_part_from_the_deposit(stage: Stage) -> None:
    card = await stage.patient()
    bill = await stage.bill(card, ASPIRIN)
    too_much = paid("P1", 3100, deposit_fen=1000, channel=b.DEPOSIT)
    assert await rejected(stage.billing.pay_bills([bill], too_much)) == b.INSUFFICIENT_DEPOSIT

    await stage.billing.top_up_deposit(card.his_patient_id, b.OUTPATIENT, None, paid("TOP-1", 2000))
    await stage.billing.pay_bills([bill], paid("P2", 3100, deposit_fen=1200))
    (account,) = await stage.billing.deposit_accounts([card.his_patient_id])
    assert account.balance_fen == 800

    refund = refund_of("R1", "P2", 3100)
    assert await rejected(stage.billing.refund(refund)) == b.REFUND_EXCEEDS_PAID  # 1900 was self-paid
    await stage.billing.refund(replace(refund, self_pay_fen=1900))  # the rest goes back to the deposit
    (account,) = await stage.billing.deposit_accounts([card.his_patient_id])
    assert account.balance_fen == 2000


# Registration fees ----------------------------------------------------------------------------------
async def test_paying_a_registration_fee_ends_its_hold(stage: Stage) -> None:
    card = await stage.patient()
    registration = await stage.registration(card, fee_fen=5000)
    payment = paid("REG-1", 5000, fund_fen=1500)

    receipt = await stage.billing.pay_registration(registration.id, payment)
    assert (receipt.registration_id, receipt.bill_ids, receipt.total_fen, receipt.his_patient_id) == (
        registration.id,
        (),
        5000,
        card.his_patient_id,
    )
    (after,) = await stage.his.registrations_by_ids([registration.id])
    assert (after.payment_status, after.hold_expires_at, after.status) == ("PAID", None, "BOOKED")
    stage.clock.advance(minutes=30)
    assert await stage.his.release_expired() == []  # paid: the sweep leaves it alone

    assert await stage.billing.pay_registration(registration.id, payment) == receipt
    again = stage.billing.pay_registration(registration.id, paid("REG-2", 5000))
    assert await rejected(again) == b.REGISTRATION_NOT_PAYABLE
    other = await stage.registration(await stage.patient("乙"), fee_fen=5000)
    assert await rejected(stage.billing.pay_registration(other.id, paid("REG-3", 4000))) == b.AMOUNT_MISMATCH


async def test_cancelled_expired_free_and_unknown_registrations_are_not_payable(stage: Stage) -> None:
    cancelled = await stage.registration(await stage.patient("甲"))
    await stage.his.cancel_registration(cancelled.id)
    expiring = await stage.registration(await stage.patient("乙"), hold_minutes=10)
    free = await stage.registration(await stage.patient("丙"), fee_fen=0)
    late = await stage.registration(await stage.patient("丁"), hold_minutes=10)
    stage.clock.advance(minutes=11)
    await stage.his.release_expired()

    for registration_id, fee in ((cancelled.id, 5000), (expiring.id, 5000), (free.id, 1), ("777777", 5000)):
        code = await rejected(stage.billing.pay_registration(registration_id, paid(f"R-{registration_id}", fee)))
        assert code == b.REGISTRATION_NOT_PAYABLE
    # A hold that ran out is not payable even before the sweep has expired it.
    (still_booked,) = await stage.his.registrations_by_ids([late.id])
    assert still_booked.status in ("BOOKED", "EXPIRED")
    assert await rejected(stage.billing.pay_registration(late.id, paid("R-late", 5000))) == b.REGISTRATION_NOT_PAYABLE


async def test_a_pay_later_visit_pays_its_fee_and_its_bills_afterwards(stage: Stage) -> None:
    card = await stage.patient()
    visit = await stage.registration(card, payment="PAY_LATER", hold_minutes=None)
    bill = await stage.bill(card, BLOOD, category=b.LAB, registration_id=visit.id)
    (found,) = await stage.billing.bills_by_ids([bill])
    assert found.registration_id == visit.id

    await stage.billing.pay_registration(visit.id, paid("REG-1", visit.fee_fen))
    await stage.billing.pay_bills([bill], paid("PAY-1", 2000))
    (after,) = await stage.his.registrations_by_ids([visit.id])
    assert after.payment_status == "PAID"
    stranger = await stage.patient("乙")
    with pytest.raises(ValueError):
        await stage.bill(stranger, BLOOD, registration_id=visit.id)


# Refunds --------------------------------------------------------------------------------------------
async def test_refunding_bills_one_by_one_never_beyond_what_was_paid(stage: Stage) -> None:
    card = await stage.patient()
    first, second, third = (
        await stage.bill(card, ASPIRIN),
        await stage.bill(card, BLOOD),
        await stage.bill(card, INFUSION),
    )
    await stage.billing.pay_bills([first, second, third], paid("PAY-1", 5600, fund_fen=1000, channel=b.MIXED))
    stage.clock.advance(minutes=10)

    partial = refund_of("REF-1", "PAY-1", 2000, second, insurance=1000)
    recorded = await stage.billing.refund(partial)
    assert recorded == replace(partial, refunded_at=stage.clock.now())
    assert await stage.status(first, second, third) == [b.PAID, b.REFUNDED, b.PAID]
    assert await stage.billing.refund(partial) == recorded  # the same reference: the first answer
    assert await rejected(stage.billing.refund(replace(partial, reason="改了"))) == b.REFERENCE_REUSED

    refund = stage.billing.refund
    assert await rejected(refund(refund_of("REF-2", "PAY-1", 2000, second))) == b.REFUND_EXCEEDS_PAID
    assert await rejected(refund(refund_of("REF-3", "PAY-1", 3000, first))) == b.AMOUNT_MISMATCH
    assert await rejected(refund(refund_of("REF-4", "PAY-1", 500, third, insurance=500))) == b.REFUND_EXCEEDS_PAID
    assert await rejected(refund(refund_of("REF-5", "PAY-404", 500, third))) == b.PAYMENT_NOT_FOUND
    assert await rejected(refund(refund_of("REF-6", "PAY-1", 9999))) == b.REFUND_EXCEEDS_PAID
    assert await rejected(refund(refund_of("REF-7", "PAY-1", 500, "424242"))) == b.BILL_NOT_FOUND
    await stage.admin.mark_executed(first)
    assert await rejected(refund(refund_of("REF-8", "PAY-1", 3600, first, third))) == b.NOT_REFUNDABLE
    assert await stage.status(first, second, third) == [b.PAID, b.REFUNDED, b.PAID]

    rest = await refund(refund_of("REF-9", "PAY-1", 500, third))
    assert rest.bill_ids == (third,)
    assert await rejected(refund(refund_of("REF-10", "PAY-1", 3100))) == b.NOT_REFUNDABLE  # all that is left: executed


async def test_refunding_all_bills_of_a_payment_names_none(stage: Stage) -> None:
    card = await stage.patient()
    first, second = await stage.bill(card, ASPIRIN), await stage.bill(card, BLOOD)
    await stage.billing.pay_bills([first, second], paid("PAY-1", 5100))
    recorded = await stage.billing.refund(refund_of("REF-1", "PAY-1", 5100))
    assert recorded.bill_ids == (first, second)  # the answer says which
    assert await stage.status(first, second) == [b.REFUNDED, b.REFUNDED]
    assert await rejected(stage.billing.pay_bills([first], paid("PAY-2", 3100))) == b.BILL_NOT_PAYABLE


async def test_a_registration_fee_is_refunded_in_parts_and_then_is_refunded(stage: Stage) -> None:
    card = await stage.patient()
    registration = await stage.registration(card, fee_fen=5000)
    await stage.billing.pay_registration(registration.id, paid("REG-1", 5000))

    await stage.billing.refund(refund_of("REF-1", "REG-1", 2000))
    (after,) = await stage.his.registrations_by_ids([registration.id])
    assert after.payment_status == "PAID"
    assert await rejected(stage.billing.refund(refund_of("REF-2", "REG-1", 3001))) == b.REFUND_EXCEEDS_PAID
    assert await rejected(stage.billing.refund(refund_of("REF-3", "REG-1", 100, "1"))) == b.BILL_NOT_FOUND
    await stage.billing.refund(refund_of("REF-4", "REG-1", 3000))
    (after,) = await stage.his.registrations_by_ids([registration.id])
    assert after.payment_status == "REFUNDED"
    assert await rejected(stage.billing.refund(refund_of("REF-5", "REG-1", 1))) == b.REFUND_EXCEEDS_PAID


# The day's ledger -----------------------------------------------------------------------------------
async def test_the_ledger_holds_the_payments_and_refunds_of_a_shanghai_day(stage: Stage) -> None:
    card = await stage.patient()
    monday = local_date(stage.clock.now())
    first, second = await stage.bill(card, ASPIRIN), await stage.bill(card, BLOOD)
    stage.clock.set(datetime(2026, 11, 23, 23, 58, tzinfo=SHANGHAI))
    receipt = await stage.billing.pay_bills([first], paid("PAY-1", 3100, fund_fen=1000, channel=b.MIXED))
    stage.clock.set(datetime(2026, 11, 24, 0, 1, tzinfo=SHANGHAI))  # 16:01 UTC on Monday: Tuesday in the hospital
    tuesday_receipt = await stage.billing.pay_bills([second], paid("PAY-2", 2000))
    refund = await stage.billing.refund(refund_of("REF-1", "PAY-1", 3100, first, insurance=1000))

    ledger = await stage.billing.ledger(monday)
    assert ledger == [
        b.LedgerEntry(
            "PAYMENT",
            "PAY-1",
            "PAY-1",
            b.MIXED,
            3100,
            2100,
            "42000PAY-1",
            receipt.receipt_no,
            datetime(2026, 11, 23, 23, 58, tzinfo=SHANGHAI),
        )
    ]
    tuesday = await stage.billing.ledger(monday + timedelta(days=1))
    assert [(e.kind, e.reference, e.payment_reference, e.amount_fen, e.self_pay_fen) for e in tuesday] == [
        ("PAYMENT", "PAY-2", "PAY-2", 2000, 2000),
        ("REFUND", "REF-1", "PAY-1", 3100, 2100),
    ]
    assert tuesday[0].receipt_no == tuesday_receipt.receipt_no
    assert (tuesday[1].channel, tuesday[1].channel_trade_no) == (b.MIXED, "42000PAY-1")
    assert tuesday[1].receipt_no not in ("", receipt.receipt_no)
    assert refund.refunded_at == stage.clock.now()
    assert await stage.billing.ledger(date(2026, 11, 22)) == []


# Deposits -------------------------------------------------------------------------------------------
async def test_every_patient_has_an_outpatient_deposit_and_inpatients_one_per_stay(stage: Stage) -> None:
    card, other = await stage.patient("甲"), await stage.patient("乙")
    assert await stage.billing.deposit_accounts([card.his_patient_id, "999999"]) == [
        b.DepositAccount(card.his_patient_id, b.OUTPATIENT, None, 0, 0)
    ]
    stay = await stage.billing.top_up_deposit(card.his_patient_id, b.INPATIENT, "ZY2026001", paid("TOP-1", 300000))
    assert stay == b.DepositAccount(card.his_patient_id, b.INPATIENT, "ZY2026001", 300000, 0)
    await stage.billing.top_up_deposit(card.his_patient_id, b.INPATIENT, "ZY2026002", paid("TOP-2", 1000))
    await stage.billing.top_up_deposit(other.his_patient_id, b.OUTPATIENT, None, paid("TOP-3", 500))
    accounts = await stage.billing.deposit_accounts([other.his_patient_id, card.his_patient_id])
    assert [(a.his_patient_id, a.kind, a.admission_id, a.balance_fen) for a in accounts] == [
        (card.his_patient_id, b.OUTPATIENT, None, 0),
        (card.his_patient_id, b.INPATIENT, "ZY2026001", 300000),
        (card.his_patient_id, b.INPATIENT, "ZY2026002", 1000),
        (other.his_patient_id, b.OUTPATIENT, None, 500),
    ]
    top_up = stage.billing.top_up_deposit
    assert await rejected(top_up("999999", b.OUTPATIENT, None, paid("TOP-4", 1))) == b.DEPOSIT_ACCOUNT_NOT_FOUND
    assert (
        await rejected(top_up(card.his_patient_id, b.INPATIENT, None, paid("TOP-5", 1))) == b.DEPOSIT_ACCOUNT_NOT_FOUND
    )
    assert await rejected(top_up(card.his_patient_id, "SAVINGS", None, paid("TOP-6", 1))) == b.DEPOSIT_ACCOUNT_NOT_FOUND
    assert await rejected(top_up(card.his_patient_id, b.OUTPATIENT, None, paid("TOP-7", 0))) == b.AMOUNT_MISMATCH
    from_deposit = paid("TOP-8", 100, deposit_fen=100)
    assert await rejected(top_up(card.his_patient_id, b.OUTPATIENT, None, from_deposit)) == b.AMOUNT_MISMATCH


async def test_a_top_up_clears_arrears_first_and_is_recorded_once(stage: Stage) -> None:
    card = await stage.patient()
    await stage.admin.add_arrears(card.his_patient_id, 3000)
    assert await stage.billing.deposit_accounts([card.his_patient_id]) == [
        b.DepositAccount(card.his_patient_id, b.OUTPATIENT, None, 0, 3000)
    ]
    small = await stage.billing.top_up_deposit(card.his_patient_id, b.OUTPATIENT, None, paid("TOP-1", 1000))
    assert (small.balance_fen, small.arrears_fen) == (0, 2000)
    big = await stage.billing.top_up_deposit(card.his_patient_id, b.OUTPATIENT, None, paid("TOP-2", 5000))
    assert (big.balance_fen, big.arrears_fen) == (3000, 0)

    assert await stage.billing.top_up_deposit(card.his_patient_id, b.OUTPATIENT, None, paid("TOP-1", 1000)) == small
    reused = stage.billing.top_up_deposit(card.his_patient_id, b.OUTPATIENT, None, paid("TOP-1", 2000))
    assert await rejected(reused) == b.REFERENCE_REUSED
    (account,) = await stage.billing.deposit_accounts([card.his_patient_id])
    assert (account.balance_fen, account.arrears_fen) == (3000, 0)
    (receipt,) = await stage.billing.receipts_by_references(["TOP-2"])
    assert (receipt.total_fen, receipt.bill_ids, receipt.registration_id) == (5000, (), None)


async def test_a_deposit_is_refunded_by_its_top_up_up_to_the_balance(stage: Stage) -> None:
    card = await stage.patient()
    refund_deposit = stage.billing.refund_deposit
    stay = (card.his_patient_id, b.INPATIENT, "ZY1")
    assert await rejected(refund_deposit(*stay, refund_of("RD-0", "TOP-1", 100))) == b.DEPOSIT_ACCOUNT_NOT_FOUND
    await stage.admin.add_arrears(card.his_patient_id, 1000, kind=b.INPATIENT, admission_id="ZY1")
    await stage.billing.top_up_deposit(*stay, paid("TOP-1", 5000))  # 1000 pays the arrears, 4000 stays
    await stage.billing.top_up_deposit(*stay, paid("TOP-2", 2000))

    assert await rejected(refund_deposit(*stay, refund_of("RD-1", "TOP-404", 100))) == b.PAYMENT_NOT_FOUND
    assert await rejected(refund_deposit(*stay, refund_of("RD-2", "TOP-2", 2001))) == b.REFUND_EXCEEDS_PAID
    assert await rejected(refund_deposit(*stay, refund_of("RD-3", "TOP-1", 0))) == b.AMOUNT_MISMATCH
    after = await refund_deposit(*stay, refund_of("RD-4", "TOP-1", 4500))
    assert (after.balance_fen, after.arrears_fen) == (1500, 0)
    assert await refund_deposit(*stay, refund_of("RD-4", "TOP-1", 4500)) == after
    assert await rejected(refund_deposit(*stay, refund_of("RD-5", "TOP-2", 2000))) == b.INSUFFICIENT_DEPOSIT
    assert (await refund_deposit(*stay, refund_of("RD-6", "TOP-2", 1500))).balance_fen == 0
    # A top-up of another account is not this account's to refund, nor through ``refund``.
    other = (card.his_patient_id, b.OUTPATIENT, None)
    await stage.billing.top_up_deposit(*other, paid("TOP-3", 100))
    assert await rejected(refund_deposit(*stay, refund_of("RD-7", "TOP-3", 100))) == b.PAYMENT_NOT_FOUND
    assert await rejected(stage.billing.refund(refund_of("RD-8", "TOP-3", 100))) == b.NOT_REFUNDABLE


# Races ----------------------------------------------------------------------------------------------
async def test_twenty_concurrent_write_backs_of_one_reference_pay_once(stage: Stage) -> None:
    card = await stage.patient()
    first, second = await stage.bill(card, ASPIRIN), await stage.bill(card, BLOOD)
    payment = paid("PAY-1", 5100)

    receipts = await asyncio.gather(*(stage.billing.pay_bills([first, second], payment) for _ in range(20)))
    assert len(set(receipts)) == 1
    assert await stage.status(first, second) == [b.PAID, b.PAID]
    assert [e.reference for e in await stage.billing.ledger(local_date(stage.clock.now()))] == ["PAY-1"]


async def test_two_payments_racing_for_one_bill_one_wins(stage: Stage) -> None:
    card = await stage.patient()
    bill = await stage.bill(card, ASPIRIN)
    outcomes = await asyncio.gather(
        *(stage.billing.pay_bills([bill], paid(f"PAY-{i}", 3100)) for i in range(2)), return_exceptions=True
    )
    receipts = [o for o in outcomes if isinstance(o, b.Receipt)]
    refused = [o.code for o in outcomes if isinstance(o, SourceRejected)]
    assert (len(receipts), refused) == (1, [b.BILL_NOT_PAYABLE])
    (settled,) = await stage.billing.bills_by_ids([bill])
    assert settled.payment_reference == receipts[0].reference


async def test_concurrent_refunds_never_exceed_what_was_paid(stage: Stage) -> None:
    card = await stage.patient()
    registration = await stage.registration(card, fee_fen=5000)
    await stage.billing.pay_registration(registration.id, paid("REG-1", 5000))
    outcomes = await asyncio.gather(
        *(stage.billing.refund(refund_of(f"REF-{i}", "REG-1", 2000)) for i in range(5)), return_exceptions=True
    )
    refused = [o.code for o in outcomes if isinstance(o, SourceRejected)]
    assert refused == [b.REFUND_EXCEEDS_PAID] * 3
    same = await asyncio.gather(*(stage.billing.refund(refund_of("REF-X", "REG-1", 1000)) for _ in range(10)))
    assert len(set(same)) == 1
    assert (
        sum(e.amount_fen for e in await stage.billing.ledger(local_date(stage.clock.now())) if e.kind == "REFUND")
        == 5000
    )


# The wire format -------------------------------------------------------------------------------------
def test_the_writes_are_exactly_the_calls_that_are_never_repeated() -> None:
    writes = {name for name, method in billing_wire.METHODS.items() if not method.idempotent}
    assert writes == {"pay_bills", "pay_registration", "refund", "top_up_deposit", "refund_deposit"}
    assert billing_wire.IDEMPOTENT <= set(billing_wire.METHODS)


def test_records_cross_the_wire_unchanged_and_left_out_parts_default_to_zero() -> None:
    method = billing_wire.METHODS["pay_bills"]
    at = datetime(2026, 11, 23, 9, 10, tzinfo=SHANGHAI)
    payment = b.PaymentRecord("PAY-1", b.MIXED, 5100, 2100, fund_fen=3000, insurance_settlement_id="S1", paid_at=at)
    body = json.loads(json.dumps(wire.encode_arguments(method, {"bill_ids": ["1", "2"], "payment": payment})))
    assert body["payment"]["paid_at"] == "2026-11-23T09:10:00+08:00"
    assert body["payment"]["total_fen"] == 5100
    assert wire.decode_arguments(method, body) == {"bill_ids": ["1", "2"], "payment": payment}
    short = {
        "bill_ids": ["1"],
        "payment": {"reference": "P", "channel": b.WECHAT_PAY, "total_fen": 1, "self_pay_fen": 1},
    }
    assert wire.decode_arguments(method, short)["payment"] == b.PaymentRecord("P", b.WECHAT_PAY, 1, 1)
    receipt = b.Receipt("PAY-1", "SF1", "7", ("1", "2"), None, 5100, at, "https://e/1")
    returns = method.returns
    assert wire.decode(json.loads(json.dumps(wire.encode(receipt, returns))), returns) == receipt


async def test_malformed_requests_get_a_400_that_names_the_problem(db: Database, clock: FixedClock) -> None:
    live = await LiveServer(his_billing_sandbox_app(lambda: SandboxHISBilling(db, clock))).start()
    try:
        async with httpx.AsyncClient(base_url=live.url + "/his/v1/billing/") as http:

            async def answer(method: str, content: str) -> tuple[int, dict[str, Any]]:
                response = await http.post(method, content=content)
                return response.status_code, response.json()

            payment = {"reference": "P1", "channel": b.WECHAT_PAY, "total_fen": 100, "self_pay_fen": 100}
            assert await answer("pay_bills", "{not json") == (
                400,
                {"code": "BAD_REQUEST", "message": "the body is not valid JSON"},
            )
            status, body = await answer(
                "pay_bills", json.dumps({"bill_ids": ["1"], "payment": {**payment, "total_fen": "1.00"}})
            )
            assert (status, body["message"]) == (400, "$.payment.total_fen: expected an integer, got str")
            assert (await answer("pay_bills", json.dumps({"bill_ids": ["1"]})))[1][
                "message"
            ] == "$: missing field payment"
            no_reference = {k: v for k, v in payment.items() if k != "reference"}
            status, body = await answer("pay_bills", json.dumps({"bill_ids": ["1"], "payment": no_reference}))
            assert (status, body["message"]) == (400, "$.payment: missing field reference")
            status, body = await answer("refund", json.dumps({"refund": {"amount": 1}}))
            assert (status, body["code"]) == (400, "BAD_REQUEST")
            assert "unknown field(s) amount" in body["message"]
            status, body = await answer("ledger", json.dumps({"day": "23/11/2026"}))
            assert (status, body["message"]) == (400, "$.day: expected an ISO date (YYYY-MM-DD), got '23/11/2026'")
            assert await answer("drop_bills", "{}") == (
                404,
                {"code": "UNKNOWN_METHOD", "message": "no HIS billing method 'drop_bills'"},
            )
            assert await answer("ledger", json.dumps({"day": "2026-11-23"})) == (200, {"code": "0", "data": []})
            refused = await answer("pay_bills", json.dumps({"bill_ids": ["424242"], "payment": payment}))
            assert refused == (200, {"code": b.BILL_NOT_FOUND, "message": "no bills 424242"})
    finally:
        await live.stop()


async def test_one_gateway_serves_the_his_api_and_its_billing(db: Database, clock: FixedClock) -> None:
    billing, his = SandboxHISBilling(db, clock), SandboxHIS(db, clock)
    live = await LiveServer(his_gateway_sandbox_app(lambda: his, lambda: billing)).start()
    client = HttpHISBilling(live.url, timeout=5)
    try:
        async with httpx.AsyncClient(base_url=live.url) as http:
            assert (await http.post("/his/v1/campuses", json={})).json() == {"code": "0", "data": []}
        card = await his.create_record(c.PatientRecordInput("甲", "RESIDENT_ID", resident_id(), *[None] * 5))
        accounts = await client.deposit_accounts([card.his_patient_id])
        assert accounts == [b.DepositAccount(card.his_patient_id, b.OUTPATIENT, None, 0, 0)]
    finally:
        await client.aclose()
        await live.stop()


# What only the HTTP client has ----------------------------------------------------------------------
class Flaky:
    """The served sandbox behind a door that counts attempts per method; ``before(method, attempt)``
    may answer instead (a 503, or a write that happens but whose answer never comes back)."""

    def __init__(self, inner: ASGIApp, before: Callable[[str, int], Awaitable[Response | None]]) -> None:
        self.inner = inner
        self.before = before
        self.attempts: Counter[str] = Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return
        method = scope["path"].rsplit("/", 1)[-1]
        self.attempts[method] += 1
        response = await self.before(method, self.attempts[method])
        await (response or self.inner)(scope, receive, send)


async def test_reads_are_retried_and_writes_are_not(db: Database, clock: FixedClock) -> None:
    sandbox = SandboxHISBilling(db, clock)
    hospital = await Hospital(db, clock).build()
    card = await SandboxHIS(db, clock).create_record(
        c.PatientRecordInput("甲", "RESIDENT_ID", resident_id(), None, None, None, None, None)
    )
    bill = await SandboxHISBillingAdmin(db).add_bill(
        card.his_patient_id,
        card.card_no,
        department_id=hospital.department_id,
        doctor_id=hospital.doctor_id,
        category=b.LAB,
        title="检验",
        items=[BLOOD],
        at=clock.now(),
    )

    async def first_attempt_fails(method: str, attempt: int) -> Response | None:
        return JSONResponse({"code": "UNAVAILABLE", "message": "restarting"}, 503) if attempt == 1 else None

    door = Flaky(his_billing_sandbox_app(lambda: sandbox), first_attempt_fails)
    live = await LiveServer(door).start()  # type: ignore[arg-type]
    billing = HttpHISBilling(live.url, timeout=5, retries=2, backoff_seconds=0.01)
    try:
        assert [x.id for x in await billing.pending_bills([card.his_patient_id])] == [bill]
        assert await billing.receipts_by_references(["PAY-1"]) == []
        with pytest.raises(SourceUnavailable, match="HTTP 503"):
            await billing.pay_bills([bill], paid("PAY-1", 2000))
        with pytest.raises(SourceUnavailable):
            await billing.top_up_deposit(card.his_patient_id, b.OUTPATIENT, None, paid("TOP-1", 100))
        assert door.attempts == {"pending_bills": 2, "receipts_by_references": 2, "pay_bills": 1, "top_up_deposit": 1}
        assert await sandbox.receipts_by_references(["PAY-1", "TOP-1"]) == []

        receipt = await billing.pay_bills([bill], paid("PAY-1", 2000))  # the caller repeats it, once
        assert await billing.receipts_by_references(["PAY-1"]) == [receipt]
    finally:
        await billing.aclose()
        await live.stop()


async def test_a_write_back_whose_answer_is_lost_is_repeated_with_its_reference(
    db: Database, clock: FixedClock
) -> None:
    sandbox = SandboxHISBilling(db, clock)
    card = await SandboxHIS(db, clock).create_record(
        c.PatientRecordInput("甲", "RESIDENT_ID", resident_id(), None, None, None, None, None)
    )
    release = asyncio.Event()

    async def recorded_then_silent(method: str, attempt: int) -> Response | None:
        if attempt == 1:  # the HIS records the top-up, then the answer never arrives in time
            await sandbox.top_up_deposit(card.his_patient_id, b.OUTPATIENT, None, paid("TOP-1", 3000))
            await release.wait()
            return JSONResponse({"code": "UNAVAILABLE", "message": "late"}, 503)
        return None

    door = Flaky(his_billing_sandbox_app(lambda: sandbox), recorded_then_silent)
    live = await LiveServer(door).start()  # type: ignore[arg-type]
    billing = HttpHISBilling(live.url, timeout=0.3, retries=2, backoff_seconds=0.01)
    try:
        with pytest.raises(SourceUnavailable, match="timed out"):
            await billing.top_up_deposit(card.his_patient_id, b.OUTPATIENT, None, paid("TOP-1", 3000))
        assert door.attempts == {"top_up_deposit": 1}
        again = await billing.top_up_deposit(card.his_patient_id, b.OUTPATIENT, None, paid("TOP-1", 3000))
        assert again == b.DepositAccount(card.his_patient_id, b.OUTPATIENT, None, 3000, 0)  # recorded once
        assert (await billing.deposit_accounts([card.his_patient_id]))[0].balance_fen == 3000
    finally:
        release.set()
        await billing.aclose()
        await live.stop()


async def test_a_his_that_is_down_is_unavailable_at_once_and_the_circuit_opens() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    billing = HttpHISBilling(
        f"http://127.0.0.1:{port}", timeout=2, retries=1, backoff_seconds=0.01, failure_threshold=3
    )
    try:
        with pytest.raises(SourceUnavailable, match="transport error"):
            await billing.pending_bills(["1"])
        with pytest.raises(SourceUnavailable, match="transport error"):
            await billing.refund(refund_of("REF-1", "PAY-1", 100))
        with pytest.raises(SourceUnavailable, match="circuit open"):
            await billing.ledger(date(2026, 11, 23))
    finally:
        await billing.aclose()


async def test_concurrent_top_ups_open_one_account_and_count_each_reference_once(stage: Stage) -> None:
    card = await stage.patient()
    await stage.admin.add_arrears(card.his_patient_id, 500, kind=b.INPATIENT, admission_id="ZY9")
    top_up = stage.billing.top_up_deposit
    firsts = await asyncio.gather(
        *(top_up(card.his_patient_id, b.OUTPATIENT, None, paid(f"T-{i}", 100)) for i in range(8))
    )
    assert sorted(a.balance_fen for a in firsts) == [100 * i for i in range(1, 9)]
    same = await asyncio.gather(
        *(top_up(card.his_patient_id, b.INPATIENT, "ZY9", paid("T-X", 2000)) for _ in range(10))
    )
    assert set(same) == {b.DepositAccount(card.his_patient_id, b.INPATIENT, "ZY9", 1500, 0)}
    accounts = await stage.billing.deposit_accounts([card.his_patient_id])
    assert [(a.kind, a.balance_fen, a.arrears_fen) for a in accounts] == [
        (b.OUTPATIENT, 800, 0),
        (b.INPATIENT, 1500, 0),
    ]
