"""The national insurance platform's settlement, as one suite run against the sandbox in-process and
``HttpInsurancePlatform`` over real HTTP to the served sandbox (the fixtures of
test_insurance_contract.py): outpatient 2203-2208, inpatient 2401-2405 and 2301-2305, the
reconciliation 3201/3202, 5301, and 2601 reversing a settlement whose answer was lost.

Every amount is checked to the fen against ``RULES``: class A wholly in scope, class B with 10 %
paid first, class C own pay; outpatient 10.00 deductible and 70 % pooled fund, inpatient 800.00 and
90 %; then the personal account, then the family account, then cash.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from sqlmodel import col

from datasources.clock import FixedClock
from datasources.errors import SourceRejected
from datasources.insurance import codec, wire
from datasources.insurance import contract as c
from datasources.insurance.http import HttpInsurancePlatform
from datasources.insurance.rules import CareRules, SettlementRules
from datasources.insurance.sandbox import InsurancePlatformSandbox, InsuranceSandboxAdmin, SandboxInsurancePlatform
from datasources.insurance.served import insurance_platform_app
from datasources.insurance.tables import InsurSettlement
from datasources.store.db import Database
from tests.conftest import LiveServer
from tests.datasources.test_insurance_contract import (
    CERTNO,
    HOSPITAL,
    IMPLEMENTATIONS,
    Interposer,
    Stage,
    envelope,
    rejected,
)

CONSULTATION = "001102000010000-110200001"  # class A
STATIN = "XC10AAA052A001010100873"  # class B
SYRUP = "XR05XXP011B001010101476"  # class C
BED = "001201000010000-120100001"  # class B
RULES = SettlementRules(
    catalogue={CONSULTATION: c.CLASS_A, STATIN: c.CLASS_B, SYRUP: c.CLASS_C, BED: c.CLASS_B},
    b_selfpay_prop=Decimal("0.10"),
    outpatient=CareRules(deductible_fen=1_000, fund_ratio=Decimal("0.70")),
    inpatient=CareRules(deductible_fen=80_000, fund_ratio=Decimal("0.90")),
    family_account=True,
)
AREA = "440300"


class Desk(Stage):
    """The stage, with the hospital's side of a settlement written out once."""

    def line(self, sn: str, code: str, cnt: str, pric_fen: int) -> c.FeeLine:
        amount = int(Decimal(cnt) * pric_fen)
        return c.FeeLine(
            feedetl_sn=sn, fee_ocur_time=self.clock.now().replace(microsecond=0), med_list_codg=code,
            medins_list_codg=f"H-{code[:8]}", cnt=Decimal(cnt), pric_fen=pric_fen, det_item_fee_sumamt_fen=amount,
            bilg_dept_codg="0301", bilg_dept_name="心内科门诊", bilg_dr_codg="D440300000001", bilg_dr_name="张医生",
        )

    def outpatient_lines(self) -> tuple[c.FeeLine, ...]:
        # 25.00 (A) + 3 × 12.35 = 37.05 (B) + 2 × 18.50 = 37.00 (C) = 99.05
        return (self.line("1", CONSULTATION, "1", 2_500), self.line("2", STATIN, "3", 1_235),
                self.line("3", SYRUP, "2", 1_850))

    def upload(self, visit: c.Visit, lines: tuple[c.FeeLine, ...], batch: str = "B001") -> c.FeeUpload:
        return c.FeeUpload(mdtrt_id=visit.mdtrt_id, psn_no=visit.psn_no, insuplc_admdvs=AREA, lines=lines,
                           chrg_bchno=batch)

    def bill(self, visit: c.Visit, total_fen: int, batch: str = "B001", *, med_type: str = "11") -> c.SettlementRequest:
        return c.SettlementRequest(
            mdtrt_id=visit.mdtrt_id, psn_no=visit.psn_no, insutype="310", insuplc_admdvs=AREA, med_type=med_type,
            mdtrt_cert_type=c.CERT_RESIDENT_ID, mdtrt_cert_no=CERTNO, medfee_sumamt_fen=total_fen, chrg_bchno=batch,
        )

    def diagnosis(self) -> c.Diagnosis:
        return c.Diagnosis(
            diag_type="1", diag_srt_no=1, diag_code="I10.x00", diag_name="原发性高血压", diag_dept="心内科",
            dise_dor_no="D440300000001", dise_dor_name="张医生", diag_time=self.clock.now().replace(microsecond=0),
        )

    async def registered(self, personal_fen: int = 100_000, family_fen: int = 0) -> c.Visit:
        psn_no = await self.insured(t310=personal_fen)
        await self.admin.set_family_account(psn_no, "310", family_fen)
        await self.platform.sign_in("0101", "00-1A-2B-3C-4D-5E", "10.0.0.8")
        visit = await self.platform.register(self.visit(psn_no))
        await self.platform.upload_visit_info(c.VisitInfo(
            mdtrt_id=visit.mdtrt_id, psn_no=psn_no, insuplc_admdvs=AREA, med_type="11",
            begntime=self.clock.now().replace(microsecond=0), main_cond_dscr="头晕三天", dise_codg="I10.x00",
            dise_name="原发性高血压", diagnoses=(self.diagnosis(),),
        ))
        return visit

    async def settled(self, visit: c.Visit, lines: tuple[c.FeeLine, ...], batch: str = "B001") -> c.Settlement:
        await self.platform.upload_fees(self.upload(visit, lines, batch))
        total = sum(line.det_item_fee_sumamt_fen for line in lines)
        await self.platform.pre_settle(self.bill(visit, total, batch))
        return await self.platform.settle(self.bill(visit, total, batch))

    def admission(self, psn_no: str) -> c.AdmissionRequest:
        return c.AdmissionRequest(
            psn_no=psn_no, insutype="310", insuplc_admdvs=AREA, med_type="21",
            begntime=self.clock.now().replace(microsecond=0), mdtrt_cert_type=c.CERT_RESIDENT_ID,
            mdtrt_cert_no=CERTNO, ipt_no="ZY0001", medrcdno="BA0001", atddr_no="D440300000002", chfpdr_name="李主任",
            adm_diag_dscr="胸痛待查", adm_dept_codg="0302", adm_dept_name="心内科病区", adm_bed="12",
            dscg_maindiag_code="I20.000", dscg_maindiag_name="不稳定型心绞痛", diagnoses=(self.diagnosis(),),
        )


