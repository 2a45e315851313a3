"""The HIS inpatient contract, as one suite run against every implementation: the sandbox in-process,
and ``HttpHISInpatient`` over real HTTP (uvicorn on loopback) to the sandbox served in the gateway's
wire format.

Both give the same answers and refuse with the same codes: a notice admits one stay into one free
bed, the daily list adds up, discharge registration freezes it and can be undone until settlement,
the settlement takes from the stay's deposit and leaves the surplus, its cancellation gives the
deposit back; every write is idempotent per reference, and races for a bed or a settlement end
with one winner. At the end: the faults a test can ask of the sandbox, and the wire itself.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

import httpx
import pytest
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from datasources.clock import SHANGHAI, FixedClock
from datasources.errors import SourceRejected, SourceUnavailable
from datasources.his import billing as b
from datasources.his import contract as c
from datasources.his import inpatient as i
from datasources.his import inpatient_wire, wire
from datasources.his.billing_sandbox import INVOICE_BASE, SandboxHISBilling
from datasources.his.inpatient_http import HttpHISInpatient
from datasources.his.inpatient_sandbox import SandboxHISInpatient, SandboxHISInpatientAdmin
from datasources.his.inpatient_served import his_hospital_gateway_sandbox_app, his_inpatient_sandbox_app
from datasources.his.sandbox import SandboxHIS
from datasources.store.db import Database
from tests.conftest import LiveServer
from tests.factories import Hospital, resident_id

IMPLEMENTATIONS = ["sandbox_in_process", "http_to_served_sandbox"]

BED_DAY = b.BillItem("110900001", "床位费(三人间)", "", "日", "1", 5000, 5000, "001109000010000", "A")
NURSING = b.BillItem("120100002", "一级护理", "", "日", "1", 2800, 2800, "001201000020000", "A")
SALINE = b.BillItem("X-B05BB01", "氯化钠注射液", "0.9%*250ml", "袋", "2", 350, 700, "XB05BBH054B002010100152", "A")
ECG = b.BillItem("310701001", "常规心电图检查", "十二通道", "次", "1", 2500, 2500, "003107010010000", "A")
FEES = 5000 + 2800 + 700 + 2500


@dataclass
class Stage:
    """The implementation under test, the sandboxes whose state it shows, and the hospital in them."""

    inpatient: i.HISInpatient
    sandbox: SandboxHISInpatient
    admin: SandboxHISInpatientAdmin
    billing: SandboxHISBilling
    his: SandboxHIS
    hospital: Hospital
    clock: FixedClock

    async def patient(self, name: str = "李四") -> c.MedicalCard:
        record = c.PatientRecordInput(name, "RESIDENT_ID", resident_id(), None, None, None, None, None)
        return await self.his.create_record(record)

    async def ward(self, *beds: str) -> str:
        return await self.admin.add_ward("心内科一病区", self.hospital.department_id, beds or ("1", "2", "3"))

    async def notice(self, card: c.MedicalCard, ward_id: str, *, hours: int = 48) -> str:
        return await self.admin.issue_notice(
            card.his_patient_id,
            ward_id,
            "不稳定型心绞痛",
            self.clock.now() + timedelta(hours=hours),
            doctor_id=self.hospital.doctor_id,
            diagnosis_code="I20.000",
            at=self.clock.now(),
        )

    async def admitted(
        self,
        card: c.MedicalCard | None = None,
        *,
        ward_id: str | None = None,
        visit: str | None = None,
        reference: str | None = None,
    ) -> i.Admission:
        card = card or await self.patient()
        ward_id = ward_id or await self.ward()
        code = await self.notice(card, ward_id)
        bed = (await self.inpatient.free_beds(ward_id))[0]
        return await self.inpatient.admit(
            code,
            his_patient_id=card.his_patient_id,
            bed_id=bed.id,
            admission_type=i.INSURANCE if visit else i.SELF_PAY,
            insurance_visit_id=visit,
            reference=reference or f"ADM-{code}",
        )

    async def charge(self, stay: i.Admission) -> None:
        """A day in the ward: the bed, nursing, an infusion and an ECG."""
        for item, category in ((BED_DAY, i.BED), (NURSING, i.NURSING), (SALINE, i.WESTERN_MEDICINE), (ECG, i.CHECKUP)):
            await self.admin.add_charge(stay.admission_id, item, self.clock.now(), category=category)
            self.clock.advance(minutes=1)

    async def top_up(self, stay: i.Admission, fen: int, reference: str) -> b.DepositAccount:
        payment = b.PaymentRecord(reference, b.WECHAT_PAY, fen, fen, channel_trade_no=f"42000{reference}")
        return await self.billing.top_up_deposit(stay.his_patient_id, b.INPATIENT, stay.admission_id, payment)

    async def deposit(self, stay: i.Admission) -> int:
        accounts = await self.billing.deposit_accounts([stay.his_patient_id])
        return sum(a.balance_fen for a in accounts if a.admission_id == stay.admission_id)

    async def discharged(self, stay: i.Admission) -> i.Admission:
        return await self.inpatient.register_discharge(
            stay.admission_id, discharged_at=self.clock.now(), diagnosis="冠心病", reference=f"DIS-{stay.admission_id}"
        )


def settlement(
    reference: str,
    total: int,
    *,
    deposit_used: int = 0,
    surplus: int = 0,
    fund: int = 0,
    personal: int = 0,
    setl_id: str = "",
) -> i.InpatientSettlement:
    """A settlement whose part paid at discharge is what the other parts leave."""
    self_pay = total - fund - personal - deposit_used
    return i.InpatientSettlement(
        reference=reference,
        total_fen=total,
        fund_fen=fund,
        personal_account_fen=personal,
        family_account_fen=0,
        deposit_used_fen=deposit_used,
        self_pay_fen=self_pay,
        surplus_fen=surplus,
        insurance_settlement_id=setl_id,
        self_pay_channel=b.WECHAT_PAY if self_pay else "",
        channel_trade_no=f"42000{reference}" if self_pay else "",
    )


@pytest.fixture(params=IMPLEMENTATIONS)
async def stage(request: pytest.FixtureRequest, db: Database, clock: FixedClock) -> AsyncIterator[Stage]:
    sandbox = SandboxHISInpatient(db, clock)
    hospital = await Hospital(db, clock).build()
    parts = (
        sandbox,
        SandboxHISInpatientAdmin(db),
        SandboxHISBilling(db, clock),
        SandboxHIS(db, clock),
        hospital,
        clock,
    )
    if request.param == "sandbox_in_process":
        yield Stage(sandbox, *parts)
        return
    live = await LiveServer(his_inpatient_sandbox_app(lambda: sandbox)).start()
    client = HttpHISInpatient(live.url, timeout=10)
    try:
        yield Stage(client, *parts)
    finally:
        await client.aclose()
        await live.stop()


async def rejected(call: Awaitable[Any]) -> str:
    with pytest.raises(SourceRejected) as caught:
        await call
    return caught.value.code


# Notices and beds ---------------------------------------------------------------------------------
async def test_a_notice_is_read_by_its_code_until_it_is_used_or_expires(stage: Stage) -> None:
    card = await stage.patient()
    ward_id = await stage.ward()
    code = await stage.notice(card, ward_id, hours=2)
    notice = await stage.inpatient.admission_notice(code)
    h = stage.hospital
    assert notice == i.AdmissionNotice(
        code=code,
        his_patient_id=card.his_patient_id,
        department_id=h.department_id,
        department_name="心血管内科",
        ward_id=ward_id,
        ward_name="心内科一病区",
        doctor_id=h.doctor_id,
        doctor_name="王建国",
        diagnosis_code="I20.000",
        diagnosis="不稳定型心绞痛",
        issued_at=stage.clock.now(),
        valid_until=stage.clock.now() + timedelta(hours=2),
    )
    assert await rejected(stage.inpatient.admission_notice("RY0000000000000000")) == i.NOTICE_NOT_FOUND
    stale = await stage.notice(card, ward_id, hours=1)
    stage.clock.advance(hours=1)
    assert await rejected(stage.inpatient.admission_notice(stale)) == i.NOTICE_EXPIRED
    bed = (await stage.inpatient.free_beds(ward_id))[0]
    assert (
        await rejected(
            stage.inpatient.admit(
                stale,
                his_patient_id=card.his_patient_id,
                bed_id=bed.id,
                admission_type=i.SELF_PAY,
                insurance_visit_id=None,
                reference="ADM-STALE",
            )
        )
        == i.NOTICE_EXPIRED
    )
    await stage.inpatient.admit(
        code,
        his_patient_id=card.his_patient_id,
        bed_id=bed.id,
        admission_type=i.SELF_PAY,
        insurance_visit_id=None,
        reference="ADM-1",
    )
    assert await rejected(stage.inpatient.admission_notice(code)) == i.NOTICE_USED


async def test_free_beds_are_listed_by_number_and_an_admission_takes_one(stage: Stage) -> None:
    ward_id = await stage.ward("10", "2", "1")
    beds = await stage.inpatient.free_beds(ward_id)
    assert [x.bed_no for x in beds] == ["1", "2", "10"]
    assert beds[0] == i.Bed(beds[0].id, ward_id, "1", "", 5000)
    stay = await stage.admitted(ward_id=ward_id)
    assert (stay.bed_id, stay.bed_no) == (beds[0].id, "1")
    assert [x.bed_no for x in await stage.inpatient.free_beds(ward_id)] == ["2", "10"]
    assert await rejected(stage.inpatient.free_beds("424242")) == i.WARD_NOT_FOUND
    assert await rejected(stage.inpatient.free_beds("x")) == i.WARD_NOT_FOUND


async def test_admission_refusals_change_nothing(stage: Stage) -> None:
    card, other = await stage.patient("甲"), await stage.patient("乙")
    ward_id, elsewhere = await stage.ward(), await stage.ward("9")
    code = await stage.notice(card, ward_id)
    bed = (await stage.inpatient.free_beds(ward_id))[0]
    foreign_bed = (await stage.inpatient.free_beds(elsewhere))[0]

    def admit(**changes: Any) -> Awaitable[i.Admission]:
        arguments: dict[str, Any] = {
            "his_patient_id": card.his_patient_id,
            "bed_id": bed.id,
            "admission_type": i.SELF_PAY,
            "insurance_visit_id": None,
            "reference": f"ADM-{len(changes)}-{sorted(changes)}",
        } | changes
        return stage.inpatient.admit(arguments.pop("notice_code", code), **arguments)

    assert await rejected(admit(notice_code="nope")) == i.NOTICE_NOT_FOUND
    assert await rejected(admit(his_patient_id=other.his_patient_id)) == i.PATIENT_MISMATCH
    assert await rejected(admit(bed_id=foreign_bed.id)) == i.BED_NOT_FOUND
    assert await rejected(admit(bed_id="²")) == i.BED_NOT_FOUND
    assert await rejected(admit(admission_type="VIP")) == i.INVALID_ADMISSION_TYPE
    assert await rejected(admit(admission_type=i.INSURANCE)) == i.INSURANCE_VISIT_REQUIRED
    assert await rejected(admit(insurance_visit_id="MDTRT-1")) == i.INSURANCE_VISIT_REQUIRED
    held = await stage.admitted(other, ward_id=ward_id)
    assert held.bed_id == bed.id
    assert await rejected(admit()) == i.BED_TAKEN
    assert (await stage.inpatient.admission_notice(code)).code == code
    assert await stage.inpatient.admissions_of([card.his_patient_id]) == []


async def test_an_insured_admission_carries_the_platforms_visit_and_reads_back(stage: Stage) -> None:
    card = await stage.patient()
    stay = await stage.admitted(card, visit="MDTRT-2401-1")
    h = stage.hospital
    assert stay == i.Admission(
        admission_id=stay.admission_id,
        his_patient_id=card.his_patient_id,
        notice_code=stay.notice_code,
        admission_type=i.INSURANCE,
        insurance_visit_id="MDTRT-2401-1",
        status=i.ADMITTED,
        admitted_at=stage.clock.now(),
        department_id=h.department_id,
        department_name="心血管内科",
        ward_id=stay.ward_id,
        ward_name="心内科一病区",
        bed_id=stay.bed_id,
        bed_no="1",
        doctor_id=h.doctor_id,
        doctor_name="王建国",
        diagnosis_code="I20.000",
        diagnosis="不稳定型心绞痛",
        discharged_at=None,
        discharge_diagnosis="",
    )
    assert stay.admission_id.startswith("ZY")
    assert await stage.inpatient.admission(stay.admission_id) == stay
    assert await rejected(stage.inpatient.admission("ZY99999999")) == i.ADMISSION_NOT_FOUND
    assert await rejected(stage.inpatient.admission("42")) == i.ADMISSION_NOT_FOUND
    second_notice = await stage.notice(card, stay.ward_id)
    bed = (await stage.inpatient.free_beds(stay.ward_id))[0]
    while_staying = stage.inpatient.admit(
        second_notice,
        his_patient_id=card.his_patient_id,
        bed_id=bed.id,
        admission_type=i.SELF_PAY,
        insurance_visit_id=None,
        reference="ADM-AGAIN",
    )
    assert await rejected(while_staying) == i.ALREADY_IN_HOSPITAL
    await stage.discharged(stay)
    assert await rejected(stage.admitted(card)) == i.ALREADY_IN_HOSPITAL
    await stage.inpatient.settle(stay.admission_id, settlement("SET-1", 0, setl_id="SETL-1"))
    stage.clock.advance(days=30)
    again = await stage.admitted(card)
    assert [x.admission_id for x in await stage.inpatient.admissions_of([card.his_patient_id, "x"])] == [
        again.admission_id,
        stay.admission_id,
    ]


async def test_a_self_pay_stay_is_converted_to_insurance_while_admitted(stage: Stage) -> None:
    stay = await stage.admitted()
    assert (stay.admission_type, stay.insurance_visit_id) == (i.SELF_PAY, None)
    assert (
        await rejected(stage.inpatient.convert_to_insurance(stay.admission_id, "", "CONV-0"))
        == i.INSURANCE_VISIT_REQUIRED
    )
    converted = await stage.inpatient.convert_to_insurance(stay.admission_id, "MDTRT-9", "CONV-1")
    assert converted == replace(stay, admission_type=i.INSURANCE, insurance_visit_id="MDTRT-9")
    assert await stage.inpatient.convert_to_insurance(stay.admission_id, "MDTRT-9", "CONV-1") == converted
    assert await rejected(stage.inpatient.convert_to_insurance(stay.admission_id, "MDTRT-9", "CONV-2")) == (
        i.ALREADY_INSURED
    )
    other = await stage.admitted()
    await stage.discharged(other)
    assert await rejected(stage.inpatient.convert_to_insurance(other.admission_id, "M", "CONV-3")) == i.NOT_ADMITTED
    assert await rejected(stage.inpatient.convert_to_insurance("ZY0", "M", "CONV-4")) == i.ADMISSION_NOT_FOUND


# Fees ---------------------------------------------------------------------------------------------
async def test_the_daily_list_adds_up_by_category(stage: Stage) -> None:
    stay = await stage.admitted()
    assert await stage.inpatient.fee_items(stay.admission_id) == i.FeeList(stay.admission_id, (), 0, (), False)
    start = stage.clock.now()
    await stage.charge(stay)
    fees = await stage.inpatient.fee_items(stay.admission_id)
    assert fees.total_fen == FEES
    assert [(x.category, x.amount_fen) for x in fees.by_category] == [
        (i.BED, 5000),
        (i.CHECKUP, 2500),
        (i.NURSING, 2800),
        (i.WESTERN_MEDICINE, 700),
    ]
    first = fees.items[0]
    assert first == i.FeeItem(
        id=first.id,
        admission_id=stay.admission_id,
        day=date(2026, 11, 23),
        charged_at=start,
        category=i.BED,
        code="110900001",
        name="床位费(三人间)",
        spec="",
        unit="日",
        quantity="1",
        unit_price_fen=5000,
        amount_fen=5000,
        insurance_code="001109000010000",
        insurance_class="A",
        department_id=stage.hospital.department_id,
        department_name="心血管内科",
        doctor_id=stage.hospital.doctor_id,
        doctor_name="王建国",
    )
    assert [x.name for x in fees.items] == ["床位费(三人间)", "一级护理", "氯化钠注射液", "常规心电图检查"]
    assert len({x.id for x in fees.items}) == 4
    assert await rejected(stage.inpatient.fee_items("ZY77777777")) == i.ADMISSION_NOT_FOUND
    with pytest.raises(ValueError, match="medChrgitmType"):
        await stage.admin.add_charge(stay.admission_id, ECG, stage.clock.now(), category="99")
    with pytest.raises(ValueError, match="is not"):
        await stage.admin.add_charge(stay.admission_id, replace(ECG, amount_fen=1), stage.clock.now(), category="03")


# The whole stay -----------------------------------------------------------------------------------
async def test_a_stay_from_admission_to_settlement_with_deposit_and_surplus_then_cancelled(stage: Stage) -> None:
    card = await stage.patient()
    stay = await stage.admitted(card, visit="MDTRT-1")
    await stage.top_up(stay, 5000, "DEP-1")
    await stage.top_up(stay, 5000, "DEP-2")
    await stage.charge(stay)

    discharged_at = stage.clock.now()
    out = await stage.discharged(stay)
    assert (out.status, out.discharged_at, out.discharge_diagnosis) == (i.DISCHARGE_REGISTERED, discharged_at, "冠心病")
    assert stay.bed_id in [x.id for x in await stage.inpatient.free_beds(stay.ward_id)]
    fees = await stage.inpatient.fee_items(stay.admission_id)
    assert (fees.total_fen, fees.frozen) == (FEES, True)
    with pytest.raises(ValueError, match="frozen"):
        await stage.admin.add_charge(stay.admission_id, ECG, stage.clock.now(), category=i.CHECKUP)

    # 2304 paid 6000 from the fund and 1000 from the personal account; the deposit pays the rest.
    paid = settlement("SET-1", FEES, fund=6000, personal=1000, deposit_used=4000, surplus=6000, setl_id="SETL-1")
    receipt = await stage.inpatient.settle(stay.admission_id, paid)
    assert receipt == i.DischargeReceipt(
        reference="SET-1",
        receipt_no=receipt.receipt_no,
        admission_id=stay.admission_id,
        his_patient_id=card.his_patient_id,
        status=i.IN_FORCE,
        total_fen=FEES,
        fund_fen=6000,
        personal_account_fen=1000,
        family_account_fen=0,
        deposit_used_fen=4000,
        self_pay_fen=0,
        surplus_fen=6000,
        insurance_settlement_id="SETL-1",
        settled_at=stage.clock.now(),
        invoice_url=INVOICE_BASE + receipt.receipt_no,
        cancelled_at=None,
        cancel_reference=None,
    )
    assert receipt.receipt_no.startswith("ZJ20261123")
    assert (await stage.inpatient.admission(stay.admission_id)).status == i.SETTLED
    assert await stage.deposit(stay) == 6000  # the surplus, for the BFF to refund top-up by top-up
    assert await stage.inpatient.settlements_by_references(["SET-1", "SET-404"]) == [receipt]

    stage.clock.advance(minutes=3)
    cancelled = await stage.inpatient.cancel_settlement(
        stay.admission_id, settlement_reference="SET-1", reference="CANCEL-1"
    )
    assert cancelled == i.SettlementCancellation("CANCEL-1", "SET-1", stay.admission_id, 4000, stage.clock.now())
    assert (await stage.inpatient.admission(stay.admission_id)).status == i.DISCHARGE_REGISTERED
    assert await stage.deposit(stay) == 10000
    (after,) = await stage.inpatient.settlements_by_references(["SET-1"])
    assert after == replace(receipt, status=i.CANCELLED, cancelled_at=stage.clock.now(), cancel_reference="CANCEL-1")
    assert (
        await rejected(
            stage.inpatient.cancel_settlement(stay.admission_id, settlement_reference="SET-1", reference="CANCEL-2")
        )
        == i.SETTLEMENT_NOT_FOUND
    )
    again = await stage.inpatient.settle(stay.admission_id, replace(paid, reference="SET-2"))
    assert (again.status, await stage.deposit(stay)) == (i.IN_FORCE, 6000)


async def test_a_short_deposit_is_used_up_and_the_rest_paid_at_discharge(stage: Stage) -> None:
    stay = await stage.admitted()
    await stage.top_up(stay, 3000, "DEP-1")
    await stage.charge(stay)
    await stage.discharged(stay)
    more = settlement("SET-X", FEES, deposit_used=3001)
    assert await rejected(stage.inpatient.settle(stay.admission_id, more)) == i.INSUFFICIENT_DEPOSIT
    left = settlement("SET-Y", FEES, deposit_used=2000, surplus=0)
    assert await rejected(stage.inpatient.settle(stay.admission_id, left)) == i.AMOUNT_MISMATCH
    both = settlement("SET-Z", FEES, deposit_used=2000, surplus=1000)
    assert await rejected(stage.inpatient.settle(stay.admission_id, both)) == i.AMOUNT_MISMATCH
    receipt = await stage.inpatient.settle(stay.admission_id, settlement("SET-1", FEES, deposit_used=3000))
    assert (receipt.deposit_used_fen, receipt.self_pay_fen, receipt.surplus_fen) == (3000, FEES - 3000, 0)
    assert await stage.deposit(stay) == 0


async def test_a_stay_without_deposit_pays_everything_at_discharge(stage: Stage) -> None:
    stay = await stage.admitted()
    await stage.charge(stay)
    await stage.discharged(stay)
    receipt = await stage.inpatient.settle(stay.admission_id, settlement("SET-1", FEES))
    assert (receipt.self_pay_fen, receipt.deposit_used_fen, receipt.surplus_fen) == (FEES, 0, 0)
    cancelled = await stage.inpatient.cancel_settlement(
        stay.admission_id, settlement_reference="SET-1", reference="CANCEL-1"
    )
    assert cancelled.deposit_restored_fen == 0


async def test_a_discharge_registration_is_undone_until_the_stay_is_settled(stage: Stage) -> None:
    stay = await stage.admitted()
    await stage.charge(stay)
    assert await rejected(stage.inpatient.undo_discharge(stay.admission_id, "UNDO-0")) == i.NOT_DISCHARGE_REGISTERED
    await stage.discharged(stay)
    back = await stage.inpatient.undo_discharge(stay.admission_id, "UNDO-1")
    assert back == replace(stay, status=i.ADMITTED)
    assert stay.bed_id not in [x.id for x in await stage.inpatient.free_beds(stay.ward_id)]
    await stage.admin.add_charge(stay.admission_id, ECG, stage.clock.now(), category=i.CHECKUP)

    again = await stage.inpatient.register_discharge(
        stay.admission_id, discharged_at=stage.clock.now(), diagnosis="冠心病", reference="DIS-2"
    )
    assert again.status == i.DISCHARGE_REGISTERED
    await stage.inpatient.settle(stay.admission_id, settlement("SET-1", FEES + 2500))
    assert await rejected(stage.inpatient.undo_discharge(stay.admission_id, "UNDO-2")) == i.ALREADY_SETTLED
    assert await rejected(stage.inpatient.undo_discharge("ZY0", "UNDO-3")) == i.ADMISSION_NOT_FOUND


async def test_a_discharge_is_not_undone_once_its_bed_went_to_another_stay(stage: Stage) -> None:
    ward_id = await stage.ward("1")
    stay = await stage.admitted(ward_id=ward_id)
    await stage.discharged(stay)
    newcomer = await stage.admitted(ward_id=ward_id)
    assert newcomer.bed_id == stay.bed_id
    assert await rejected(stage.inpatient.undo_discharge(stay.admission_id, "UNDO-1")) == i.BED_TAKEN
    assert (await stage.inpatient.admission(stay.admission_id)).status == i.DISCHARGE_REGISTERED


async def test_discharge_and_settlement_refusals(stage: Stage) -> None:
    stay = await stage.admitted(visit="MDTRT-1")
    await stage.charge(stay)
    insured = settlement("SET-1", FEES, fund=FEES, setl_id="SETL-1")
    assert await rejected(stage.inpatient.settle(stay.admission_id, insured)) == i.NOT_DISCHARGE_REGISTERED
    early = stay.admitted_at - timedelta(seconds=1)
    assert (
        await rejected(
            stage.inpatient.register_discharge(stay.admission_id, discharged_at=early, diagnosis="", reference="D-0")
        )
        == i.INVALID_DISCHARGE_TIME
    )
    assert (
        await rejected(
            stage.inpatient.register_discharge("ZY0", discharged_at=stage.clock.now(), diagnosis="", reference="D-1")
        )
        == i.ADMISSION_NOT_FOUND
    )
    await stage.discharged(stay)
    assert (
        await rejected(
            stage.inpatient.register_discharge(
                stay.admission_id, discharged_at=stage.clock.now(), diagnosis="", reference="D-2"
            )
        )
        == i.NOT_ADMITTED
    )
    assert await rejected(stage.inpatient.settle(stay.admission_id, replace(insured, total_fen=FEES + 1))) == (
        i.AMOUNT_MISMATCH
    )
    assert await rejected(stage.inpatient.settle(stay.admission_id, replace(insured, fund_fen=FEES - 1))) == (
        i.AMOUNT_MISMATCH
    )
    negative = replace(insured, fund_fen=FEES + 100, self_pay_fen=-100)
    assert await rejected(stage.inpatient.settle(stay.admission_id, negative)) == i.AMOUNT_MISMATCH
    no_setl_id = replace(insured, insurance_settlement_id="")
    assert await rejected(stage.inpatient.settle(stay.admission_id, no_setl_id)) == i.INSURANCE_MISMATCH
    assert await rejected(stage.inpatient.settle("ZY0", insured)) == i.ADMISSION_NOT_FOUND
    assert (
        await rejected(
            stage.inpatient.cancel_settlement(stay.admission_id, settlement_reference="SET-1", reference="C-0")
        )
        == i.SETTLEMENT_NOT_FOUND
    )
    await stage.inpatient.settle(stay.admission_id, insured)
    assert await rejected(stage.inpatient.settle(stay.admission_id, replace(insured, reference="SET-2"))) == (
        i.ALREADY_SETTLED
    )
    assert (
        await rejected(stage.inpatient.cancel_settlement("ZY0", settlement_reference="SET-1", reference="C-1"))
        == i.ADMISSION_NOT_FOUND
    )

    self_pay = await stage.admitted()
    await stage.discharged(self_pay)
    with_insurance = settlement("SET-3", 0, setl_id="SETL-3")
    assert await rejected(stage.inpatient.settle(self_pay.admission_id, with_insurance)) == i.INSURANCE_MISMATCH
    other = settlement("SET-4", 0)
    # a settlement of one stay is not cancelled through another
    await stage.inpatient.settle(self_pay.admission_id, other)
    assert (
        await rejected(
            stage.inpatient.cancel_settlement(stay.admission_id, settlement_reference="SET-4", reference="C-2")
        )
        == i.SETTLEMENT_NOT_FOUND
    )


# Idempotency and races ----------------------------------------------------------------------------
async def test_every_write_returns_its_first_answer_and_refuses_a_reused_reference(stage: Stage) -> None:
    card = await stage.patient()
    ward_id = await stage.ward()
    code = await stage.notice(card, ward_id)
    bed = (await stage.inpatient.free_beds(ward_id))[0]

    def admit(reference: str, bed_id: str = bed.id) -> Awaitable[i.Admission]:
        return stage.inpatient.admit(
            code,
            his_patient_id=card.his_patient_id,
            bed_id=bed_id,
            admission_type=i.SELF_PAY,
            insurance_visit_id=None,
            reference=reference,
        )

    stay = await admit("ADM-1")
    await stage.top_up(stay, 20000, "DEP-1")
    await stage.charge(stay)
    assert await admit("ADM-1") == stay
    assert await rejected(admit("ADM-1", bed_id="424242")) == i.REFERENCE_REUSED
    assert await rejected(admit("ADM-2")) == i.NOTICE_USED

    at = stage.clock.now()
    out = await stage.inpatient.register_discharge(stay.admission_id, discharged_at=at, diagnosis="好转", reference="D")
    later = stage.clock.now() + timedelta(hours=1)
    stage.clock.advance(hours=1)
    assert (
        await stage.inpatient.register_discharge(
            stay.admission_id, discharged_at=at.astimezone(SHANGHAI), diagnosis="好转", reference="D"
        )
        == out
    )
    assert (
        await rejected(
            stage.inpatient.register_discharge(stay.admission_id, discharged_at=later, diagnosis="好转", reference="D")
        )
        == i.REFERENCE_REUSED
    )
    assert await rejected(stage.inpatient.undo_discharge(stay.admission_id, "ADM-1")) == i.REFERENCE_REUSED

    paid = settlement("SET-1", FEES, deposit_used=FEES, surplus=20000 - FEES)
    receipt = await stage.inpatient.settle(stay.admission_id, paid)
    assert await stage.inpatient.settle(stay.admission_id, paid) == receipt
    assert await rejected(stage.inpatient.settle(stay.admission_id, replace(paid, surplus_fen=0))) == (
        i.REFERENCE_REUSED
    )
    assert await stage.deposit(stay) == 20000 - FEES

    cancelled = await stage.inpatient.cancel_settlement(stay.admission_id, settlement_reference="SET-1", reference="C")
    # the first answers, though the stay moved on since
    assert await stage.inpatient.settle(stay.admission_id, paid) == receipt
    assert (
        await stage.inpatient.cancel_settlement(stay.admission_id, settlement_reference="SET-1", reference="C")
        == cancelled
    )
    assert await stage.deposit(stay) == 20000
    back = await stage.inpatient.undo_discharge(stay.admission_id, "UNDO")
    assert await stage.inpatient.undo_discharge(stay.admission_id, "UNDO") == back
    assert (
        await stage.inpatient.admit(
            code,
            his_patient_id=card.his_patient_id,
            bed_id=bed.id,
            admission_type=i.SELF_PAY,
            insurance_visit_id=None,
            reference="ADM-1",
        )
        == stay
    )


async def test_two_admissions_racing_for_one_bed_one_wins(stage: Stage) -> None:
    for round_ in range(3):
        ward_id = await stage.ward("1")
        bed = (await stage.inpatient.free_beds(ward_id))[0]
        cards = [await stage.patient("甲"), await stage.patient("乙")]
        codes = [await stage.notice(card, ward_id) for card in cards]
        outcomes = await asyncio.gather(
            *(
                stage.inpatient.admit(
                    code,
                    his_patient_id=card.his_patient_id,
                    bed_id=bed.id,
                    admission_type=i.SELF_PAY,
                    insurance_visit_id=None,
                    reference=f"ADM-{round_}-{n}",
                )
                for n, (card, code) in enumerate(zip(cards, codes, strict=True))
            ),
            return_exceptions=True,
        )
        won = [o for o in outcomes if isinstance(o, i.Admission)]
        lost = [o for o in outcomes if isinstance(o, SourceRejected)]
        assert (len(won), [x.code for x in lost]) == (1, [i.BED_TAKEN])
        assert await stage.inpatient.free_beds(ward_id) == []
        loser = cards[1] if won[0].his_patient_id == cards[0].his_patient_id else cards[0]
        assert await stage.inpatient.admissions_of([loser.his_patient_id]) == []


async def test_one_settlement_sent_ten_times_at_once_takes_the_deposit_once(stage: Stage) -> None:
    stay = await stage.admitted()
    await stage.top_up(stay, 20000, "DEP-1")
    await stage.charge(stay)
    await stage.discharged(stay)
    paid = settlement("SET-1", FEES, deposit_used=FEES, surplus=20000 - FEES)
    receipts = await asyncio.gather(*(stage.inpatient.settle(stay.admission_id, paid) for _ in range(10)))
    assert len(set(receipts)) == 1
    assert await stage.deposit(stay) == 20000 - FEES
    others = await asyncio.gather(
        *(stage.inpatient.settle(stay.admission_id, replace(paid, reference=f"SET-{n}")) for n in range(2, 6)),
        return_exceptions=True,
    )
    assert {x.code for x in others if isinstance(x, SourceRejected)} == {i.ALREADY_SETTLED}


# Faults on demand ---------------------------------------------------------------------------------
async def test_a_write_asked_to_fail_fails_once_and_changes_nothing(stage: Stage) -> None:
    card = await stage.patient()
    ward_id = await stage.ward()
    code = await stage.notice(card, ward_id)
    bed = (await stage.inpatient.free_beds(ward_id))[0]
    await stage.admin.fail_next("admit")

    def admit() -> Awaitable[i.Admission]:
        return stage.inpatient.admit(
            code,
            his_patient_id=card.his_patient_id,
            bed_id=bed.id,
            admission_type=i.SELF_PAY,
            insurance_visit_id=None,
            reference="ADM-1",
        )

    with pytest.raises(SourceUnavailable):
        await admit()
    assert await stage.inpatient.admissions_of([card.his_patient_id]) == []
    stay = await admit()
    assert stay.status == i.ADMITTED
    with pytest.raises(ValueError, match="writes"):
        await stage.admin.fail_next("fee_items")


async def test_a_write_whose_answer_is_lost_was_done_and_is_learnt_or_repeated(stage: Stage) -> None:
    stay = await stage.admitted()
    await stage.top_up(stay, 20000, "DEP-1")
    await stage.charge(stay)
    await stage.discharged(stay)
    paid = settlement("SET-1", FEES, deposit_used=FEES, surplus=20000 - FEES)
    await stage.admin.fail_next("settle", after_commit=True)
    with pytest.raises(SourceUnavailable):
        await stage.inpatient.settle(stay.admission_id, paid)
    (learnt,) = await stage.inpatient.settlements_by_references(["SET-1"])
    assert learnt.status == i.IN_FORCE
    assert await stage.inpatient.settle(stay.admission_id, paid) == learnt
    assert await stage.deposit(stay) == 20000 - FEES

    await stage.admin.fail_next("cancel_settlement")
    with pytest.raises(SourceUnavailable):
        await stage.inpatient.cancel_settlement(stay.admission_id, settlement_reference="SET-1", reference="C-1")
    assert (await stage.inpatient.admission(stay.admission_id)).status == i.SETTLED
    await stage.inpatient.cancel_settlement(stay.admission_id, settlement_reference="SET-1", reference="C-1")
    assert await stage.deposit(stay) == 20000


# The wire format ----------------------------------------------------------------------------------
def test_the_writes_are_exactly_the_calls_that_are_never_repeated() -> None:
    writes = {name for name, method in inpatient_wire.METHODS.items() if not method.idempotent}
    assert writes == {
        "admit",
        "convert_to_insurance",
        "register_discharge",
        "undo_discharge",
        "settle",
        "cancel_settlement",
    }
    assert inpatient_wire.IDEMPOTENT <= set(inpatient_wire.METHODS)


def test_a_settlement_crosses_the_wire_unchanged() -> None:
    method = inpatient_wire.METHODS["settle"]
    at = datetime(2026, 11, 23, 9, 10, tzinfo=SHANGHAI)
    paid = replace(settlement("SET-1", 100, deposit_used=40, surplus=60), settled_at=at)
    body = json.loads(json.dumps(wire.encode_arguments(method, {"admission_id": "ZY1", "settlement": paid})))
    assert body["settlement"]["settled_at"] == "2026-11-23T09:10:00+08:00"
    assert wire.decode_arguments(method, body) == {"admission_id": "ZY1", "settlement": paid}


async def test_malformed_requests_get_a_400_and_unknown_methods_a_404(db: Database, clock: FixedClock) -> None:
    live = await LiveServer(his_inpatient_sandbox_app(lambda: SandboxHISInpatient(db, clock))).start()
    try:
        async with httpx.AsyncClient(base_url=live.url + "/his/v1/inpatient/") as http:
            response = await http.post("fee_items", content="{not json")
            assert (response.status_code, response.json()["code"]) == (400, "BAD_REQUEST")
            response = await http.post(
                "register_discharge",
                json={"admission_id": "ZY1", "discharged_at": "2026-11-23T09:10:00", "diagnosis": "", "reference": "R"},
            )
            assert response.status_code == 400
            assert response.json()["message"] == "$.discharged_at: the datetime '2026-11-23T09:10:00' has no UTC offset"
            response = await http.post("discharge_everyone", json={})
            assert (response.status_code, response.json()["code"]) == (404, "UNKNOWN_METHOD")
            response = await http.post("admission", json={"admission_id": "ZY1"})
            assert (response.status_code, response.json()["code"]) == (200, i.ADMISSION_NOT_FOUND)
    finally:
        await live.stop()


async def test_one_gateway_serves_the_his_api_its_billing_and_its_inpatients(db: Database, clock: FixedClock) -> None:
    his, billing, inpatient = SandboxHIS(db, clock), SandboxHISBilling(db, clock), SandboxHISInpatient(db, clock)
    live = await LiveServer(his_hospital_gateway_sandbox_app(lambda: his, lambda: billing, lambda: inpatient)).start()
    client = HttpHISInpatient(live.url, timeout=5)
    try:
        async with httpx.AsyncClient(base_url=live.url) as http:
            assert (await http.post("/his/v1/campuses", json={})).json() == {"code": "0", "data": []}
            ledger = await http.post("/his/v1/billing/ledger", json={"day": "2026-11-23"})
            assert ledger.json() == {"code": "0", "data": []}
        assert await client.admissions_of(["1"]) == []
    finally:
        await client.aclose()
        await live.stop()


async def test_a_failed_write_over_http_is_a_503_and_never_repeated(db: Database, clock: FixedClock) -> None:
    sandbox, admin = SandboxHISInpatient(db, clock), SandboxHISInpatientAdmin(db)
    live = await LiveServer(his_inpatient_sandbox_app(lambda: sandbox)).start()
    try:
        await admin.fail_next("undo_discharge")
        await admin.fail_next("undo_discharge")
        async with httpx.AsyncClient(base_url=live.url + "/his/v1/inpatient/") as http:
            response = await http.post("undo_discharge", json={"admission_id": "ZY1", "reference": "U-1"})
            assert (response.status_code, response.json()["code"]) == (503, wire.UNAVAILABLE)
        client = HttpHISInpatient(live.url, timeout=5, retries=3)
        try:
            with pytest.raises(SourceUnavailable):
                await client.undo_discharge("ZY1", "U-1")
            # each attempt would have consumed a fault: the second is the only one, so none was left
            assert await rejected(client.undo_discharge("ZY1", "U-1")) == i.ADMISSION_NOT_FOUND
        finally:
            await client.aclose()
    finally:
        await live.stop()


async def test_a_demo_day_charges_the_bed_at_its_own_fee_and_the_usual_care(stage: Stage) -> None:
    stay = await stage.admitted(
        ward_id=await stage.admin.add_ward("心内科二病区", stage.hospital.department_id, ["5"], daily_fee_fen=7000)
    )
    lines = await stage.admin.add_demo_day(stay.admission_id, stage.clock.now())
    fees = await stage.inpatient.fee_items(stay.admission_id)
    assert [x.id for x in fees.items] == lines
    assert [(x.category, x.amount_fen) for x in fees.items] == [
        (i.BED, 7000),
        (i.NURSING, 2800),
        (i.WESTERN_MEDICINE, 700),
        (i.LABORATORY, 2000),
    ]
    assert fees.total_fen == 12500
    with pytest.raises(ValueError, match="no stay"):
        await stage.admin.charge_bed_day("ZY0", stage.clock.now())


async def test_a_settlement_is_on_the_billing_ledger_and_its_self_paid_part_refunded_there(stage: Stage) -> None:
    stay = await stage.admitted()
    await stage.top_up(stay, 3000, "DEP-1")
    await stage.charge(stay)
    await stage.discharged(stay)
    no_channel = replace(settlement("SET-0", FEES, deposit_used=3000), self_pay_channel="")
    assert await rejected(stage.inpatient.settle(stay.admission_id, no_channel)) == i.AMOUNT_MISMATCH
    receipt = await stage.inpatient.settle(stay.admission_id, settlement("SET-1", FEES, deposit_used=3000))
    ledger = await stage.billing.ledger(date(2026, 11, 23))
    assert [(e.kind, e.reference, e.channel, e.amount_fen, e.self_pay_fen) for e in ledger] == [
        ("PAYMENT", "DEP-1", b.WECHAT_PAY, 3000, 3000),
        ("PAYMENT", "SET-1", b.WECHAT_PAY, FEES, FEES - 3000),
    ]
    assert ledger[1].receipt_no == receipt.receipt_no
    assert ledger[1].channel_trade_no == "42000SET-1"

    # the flow's compensation: the HIS settlement cancelled, the channel refunded, the refund written back
    await stage.inpatient.cancel_settlement(stay.admission_id, settlement_reference="SET-1", reference="C-1")
    back = b.RefundRecord("RF-1", "SET-1", FEES - 3000, FEES - 3000, 0, "出院结算撤销")
    await stage.billing.refund(back)
    assert [(e.kind, e.reference, e.self_pay_fen) for e in await stage.billing.ledger(date(2026, 11, 23))][-1] == (
        "REFUND",
        "RF-1",
        FEES - 3000,
    )
    assert await stage.deposit(stay) == 3000

    # a reference the billing ledger already holds is not a settlement's
    reused = settlement("DEP-1", FEES, deposit_used=3000)
    assert await rejected(stage.inpatient.settle(stay.admission_id, reused)) == i.REFERENCE_REUSED


async def test_one_notice_scanned_twice_at_once_admits_one_stay(stage: Stage) -> None:
    card = await stage.patient()
    ward_id = await stage.ward()
    code = await stage.notice(card, ward_id)
    beds = await stage.inpatient.free_beds(ward_id)
    outcomes = await asyncio.gather(
        *(
            stage.inpatient.admit(
                code,
                his_patient_id=card.his_patient_id,
                bed_id=bed.id,
                admission_type=i.SELF_PAY,
                insurance_visit_id=None,
                reference=f"ADM-{bed.bed_no}",
            )
            for bed in beds
        ),
        return_exceptions=True,
    )
    won = [o for o in outcomes if isinstance(o, i.Admission)]
    assert len(won) == 1
    assert {o.code for o in outcomes if isinstance(o, SourceRejected)} == {i.NOTICE_USED}
    assert len(await stage.inpatient.free_beds(ward_id)) == len(beds) - 1


async def test_a_read_that_fails_is_asked_again(db: Database, clock: FixedClock) -> None:
    served = his_inpatient_sandbox_app(lambda: SandboxHISInpatient(db, clock))
    attempts: list[str] = []

    async def first_attempt_fails(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            attempts.append(scope["path"])
            if len(attempts) == 1:
                await JSONResponse(wire.rejection(wire.UNAVAILABLE, "busy"), status_code=503)(scope, receive, send)
                return
        await served(scope, receive, send)

    live = await LiveServer(first_attempt_fails).start()  # type: ignore[arg-type]
    client = HttpHISInpatient(live.url, timeout=5, backoff_seconds=0)
    try:
        assert await client.admissions_of(["1"]) == []
        assert len(attempts) == 2
    finally:
        await client.aclose()
        await live.stop()