@pytest.fixture(params=IMPLEMENTATIONS)
async def desk(request: pytest.FixtureRequest, db: Database, clock: FixedClock) -> AsyncIterator[Desk]:
    sandbox = InsurancePlatformSandbox(db, clock)
    admin = InsuranceSandboxAdmin(db)
    await admin.set_rules(RULES, "310")
    msgids = wire.MsgIds(HOSPITAL.fixmedins_code, clock)
    if request.param == "sandbox_in_process":
        yield Desk(SandboxInsurancePlatform(sandbox, HOSPITAL, clock, msgids), sandbox, admin, clock, msgids)
        return
    live = await LiveServer(insurance_platform_app(lambda: sandbox, clock)).start()
    client = HttpInsurancePlatform(live.url, HOSPITAL, clock, msgids, timeout=5)
    try:
        yield Desk(client, sandbox, admin, clock, msgids)
    finally:
        await client.aclose()
        await live.stop()


# Outpatient (2203-2208) ------------------------------------------------------------------------------
async def test_fee_lines_are_classified_a_b_c_by_the_catalogue(desk: Desk) -> None:
    visit = await desk.registered()
    classes = await desk.platform.upload_fees(desk.upload(visit, desk.outpatient_lines()))
    assert [(k.feedetl_sn, k.chrgitm_lv, k.fulamt_ownpay_amt_fen, k.preselfpay_amt_fen, k.inscp_scp_amt_fen)
            for k in classes] == [
        ("1", c.CLASS_A, 0, 0, 2_500),
        ("2", c.CLASS_B, 0, 371, 3_334),  # 10 % of 37.05 is 3.705, rounded half up
        ("3", c.CLASS_C, 3_700, 0, 0),
    ]
    assert [k.selfpay_prop for k in classes] == [Decimal("0"), Decimal("0.10"), Decimal("1")]


async def test_outpatient_visit_is_settled_by_the_rules_and_the_cancel_gives_the_account_back(desk: Desk) -> None:
    visit = await desk.registered(personal_fen=100_000)
    await desk.platform.upload_fees(desk.upload(visit, desk.outpatient_lines()))
    pre = await desk.platform.pre_settle(desk.bill(visit, 9_905))
    # In scope 25.00 + 33.34 = 58.34; less the 10.00 deductible, 70 % = 33.838 → 33.83 from the fund.
    assert (pre.setl_id, pre.medfee_sumamt_fen, pre.fulamt_ownpay_amt_fen, pre.preselfpay_amt_fen) == ("", 9_905, 3_700, 371)
    assert (pre.inscp_scp_amt_fen, pre.act_pay_dedc_fen, pre.hifp_pay_fen, pre.fund_pay_sumamt_fen) == (5_834, 1_000, 3_383, 3_383)
    assert (pre.psn_part_amt_fen, pre.acct_pay_fen, pre.acct_mulaid_pay_fen, pre.psn_cash_pay_fen) == (6_522, 6_522, 0, 0)
    assert pre.balc_fen == 100_000 and await desk.admin.balances(visit.psn_no, "310") == (100_000, 0)

    settled = await desk.platform.settle(desk.bill(visit, 9_905))
    assert settled.setl_id and len(settled.msgid) == 30 and settled.clr_type == c.CLR_OUTPATIENT
    assert (settled.hifp_pay_fen, settled.acct_pay_fen, settled.psn_cash_pay_fen, settled.balc_fen) == (
        3_383, 6_522, 0, 93_478
    )
    assert await desk.admin.balances(visit.psn_no, "310") == (93_478, 0)

    cancel = await desk.platform.cancel_settlement(
        psn_no=visit.psn_no, mdtrt_id=visit.mdtrt_id, setl_id=settled.setl_id, insuplc_admdvs=AREA
    )
    assert cancel.setl_id not in ("", settled.setl_id)
    assert (cancel.medfee_sumamt_fen, cancel.hifp_pay_fen, cancel.acct_pay_fen, cancel.balc_fen) == (
        -9_905, -3_383, -6_522, 100_000
    )
    assert await desk.admin.balances(visit.psn_no, "310") == (100_000, 0)
    again = desk.platform.cancel_settlement(
        psn_no=visit.psn_no, mdtrt_id=visit.mdtrt_id, setl_id=settled.setl_id, insuplc_admdvs=AREA
    )
    assert await rejected(again) == c.ALREADY_CANCELLED
    unknown = desk.platform.cancel_settlement(
        psn_no=visit.psn_no, mdtrt_id=visit.mdtrt_id, setl_id="440300000000", insuplc_admdvs=AREA
    )
    assert await rejected(unknown) == c.SETTLEMENT_NOT_FOUND
    assert await desk.admin.balances(visit.psn_no, "310") == (100_000, 0)


async def test_settling_without_a_pre_settlement_is_refused_and_moves_nothing(desk: Desk) -> None:
    visit = await desk.registered(personal_fen=100_000)
    await desk.platform.upload_fees(desk.upload(visit, desk.outpatient_lines()))
    assert await rejected(desk.platform.settle(desk.bill(visit, 9_905))) == c.PRE_SETTLEMENT_REQUIRED
    assert await desk.admin.balances(visit.psn_no, "310") == (100_000, 0)


async def test_fees_changed_after_the_pre_settlement_refuse_the_settlement_until_pre_settled_again(desk: Desk) -> None:
    visit = await desk.registered(personal_fen=100_000)
    await desk.platform.upload_fees(desk.upload(visit, desk.outpatient_lines()[:2]))
    await desk.platform.pre_settle(desk.bill(visit, 6_205))
    await desk.platform.upload_fees(desk.upload(visit, desk.outpatient_lines()[2:]))
    assert await rejected(desk.platform.settle(desk.bill(visit, 9_905))) == c.PRE_SETTLEMENT_REQUIRED
    assert await rejected(desk.platform.settle(desk.bill(visit, 6_205))) == c.AMOUNT_MISMATCH
    # The same lines cancelled and uploaded again are other lines: the pre-settlement no longer holds.
    await desk.platform.pre_settle(desk.bill(visit, 9_905))
    await desk.platform.cancel_fees(psn_no=visit.psn_no, mdtrt_id=visit.mdtrt_id, chrg_bchno="B001",
                                    insuplc_admdvs=AREA)
    await desk.platform.upload_fees(desk.upload(visit, desk.outpatient_lines()))
    assert await rejected(desk.platform.settle(desk.bill(visit, 9_905))) == c.PRE_SETTLEMENT_REQUIRED
    await desk.platform.pre_settle(desk.bill(visit, 9_905))
    assert (await desk.platform.settle(desk.bill(visit, 9_905))).acct_pay_fen == 6_522
    assert await rejected(desk.platform.settle(desk.bill(visit, 9_905))) == c.ALREADY_SETTLED


async def test_a_short_balance_pays_what_it_holds_then_the_family_account_then_cash(desk: Desk) -> None:
    visit = await desk.registered(personal_fen=2_000, family_fen=1_500)
    settled = await desk.settled(visit, desk.outpatient_lines())
    assert (settled.hifp_pay_fen, settled.acct_pay_fen, settled.acct_mulaid_pay_fen, settled.psn_cash_pay_fen) == (
        3_383, 2_000, 1_500, 3_022
    )
    assert settled.balc_fen == 0 and await desk.admin.balances(visit.psn_no, "310") == (0, 0)
    await desk.platform.cancel_settlement(
        psn_no=visit.psn_no, mdtrt_id=visit.mdtrt_id, setl_id=settled.setl_id, insuplc_admdvs=AREA
    )
    assert await desk.admin.balances(visit.psn_no, "310") == (2_000, 1_500)


async def test_without_the_account_flag_everything_not_funded_is_cash(desk: Desk) -> None:
    visit = await desk.registered(personal_fen=100_000)
    await desk.platform.upload_fees(desk.upload(visit, desk.outpatient_lines()))
    pre = await desk.platform.pre_settle(replace(desk.bill(visit, 9_905), acct_used_flag=False))
    assert (pre.acct_pay_fen, pre.psn_cash_pay_fen) == (0, 6_522)


async def test_fee_uploads_refuse_unknown_codes_wrong_amounts_and_repeated_line_numbers(desk: Desk) -> None:
    visit = await desk.registered()
    unknown = desk.line("9", "XX0000000000", "1", 100)
    assert await rejected(desk.platform.upload_fees(desk.upload(visit, (unknown,)))) == c.LIST_ITEM_UNKNOWN
    wrong = replace(desk.line("9", CONSULTATION, "2", 100), det_item_fee_sumamt_fen=201)
    assert await rejected(desk.platform.upload_fees(desk.upload(visit, (wrong,)))) == c.AMOUNT_MISMATCH
    await desk.platform.upload_fees(desk.upload(visit, desk.outpatient_lines()))
    again = desk.platform.upload_fees(desk.upload(visit, desk.outpatient_lines()[:1], "B002"))
    assert await rejected(again) == c.DUPLICATE_FEE
    # Nothing of the refused uploads exists: the batch holds exactly the three lines.
    pre = await desk.platform.pre_settle(desk.bill(visit, 9_905))
    assert pre.medfee_sumamt_fen == 9_905


async def test_settled_fees_cannot_be_cancelled_and_a_settled_visit_not_unregistered(desk: Desk) -> None:
    visit = await desk.registered()
    await desk.settled(visit, desk.outpatient_lines())
    cancel = desk.platform.cancel_fees(psn_no=visit.psn_no, mdtrt_id=visit.mdtrt_id, chrg_bchno="B001",
                                       insuplc_admdvs=AREA)
    assert await rejected(cancel) == c.FEES_SETTLED
    unregister = desk.platform.cancel_registration(
        psn_no=visit.psn_no, mdtrt_id=visit.mdtrt_id, ipt_otp_no="MZ0001", insuplc_admdvs=AREA
    )
    assert await rejected(unregister) == c.ALREADY_SETTLED
    nothing = desk.platform.cancel_fees(psn_no=visit.psn_no, mdtrt_id=visit.mdtrt_id, chrg_bchno="B404",
                                        insuplc_admdvs=AREA)
    assert await rejected(nothing) == c.FEES_NOT_FOUND


async def test_reversing_a_settlement_gives_the_account_back_and_frees_the_fees(desk: Desk) -> None:
    visit = await desk.registered(personal_fen=100_000)
    settled = await desk.settled(visit, desk.outpatient_lines())
    await desk.platform.reverse(psn_no=visit.psn_no, omsgid=settled.msgid, oinfno=c.SETTLE, insuplc_admdvs=AREA)
    assert await desk.admin.balances(visit.psn_no, "310") == (100_000, 0)
    cancel = desk.platform.cancel_settlement(
        psn_no=visit.psn_no, mdtrt_id=visit.mdtrt_id, setl_id=settled.setl_id, insuplc_admdvs=AREA
    )
    assert await rejected(cancel) == c.SETTLEMENT_NOT_FOUND  # a reversed settlement never was
    await desk.platform.pre_settle(desk.bill(visit, 9_905))
    assert (await desk.platform.settle(desk.bill(visit, 9_905))).balc_fen == 93_478


async def test_reversing_a_settlement_cancel_settles_again(desk: Desk) -> None:
    visit = await desk.registered(personal_fen=100_000)
    settled = await desk.settled(visit, desk.outpatient_lines())
    cancel = await desk.platform.cancel_settlement(
        psn_no=visit.psn_no, mdtrt_id=visit.mdtrt_id, setl_id=settled.setl_id, insuplc_admdvs=AREA
    )
    await desk.platform.reverse(psn_no=visit.psn_no, omsgid=cancel.msgid, oinfno=c.CANCEL_SETTLEMENT,
                                insuplc_admdvs=AREA)
    assert await desk.admin.balances(visit.psn_no, "310") == (93_478, 0)
    again = await desk.platform.cancel_settlement(
        psn_no=visit.psn_no, mdtrt_id=visit.mdtrt_id, setl_id=settled.setl_id, insuplc_admdvs=AREA
    )
    assert again.acct_pay_fen == -6_522
    assert await desk.admin.balances(visit.psn_no, "310") == (100_000, 0)


# Inpatient (2401-2405, 2301-2305) ----------------------------------------------------------------------
async def test_inpatient_stay_is_admitted_billed_discharged_settled_and_cancelled(desk: Desk) -> None:
    psn_no = await desk.insured(t310=50_000)
    await desk.admin.set_family_account(psn_no, "310", 10_000)
    await desk.platform.sign_in("0101", "00-1A-2B-3C-4D-5E", "10.0.0.8")
    stay = await desk.platform.admit(desk.admission(psn_no))
    assert (stay.psn_no, stay.ipt_otp_no) == (psn_no, "ZY0001") and stay.mdtrt_id
    assert await rejected(desk.platform.admit(desk.admission(psn_no))) == c.ALREADY_ADMITTED
    await desk.platform.change_admission(stay.mdtrt_id, desk.admission(psn_no))
    # 5 days' bed at 80.00 (B), 1200.00 of consultations (A), 20 × 2.50 = 50.00 (A): 1650.00.
    lines = (desk.line("1", BED, "5", 8_000), desk.line("2", CONSULTATION, "1", 120_000),
             desk.line("3", CONSULTATION, "20", 250))
    upload = c.FeeUpload(mdtrt_id=stay.mdtrt_id, psn_no=psn_no, insuplc_admdvs=AREA, lines=lines, med_type="21")
    classes = await desk.platform.upload_inpatient_fees(upload)
    assert [k.inscp_scp_amt_fen for k in classes] == [36_000, 120_000, 5_000]
    bill = c.SettlementRequest(
        mdtrt_id=stay.mdtrt_id, psn_no=psn_no, insutype="310", insuplc_admdvs=AREA, med_type="21",
        mdtrt_cert_type=c.CERT_RESIDENT_ID, mdtrt_cert_no=CERTNO, medfee_sumamt_fen=165_000,
    )
    pre = await desk.platform.pre_settle_inpatient(bill)
    # In scope 1610.00, less the 800.00 deductible, 90 % = 729.00 from the fund; the person's 921.00 is
    # 500.00 from the personal account, 100.00 from the family account and 321.00 cash.
    assert (pre.inscp_scp_amt_fen, pre.act_pay_dedc_fen, pre.hifp_pay_fen) == (161_000, 80_000, 72_900)
    assert (pre.acct_pay_fen, pre.acct_mulaid_pay_fen, pre.psn_cash_pay_fen) == (50_000, 10_000, 32_100)
    assert await rejected(desk.platform.settle_inpatient(bill)) == c.NOT_DISCHARGED
    await desk.platform.discharge(c.DischargeRequest(
        mdtrt_id=stay.mdtrt_id, psn_no=psn_no, insutype="310", insuplc_admdvs=AREA,
        endtime=desk.clock.now().replace(microsecond=0), dise_codg="I20.000", dise_name="不稳定型心绞痛",
        dscg_way="1", dscg_dept_codg="0302", dscg_dept_name="心内科病区",
    ))
    settled = await desk.platform.settle_inpatient(bill)
    assert (settled.clr_type, settled.hifp_pay_fen, settled.acct_pay_fen, settled.psn_cash_pay_fen) == (
        c.CLR_INPATIENT, 72_900, 50_000, 32_100
    )
    assert await desk.admin.balances(psn_no, "310") == (0, 0)
    undischarge = desk.platform.cancel_discharge(psn_no=psn_no, mdtrt_id=stay.mdtrt_id, insuplc_admdvs=AREA)
    assert await rejected(undischarge) == c.ALREADY_SETTLED
    outpatient_cancel = desk.platform.cancel_settlement(
        psn_no=psn_no, mdtrt_id=stay.mdtrt_id, setl_id=settled.setl_id, insuplc_admdvs=AREA
    )
    assert await rejected(outpatient_cancel) == c.WRONG_VISIT_KIND
    cancel = await desk.platform.cancel_inpatient_settlement(
        psn_no=psn_no, mdtrt_id=stay.mdtrt_id, setl_id=settled.setl_id, insuplc_admdvs=AREA
    )
    assert cancel.medfee_sumamt_fen == -165_000
    assert await desk.admin.balances(psn_no, "310") == (50_000, 10_000)

    # Back in hospital, the stay can be unwound: fees first, then the admission.
    await desk.platform.cancel_discharge(psn_no=psn_no, mdtrt_id=stay.mdtrt_id, insuplc_admdvs=AREA)
    cancel_stay = desk.platform.cancel_admission(psn_no=psn_no, mdtrt_id=stay.mdtrt_id, insuplc_admdvs=AREA)
    assert await rejected(cancel_stay) == c.VISIT_HAS_FEES
    await desk.platform.cancel_inpatient_fees(psn_no=psn_no, mdtrt_id=stay.mdtrt_id, feedetl_sn=c.ALL_FEES,
                                              insuplc_admdvs=AREA)
    await desk.platform.cancel_admission(psn_no=psn_no, mdtrt_id=stay.mdtrt_id, insuplc_admdvs=AREA)
    assert await rejected(desk.platform.upload_inpatient_fees(upload)) == c.ALREADY_CANCELLED


# Reconciliation (3201, 3202) ------------------------------------------------------------------------
def totals(medfee: int, fund: int, acct: int, count: int) -> c.ReconciliationTotals:
    day = date(2026, 11, 23)  # the tests' clock stands on Monday 23 November 2026
    return c.ReconciliationTotals(
        insutype="310", clr_type=c.CLR_OUTPATIENT, setl_optins=AREA, stmt_begndate=day, stmt_enddate=day,
        medfee_sumamt_fen=medfee, fund_pay_sumamt_fen=fund, acct_pay_fen=acct, fixmedins_setl_cnt=count,
    )


async def test_totals_match_the_platform_or_are_answered_as_a_mismatch(desk: Desk) -> None:
    visit = await desk.registered(personal_fen=100_000)
    settled = await desk.settled(visit, desk.outpatient_lines())
    match = await desk.platform.reconcile_totals(totals(9_905, 3_383, 6_522, 1))
    assert match.stmt_rslt == c.STMT_MATCH
    mismatch = await desk.platform.reconcile_totals(totals(9_905, 3_383, 6_500, 1))
    assert mismatch.stmt_rslt == c.STMT_MISMATCH and "acct_pay" in mismatch.stmt_rslt_dscr
    assert (await desk.platform.reconcile_totals(totals(9_905, 3_383, 6_522, 2))).stmt_rslt == c.STMT_MISMATCH
    # A cancelled settlement counts for nothing.
    await desk.platform.cancel_settlement(
        psn_no=visit.psn_no, mdtrt_id=visit.mdtrt_id, setl_id=settled.setl_id, insuplc_admdvs=AREA
    )
    assert (await desk.platform.reconcile_totals(totals(0, 0, 0, 0))).stmt_rslt == c.STMT_MATCH


async def test_detail_reconciliation_names_the_settlements_that_differ(desk: Desk) -> None:
    visit = await desk.registered(personal_fen=100_000)
    first = await desk.settled(visit, desk.outpatient_lines()[:1], "B001")
    second = await desk.settled(visit, desk.outpatient_lines()[1:], "B002")

    def entry(s: c.Settlement, acct_fen: int | None = None) -> c.SettlementEntry:
        return c.SettlementEntry(s.setl_id, s.mdtrt_id, s.psn_no, s.medfee_sumamt_fen, s.fund_pay_sumamt_fen,
                                 s.acct_pay_fen if acct_fen is None else acct_fen)

    whole = totals(9_905, first.hifp_pay_fen + second.hifp_pay_fen, first.acct_pay_fen + second.acct_pay_fen, 2)
    assert await desk.platform.reconcile_details(whole, (entry(first), entry(second))) == ()
    ghost = c.SettlementEntry("440300999", visit.mdtrt_id, visit.psn_no, 100, 0, 100)
    differences = await desk.platform.reconcile_details(whole, (entry(first), entry(second, 1), ghost))
    assert {(d.setl_id, d.stmt_rslt) for d in differences} == {
        (second.setl_id, c.AMOUNTS_DIFFER), ("440300999", c.ONLY_HOSPITAL)
    }
    only_first = await desk.platform.reconcile_details(whole, (entry(first),))
    assert [(d.setl_id, d.stmt_rslt) for d in only_first] == [(second.setl_id, c.ONLY_PLATFORM)]


# Chronic and special diseases (5301) --------------------------------------------------------------------
async def test_the_persons_filed_chronic_diseases_are_listed(desk: Desk) -> None:
    psn_no = await desk.insured(t310=100)
    await desk.admin.add_chronic_disease(psn_no, "M03900", "高血压", date(2024, 1, 1))
    await desk.admin.add_chronic_disease(psn_no, "M01600", "糖尿病", date(2023, 6, 1), date(2025, 5, 31))
    await desk.platform.sign_in("0101", "00-1A-2B-3C-4D-5E", "10.0.0.8")
    assert await desk.platform.chronic_diseases(psn_no=psn_no, insuplc_admdvs=AREA) == (
        c.ChronicDisease("M01600", "糖尿病", date(2023, 6, 1), date(2025, 5, 31)),
        c.ChronicDisease("M03900", "高血压", date(2024, 1, 1), None),
    )
    unknown = desk.platform.chronic_diseases(psn_no="440300000", insuplc_admdvs=AREA)
    assert await rejected(unknown) == c.PERSON_NOT_FOUND


# A settlement whose answer was lost (HTTP only) -------------------------------------------------------
async def http_desk(
    db: Database, clock: FixedClock, *, wait_seconds: float, **interpose: Any
) -> tuple[Desk, HttpInsurancePlatform, LiveServer, Interposer]:
    """The HTTP client behind an ``Interposer`` that loses or refuses some answers, with RULES."""
    interposer = Interposer(insurance_platform_app(lambda: InsurancePlatformSandbox(db, clock), clock), **interpose)
    live = await LiveServer(interposer).start()  # type: ignore[arg-type]
    msgids = wire.MsgIds(HOSPITAL.fixmedins_code, clock)
    client = HttpInsurancePlatform(live.url, HOSPITAL, clock, msgids, timeout=wait_seconds, retries=2, backoff_seconds=0.01)
    admin = InsuranceSandboxAdmin(db)
    await admin.set_rules(RULES, "310")
    return Desk(client, InsurancePlatformSandbox(db, clock), admin, clock, msgids), client, live, interposer


async def test_a_settlement_whose_answer_is_lost_is_reversed_and_the_account_restored(
    db: Database, clock: FixedClock
) -> None:
    # The answer comes 3 s late to a client that waits 1 s (generous: a loaded database stays well within it).
    stage, client, live, interposer = await http_desk(db, clock, wait_seconds=1.0, slow=(c.SETTLE,), delay=3.0)
    admin = stage.admin
    try:
        visit = await stage.registered(personal_fen=100_000)
        await client.upload_fees(stage.upload(visit, stage.outpatient_lines()))
        await client.pre_settle(stage.bill(visit, 9_905))
        with pytest.raises(c.OutcomeUnknown) as caught:
            await client.settle(stage.bill(visit, 9_905))
        assert (caught.value.infno, interposer.seen[c.SETTLE]) == (c.SETTLE, 1)  # a settlement is never resent
        assert await admin.balances(visit.psn_no, "310") == (93_478, 0)  # it did happen

        await client.reverse(psn_no=visit.psn_no, omsgid=caught.value.msgid, oinfno=c.SETTLE, insuplc_admdvs=AREA)
        assert await admin.balances(visit.psn_no, "310") == (100_000, 0)
        async with db.reading() as s:
            made = (await s.execute(
                select(InsurSettlement).where(col(InsurSettlement.msgid) == caught.value.msgid)
            )).scalar_one()
        assert made.status == "REVERSED"
        assert (await client.reconcile_totals(totals(0, 0, 0, 0))).stmt_rslt == c.STMT_MATCH
    finally:
        await client.aclose()
        await live.stop()


async def test_a_settlement_that_never_arrived_cannot_be_reversed(db: Database, clock: FixedClock) -> None:
    stage, client, live, _ = await http_desk(db, clock, wait_seconds=10.0, fail_first=(c.SETTLE,))
    admin = stage.admin
    try:
        visit = await stage.registered(personal_fen=100_000)
        await client.upload_fees(stage.upload(visit, stage.outpatient_lines()))
        await client.pre_settle(stage.bill(visit, 9_905))
        with pytest.raises(c.OutcomeUnknown) as caught:
            await client.settle(stage.bill(visit, 9_905))
        never = client.reverse(psn_no=visit.psn_no, omsgid=caught.value.msgid, oinfno=c.SETTLE, insuplc_admdvs=AREA)
        assert await rejected(never) == c.REVERSAL_TARGET_UNKNOWN
        assert await admin.balances(visit.psn_no, "310") == (100_000, 0)
        assert (await client.settle(stage.bill(visit, 9_905))).balc_fen == 93_478
    finally:
        await client.aclose()
        await live.stop()


def test_the_split_always_adds_up() -> None:
    lines = [RULES.classify(str(n), code, amount) for n, (code, amount) in enumerate(
        [(CONSULTATION, 1), (STATIN, 5), (STATIN, 15), (SYRUP, 7), (BED, 99_999)]
    )]
    for balance in (0, 1, 50_000, 10**9):
        for inpatient in (False, True):
            split = RULES.split(lines, inpatient=inpatient, personal_balance_fen=balance, family_balance_fen=3,
                                acct_used=True)
            assert split.hifp_pay_fen + split.acct_pay_fen + split.acct_mulaid_pay_fen + split.psn_cash_pay_fen == (
                split.medfee_sumamt_fen
            )


async def test_one_settlement_sent_five_times_at_once_spends_the_account_once(desk: Desk) -> None:
    visit = await desk.registered(personal_fen=100_000)
    await desk.platform.upload_fees(desk.upload(visit, desk.outpatient_lines()))
    await desk.platform.pre_settle(desk.bill(visit, 9_905))
    outcomes = await asyncio.gather(
        *(desk.platform.settle(desk.bill(visit, 9_905)) for _ in range(5)), return_exceptions=True
    )
    settled = [o for o in outcomes if isinstance(o, c.Settlement)]
    refused = [o.code for o in outcomes if isinstance(o, SourceRejected)]
    assert len(settled) == 1 and refused == [c.ALREADY_SETTLED] * 4
    assert await desk.admin.balances(visit.psn_no, "310") == (93_478, 0)


async def test_reversing_uploads_and_stay_changes_undoes_exactly_them(desk: Desk) -> None:
    visit = await desk.registered()
    signed = (await desk.platform.sign_in("0101", "00-1A-2B-3C-4D-5E", "10.0.0.8")).sign_no
    upload = {"feedetail": [
        {**codec.fee_line_to_wire(line, desk.upload(visit, ())), "chrg_bchno": "B001"}
        for line in desk.outpatient_lines()
    ]}
    sent = envelope(desk, c.FEE_UPLOAD, upload, sign_no=signed)
    assert (await desk.sandbox.handle(sent)).infcode == wire.SUCCESS
    await desk.platform.reverse(psn_no=visit.psn_no, omsgid=sent.msgid, oinfno=c.FEE_UPLOAD, insuplc_admdvs=AREA)
    assert await rejected(desk.platform.pre_settle(desk.bill(visit, 9_905))) == c.FEES_NOT_FOUND
    # The reversed lines' numbers are free again; "0000" withdraws every unsettled line.
    await desk.platform.upload_fees(desk.upload(visit, desk.outpatient_lines()))
    await desk.platform.cancel_fees(psn_no=visit.psn_no, mdtrt_id=visit.mdtrt_id, chrg_bchno=c.ALL_FEES,
                                    insuplc_admdvs=AREA)
    assert await rejected(desk.platform.pre_settle(desk.bill(visit, 9_905))) == c.FEES_NOT_FOUND

    stay = await desk.platform.admit(desk.admission(await desk.admin.add_person("赵六", "440301199001010022",
                                                                                 {"310": 0})))
    await desk.platform.reverse(psn_no=stay.psn_no, omsgid=stay.msgid, oinfno=c.ADMIT, insuplc_admdvs=AREA)
    gone = desk.platform.cancel_admission(psn_no=stay.psn_no, mdtrt_id=stay.mdtrt_id, insuplc_admdvs=AREA)
    assert await rejected(gone) == c.VISIT_NOT_FOUND


async def test_reversing_a_discharge_puts_the_patient_back_in_hospital(desk: Desk) -> None:
    psn_no = await desk.insured(t310=0)
    signed = await desk.platform.sign_in("0101", "00-1A-2B-3C-4D-5E", "10.0.0.8")
    stay = await desk.platform.admit(desk.admission(psn_no))
    discharge = c.DischargeRequest(
        mdtrt_id=stay.mdtrt_id, psn_no=psn_no, insutype="310", insuplc_admdvs=AREA,
        endtime=desk.clock.now().replace(microsecond=0), dise_codg="I20.000", dise_name="不稳定型心绞痛",
        dscg_way="1", dscg_dept_codg="0302", dscg_dept_name="心内科病区",
    )
    sent = envelope(desk, c.DISCHARGE, {"dscginfo": codec.discharge_to_wire(discharge), "diseinfo": []},
                    sign_no=signed.sign_no)
    assert (await desk.sandbox.handle(sent)).infcode == wire.SUCCESS
    assert await rejected(desk.platform.discharge(discharge)) == c.ALREADY_DISCHARGED
    await desk.platform.reverse(psn_no=psn_no, omsgid=sent.msgid, oinfno=c.DISCHARGE, insuplc_admdvs=AREA)
    await desk.platform.discharge(discharge)  # in hospital again, so it can be discharged
    single = desk.platform.cancel_inpatient_fees(psn_no=psn_no, mdtrt_id=stay.mdtrt_id, feedetl_sn="7",
                                                 insuplc_admdvs=AREA)
    assert await rejected(single) == c.FEES_NOT_FOUND


async def test_two_visits_settled_at_once_share_the_balance_and_never_overdraw_it(desk: Desk) -> None:
    first = await desk.registered(personal_fen=8_000)
    second = await desk.platform.register(desk.visit(first.psn_no, ipt_otp_no="MZ0002"))
    for visit in (first, second):
        await desk.platform.upload_fees(desk.upload(visit, desk.outpatient_lines()))
        await desk.platform.pre_settle(desk.bill(visit, 9_905))
    both = await asyncio.gather(*(desk.platform.settle(desk.bill(v, 9_905)) for v in (first, second)))
    assert sorted((s.acct_pay_fen, s.psn_cash_pay_fen) for s in both) == [(1_478, 5_044), (6_522, 0)]
    assert await desk.admin.balances(first.psn_no, "310") == (0, 0)


async def test_the_settlement_answer_speaks_the_spec_field_names_in_yuan(desk: Desk) -> None:
    visit = await desk.registered(personal_fen=100_000)
    await desk.platform.upload_fees(desk.upload(visit, desk.outpatient_lines()))
    await desk.platform.pre_settle(desk.bill(visit, 9_905))
    signed = await desk.platform.sign_in("0101", "00-1A-2B-3C-4D-5E", "10.0.0.8")
    request = envelope(desk, c.SETTLE, {"data": codec.settlement_request_to_wire(desk.bill(visit, 9_905))},
                       sign_no=signed.sign_no)
    answer = wire.Response.from_json(wire.loads(wire.dumps((await desk.sandbox.handle(request)).to_json())))
    assert answer.infcode == wire.SUCCESS and answer.output is not None
    info = answer.output["setlinfo"]
    assert (info["medfee_sumamt"], info["hifp_pay"], info["acct_pay"], info["psn_cash_pay"], info["balc"]) == (
        Decimal("99.05"), Decimal("33.83"), Decimal("65.22"), Decimal("0.00"), Decimal("934.78")
    )
    assert (info["medins_setl_id"], info["clr_type"], info["clr_optins"]) == (request.msgid, "11", AREA)
    assert info["setl_time"] == wire.inf_time(desk.clock.now())
    assert answer.output["setldetail"] == [{
        "fund_pay_type": "310100", "inscp_scp_amt": Decimal("58.34"), "crt_payb_lmt_amt": Decimal("33.83"),
        "fund_payamt": Decimal("33.83"), "fund_pay_type_name": "基本医疗保险统筹基金", "setl_proc_info": "",
    }]
