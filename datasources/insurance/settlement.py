"""The sandbox's settlement desk: fee lines, pre-settlements, settlements and their cancels
(2204-2208 outpatient, 2301-2305 inpatient), the reconciliation (3201, 3202), and undoing any of
those writes for a 2601 reversal.

A settlement moves money only when it follows a pre-settlement of exactly the fee lines it would
settle now (the same lines, by identity, and the same total): a line uploaded or cancelled since,
or no pre-settlement at all, is refused with ``PRE_SETTLEMENT_REQUIRED``. The split is recomputed
at settlement against the balances of that moment. The visit and the person's insurance row are
locked for the transaction, so two settlements cannot spend one balance twice.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from datasources.clock import SHANGHAI
from datasources.insurance import codec, wire
from datasources.insurance import contract as c
from datasources.insurance.desk import (
    ACTIVE,
    CANCELLED,
    DISCHARGED,
    INPATIENT,
    OUTPATIENT,
    REVERSED,
    Applied,
    Refusal,
    decode,
    effect_of,
    field,
    find_visit,
    locked,
    section,
)
from datasources.insurance.rules import SettlementRules, Split
from datasources.insurance.tables import (
    InsurFee,
    InsurInsurance,
    InsurMessage,
    InsurPreSettlement,
    InsurRules,
    InsurSettlement,
    InsurVisit,
)

SETTLED = "SETTLED"
Handler = Callable[[AsyncSession, wire.Request, datetime], Awaitable[Applied]]


async def rules_for(s: AsyncSession, insutype: str, default: SettlementRules) -> SettlementRules:
    row = await s.get(InsurRules, insutype)
    return SettlementRules.from_json(row.rules) if row is not None else default


class SettlementDesk:
    def __init__(self, admvs: str, rules: SettlementRules) -> None:
        self.admvs = admvs
        self.rules = rules
        self.handlers: dict[str, Handler] = {
            c.FEE_UPLOAD: lambda s, r, now: self._upload(s, r, OUTPATIENT),
            c.INPATIENT_FEE_UPLOAD: lambda s, r, now: self._upload(s, r, INPATIENT),
            c.FEE_CANCEL: self._cancel_batch,
            c.INPATIENT_FEE_CANCEL: self._cancel_lines,
            c.PRE_SETTLE: lambda s, r, now: self._pre_settle(s, r, now, OUTPATIENT),
            c.INPATIENT_PRE_SETTLE: lambda s, r, now: self._pre_settle(s, r, now, INPATIENT),
            c.SETTLE: lambda s, r, now: self._settle(s, r, now, OUTPATIENT),
            c.INPATIENT_SETTLE: lambda s, r, now: self._settle(s, r, now, INPATIENT),
            c.CANCEL_SETTLEMENT: lambda s, r, now: self._cancel_settlement(s, r, now, OUTPATIENT),
            c.INPATIENT_CANCEL_SETTLEMENT: lambda s, r, now: self._cancel_settlement(s, r, now, INPATIENT),
            c.RECONCILE_TOTALS: self._reconcile_totals,
            c.RECONCILE_DETAILS: self._reconcile_details,
        }

    # Fee lines ----------------------------------------------------------------------------------------
    async def _upload(self, s: AsyncSession, request: wire.Request, kind: str) -> Applied:
        rows = decode(codec.objects, request.input, "feedetail")
        if not rows:
            raise Refusal(c.BAD_REQUEST, "feedetail is empty")
        if len({(row.get("mdtrt_id"), row.get("psn_no"), row.get("chrg_bchno") or "") for row in rows}) != 1:
            raise Refusal(c.BAD_REQUEST, "one upload is of one visit (and one charge batch)")
        chrg_bchno = str(rows[0].get("chrg_bchno") or "")
        if kind == OUTPATIENT and not chrg_bchno:
            raise Refusal(c.BAD_REQUEST, "input is missing chrg_bchno")
        visit = await find_visit(s, request, field(rows[0], "psn_no"), field(rows[0], "mdtrt_id"), kind)
        lines = [decode(codec.fee_line_from_wire, row) for row in rows]
        numbers = [line.feedetl_sn for line in lines]
        taken = (await s.execute(
            select(col(InsurFee.feedetl_sn)).where(
                col(InsurFee.mdtrt_id) == visit.mdtrt_id, col(InsurFee.status) == ACTIVE,
                col(InsurFee.feedetl_sn).in_(numbers),
            )
        )).scalars().all()
        if taken or len(set(numbers)) != len(numbers):
            raise Refusal(c.DUPLICATE_FEE, "a feedetl_sn is already uploaded for this visit")
        rules = await rules_for(s, visit.insutype, self.rules)
        classes = []
        for line in lines:
            if line.cnt <= 0 or line.pric_fen < 0:
                raise Refusal(c.BAD_REQUEST, f"line {line.feedetl_sn}: cnt must be positive, pric not negative")
            expected = (line.cnt * line.pric_fen).to_integral_value(rounding=ROUND_HALF_UP)
            if expected != line.det_item_fee_sumamt_fen:
                raise Refusal(c.AMOUNT_MISMATCH, f"line {line.feedetl_sn}: det_item_fee_sumamt is not cnt × pric")
            try:
                classes.append(rules.classify(line.feedetl_sn, line.med_list_codg, line.det_item_fee_sumamt_fen))
            except KeyError:
                raise Refusal(c.LIST_ITEM_UNKNOWN, f"line {line.feedetl_sn}: not in the catalogue") from None
        for line, k in zip(lines, classes, strict=True):
            s.add(InsurFee(
                mdtrt_id=visit.mdtrt_id, feedetl_sn=line.feedetl_sn, chrg_bchno=chrg_bchno,
                fee_ocur_time=line.fee_ocur_time, med_list_codg=line.med_list_codg,
                medins_list_codg=line.medins_list_codg, cnt=str(line.cnt), pric_fen=line.pric_fen,
                amount_fen=line.det_item_fee_sumamt_fen, chrgitm_lv=k.chrgitm_lv, selfpay_prop=str(k.selfpay_prop),
                fulamt_ownpay_fen=k.fulamt_ownpay_amt_fen, preselfpay_fen=k.preselfpay_amt_fen,
                inscp_scp_fen=k.inscp_scp_amt_fen, status=ACTIVE, msgid=request.msgid,
            ))
        result = [
            {**codec.classification_to_wire(k), "cnt": line.cnt, "pric": wire.fen_to_yuan(line.pric_fen)}
            for line, k in zip(lines, classes, strict=True)
        ]
        return Applied({"result": result}, visit.mdtrt_id)

    async def _active_fees(self, s: AsyncSession, mdtrt_id: str, chrg_bchno: str | None = None) -> list[InsurFee]:
        stmt = select(InsurFee).where(col(InsurFee.mdtrt_id) == mdtrt_id, col(InsurFee.status) == ACTIVE)
        if chrg_bchno is not None:
            stmt = stmt.where(col(InsurFee.chrg_bchno) == chrg_bchno)
        return list((await s.execute(stmt.order_by(col(InsurFee.id)))).scalars().all())

    def _withdraw(self, fees: list[InsurFee], s: AsyncSession, visit: InsurVisit) -> Applied:
        if not fees:
            raise Refusal(c.FEES_NOT_FOUND, "no uploaded fee lines to cancel")
        if any(fee.setl_id is not None for fee in fees):
            raise Refusal(c.FEES_SETTLED, "settled fee lines cannot be cancelled: cancel the settlement first")
        for fee in fees:
            fee.status = CANCELLED
            s.add(fee)
        return Applied({}, visit.mdtrt_id, {"fees": [fee.id for fee in fees]})

    async def _cancel_batch(self, s: AsyncSession, request: wire.Request, now: datetime) -> Applied:
        data = section(request)
        visit = await find_visit(s, request, field(data, "psn_no"), field(data, "mdtrt_id"), OUTPATIENT)
        batch = field(data, "chrg_bchno")
        fees = await self._active_fees(s, visit.mdtrt_id, None if batch == c.ALL_FEES else batch)
        if batch == c.ALL_FEES:
            fees = [fee for fee in fees if fee.setl_id is None]
        return self._withdraw(fees, s, visit)

    async def _cancel_lines(self, s: AsyncSession, request: wire.Request, now: datetime) -> Applied:
        """2302's ``data`` is a list of lines (one visit); a single object is read as a list of one."""
        given = request.input.get("data")
        rows = [given] if isinstance(given, dict) else decode(codec.objects, request.input, "data")
        if not rows or len({(row.get("mdtrt_id"), row.get("psn_no")) for row in rows}) != 1:
            raise Refusal(c.BAD_REQUEST, "data: the lines of one visit")
        visit = await find_visit(s, request, field(rows[0], "psn_no"), field(rows[0], "mdtrt_id"), INPATIENT)
        numbers = {field(row, "feedetl_sn") for row in rows}
        fees = await self._active_fees(s, visit.mdtrt_id)
        if c.ALL_FEES in numbers:
            fees = [fee for fee in fees if fee.setl_id is None]
        else:
            fees = [fee for fee in fees if fee.feedetl_sn in numbers]
            if len(fees) != len(numbers):
                raise Refusal(c.FEES_NOT_FOUND, "a feedetl_sn is not an uploaded line of this stay")
        return self._withdraw(fees, s, visit)

    # Settlements ------------------------------------------------------------------------------------
    async def _prepare(
        self, s: AsyncSession, request: wire.Request, kind: str
    ) -> tuple[c.SettlementRequest, InsurVisit, list[InsurFee], InsurInsurance, str]:
        """The request, its visit, the unsettled fee lines it settles, the insurance row and the
        scope's charge batch ("" for a stay), after the checks common to pre-settling and settling."""
        req = decode(codec.settlement_request_from_wire, section(request), request.insuplc_admdvs)
        visit = await find_visit(s, request, req.psn_no, req.mdtrt_id, kind)
        if kind == OUTPATIENT and not req.chrg_bchno:
            raise Refusal(c.BAD_REQUEST, "input is missing chrg_bchno")
        batch = req.chrg_bchno if kind == OUTPATIENT else ""
        if req.insutype != visit.insutype:
            raise Refusal(c.NOT_INSURED, "the visit was registered under another insutype")
        fees = await self._active_fees(s, visit.mdtrt_id, batch if kind == OUTPATIENT else None)
        unsettled = [fee for fee in fees if fee.setl_id is None]
        if not fees:
            raise Refusal(c.FEES_NOT_FOUND, "no uploaded fee lines to settle")
        if not unsettled:
            raise Refusal(c.ALREADY_SETTLED, "these fee lines are already settled")
        if sum(fee.amount_fen for fee in unsettled) != req.medfee_sumamt_fen:
            raise Refusal(c.AMOUNT_MISMATCH, "medfee_sumamt is not the sum of the uploaded fee lines")
        insurance = await self._insurance(s, visit)
        return req, visit, unsettled, insurance, batch

    async def _insurance(self, s: AsyncSession, visit: InsurVisit) -> InsurInsurance:
        stmt = select(InsurInsurance).where(
            col(InsurInsurance.psn_no) == visit.psn_no, col(InsurInsurance.insutype) == visit.insutype
        ).with_for_update().execution_options(populate_existing=True)
        insurance = (await s.execute(stmt)).scalars().first()
        if insurance is None or not insurance.active:
            raise Refusal(c.NOT_INSURED, f"the person has no active insurance of type {visit.insutype}")
        return insurance

    async def _split(
        self, s: AsyncSession, req: c.SettlementRequest, visit: InsurVisit, fees: list[InsurFee],
        insurance: InsurInsurance,
    ) -> Split:
        rules = await rules_for(s, visit.insutype, self.rules)
        lines = [
            c.FeeClassification(
                feedetl_sn=fee.feedetl_sn, det_item_fee_sumamt_fen=fee.amount_fen, chrgitm_lv=fee.chrgitm_lv,
                selfpay_prop=Decimal(fee.selfpay_prop), fulamt_ownpay_amt_fen=fee.fulamt_ownpay_fen,
                preselfpay_amt_fen=fee.preselfpay_fen, inscp_scp_amt_fen=fee.inscp_scp_fen,
            )
            for fee in fees
        ]
        return rules.split(
            lines, inpatient=visit.kind == INPATIENT, personal_balance_fen=insurance.balance_fen,
            family_balance_fen=insurance.family_balance_fen, acct_used=req.acct_used_flag,
        )

    async def _pre_settle(self, s: AsyncSession, request: wire.Request, now: datetime, kind: str) -> Applied:
        req, visit, fees, insurance, batch = await self._prepare(s, request, kind)
        split = await self._split(s, req, visit, fees, insurance)
        pre = InsurPreSettlement(
            mdtrt_id=visit.mdtrt_id, chrg_bchno=batch, fees=_identities(fees),
            medfee_sumamt_fen=req.medfee_sumamt_fen, msgid=request.msgid, at=now,
        )
        s.add(pre)
        await s.flush()
        view = _view("", visit, req.med_type, split, insurance.balance_fen, now, request.msgid)
        return Applied(_answer(view, request), visit.mdtrt_id, {"pre_settlement": pre.id})

    async def _settle(self, s: AsyncSession, request: wire.Request, now: datetime, kind: str) -> Applied:
        req, visit, fees, insurance, batch = await self._prepare(s, request, kind)
        if kind == INPATIENT and visit.status != DISCHARGED:
            raise Refusal(c.NOT_DISCHARGED, "discharge (2402) before settling the stay")
        stmt = (
            select(InsurPreSettlement)
            .where(col(InsurPreSettlement.mdtrt_id) == visit.mdtrt_id, col(InsurPreSettlement.chrg_bchno) == batch)
            .order_by(col(InsurPreSettlement.id).desc())
            .limit(1)
        )
        pre = (await s.execute(stmt)).scalars().first()
        if pre is None:
            raise Refusal(c.PRE_SETTLEMENT_REQUIRED, "no pre-settlement of these fees")
        if pre.fees != _identities(fees) or pre.medfee_sumamt_fen != req.medfee_sumamt_fen:
            raise Refusal(c.PRE_SETTLEMENT_REQUIRED, "the fees changed since the pre-settlement: pre-settle again")
        split = await self._split(s, req, visit, fees, insurance)
        insurance.balance_fen -= split.acct_pay_fen
        insurance.family_balance_fen -= split.acct_mulaid_pay_fen
        s.add(insurance)
        setl_id = self._new_setl_id()
        s.add(InsurSettlement(
            setl_id=setl_id, mdtrt_id=visit.mdtrt_id, psn_no=visit.psn_no, fixmedins_code=visit.fixmedins_code,
            insutype=visit.insutype, med_type=req.med_type, clr_type=_clr_type(kind),
            setl_optins=request.insuplc_admdvs or self.admvs, chrg_bchno=batch, setl_time=now,
            medfee_sumamt_fen=split.medfee_sumamt_fen, fulamt_ownpay_amt_fen=split.fulamt_ownpay_amt_fen,
            preselfpay_amt_fen=split.preselfpay_amt_fen, inscp_scp_amt_fen=split.inscp_scp_amt_fen,
            act_pay_dedc_fen=split.act_pay_dedc_fen, hifp_pay_fen=split.hifp_pay_fen, acct_pay_fen=split.acct_pay_fen,
            acct_mulaid_pay_fen=split.acct_mulaid_pay_fen, psn_cash_pay_fen=split.psn_cash_pay_fen,
            balc_fen=insurance.balance_fen, status=SETTLED, msgid=request.msgid,
        ))
        for fee in fees:
            fee.setl_id = setl_id
            s.add(fee)
        view = _view(setl_id, visit, req.med_type, split, insurance.balance_fen, now, request.msgid)
        return Applied(_answer(view, request), visit.mdtrt_id, {"setl_id": setl_id})

    def _new_setl_id(self) -> str:
        return f"{self.admvs}{secrets.randbelow(10**20):020d}"

    async def _cancel_settlement(self, s: AsyncSession, request: wire.Request, now: datetime, kind: str) -> Applied:
        data = section(request)
        visit = await find_visit(s, request, field(data, "psn_no"), field(data, "mdtrt_id"), kind)
        settlement = await locked(s, InsurSettlement, field(data, "setl_id"))
        if settlement is None or settlement.mdtrt_id != visit.mdtrt_id or settlement.status == REVERSED:
            raise Refusal(c.SETTLEMENT_NOT_FOUND, "no such settlement of this visit")
        if settlement.status == CANCELLED:
            raise Refusal(c.ALREADY_CANCELLED, "the settlement is already cancelled")
        fees, balance = await self._unsettle(s, settlement, visit)
        settlement.status, settlement.cancelled_at = CANCELLED, now
        settlement.cancel_setl_id = self._new_setl_id()
        s.add(settlement)
        view = replace(
            _negated(settlement, visit, request.msgid), setl_id=settlement.cancel_setl_id, setl_time=now,
            balc_fen=balance,
        )
        effect = {"setl_id": settlement.setl_id, "fees": fees}
        return Applied(_answer(view, request), visit.mdtrt_id, effect)

    async def _unsettle(self, s: AsyncSession, settlement: InsurSettlement, visit: InsurVisit) -> tuple[list[int], int]:
        """Gives the accounts back and frees the fee lines: (their ids, the balance after)."""
        insurance = await self._insurance(s, visit)
        insurance.balance_fen += settlement.acct_pay_fen
        insurance.family_balance_fen += settlement.acct_mulaid_pay_fen
        s.add(insurance)
        fees = (await s.execute(
            select(InsurFee).where(col(InsurFee.setl_id) == settlement.setl_id).order_by(col(InsurFee.id))
        )).scalars().all()
        for fee in fees:
            fee.setl_id = None
            s.add(fee)
        return [fee.id for fee in fees if fee.id is not None], insurance.balance_fen

    # Reconciliation -----------------------------------------------------------------------------------
    async def _period(
        self, s: AsyncSession, request: wire.Request, totals: c.ReconciliationTotals
    ) -> list[InsurSettlement]:
        if totals.stmt_enddate < totals.stmt_begndate:
            raise Refusal(c.BAD_REQUEST, "stmt_enddate is before stmt_begndate")
        start, end = _beijing_start(totals.stmt_begndate), _beijing_start(totals.stmt_enddate + timedelta(days=1))
        stmt = select(InsurSettlement).where(
            col(InsurSettlement.fixmedins_code) == request.fixmedins_code,
            col(InsurSettlement.insutype) == totals.insutype, col(InsurSettlement.clr_type) == totals.clr_type,
            col(InsurSettlement.setl_optins) == totals.setl_optins, col(InsurSettlement.status) == SETTLED,
            col(InsurSettlement.setl_time) >= start, col(InsurSettlement.setl_time) < end,
        )
        return list((await s.execute(stmt.order_by(col(InsurSettlement.setl_time)))).scalars().all())

    async def _reconcile_totals(self, s: AsyncSession, request: wire.Request, now: datetime) -> Applied:
        totals = decode(codec.totals_from_wire, section(request))
        settlements = await self._period(s, request, totals)
        ours = {
            "medfee_sumamt": sum(x.medfee_sumamt_fen for x in settlements),
            "fund_pay_sumamt": sum(x.hifp_pay_fen for x in settlements),
            "acct_pay": sum(x.acct_pay_fen for x in settlements),
        }
        theirs = {
            "medfee_sumamt": totals.medfee_sumamt_fen, "fund_pay_sumamt": totals.fund_pay_sumamt_fen,
            "acct_pay": totals.acct_pay_fen,
        }
        differences = [
            f"{name} {wire.fen_to_yuan(theirs[name])} ≠ {wire.fen_to_yuan(ours[name])}"
            for name in ours if ours[name] != theirs[name]
        ]
        if totals.fixmedins_setl_cnt != len(settlements):
            differences.append(f"fixmedins_setl_cnt {totals.fixmedins_setl_cnt} ≠ {len(settlements)}")
        result = c.STMT_MISMATCH if differences else c.STMT_MATCH
        description = "; ".join(differences) if differences else "对账一致"
        stmtinfo = {"setl_optins": totals.setl_optins, "stmt_rslt": result, "stmt_rslt_dscr": description}
        return Applied({"stmtinfo": stmtinfo})

    async def _reconcile_details(self, s: AsyncSession, request: wire.Request, now: datetime) -> Applied:
        totals = decode(codec.totals_from_wire, section(request))
        entries = [decode(codec.entry_from_wire, row) for row in decode(codec.objects, request.input, "detail")]
        ours = {x.setl_id: x for x in await self._period(s, request, totals)}
        theirs = {e.setl_id: e for e in entries}
        detail: list[dict[str, Any]] = []
        for setl_id, x in ours.items():
            entry = theirs.get(setl_id)
            if entry is None:
                detail.append({"setl_id": setl_id, "stmt_rslt": c.ONLY_PLATFORM, "memo": "医院无此结算"})
            elif (entry.mdtrt_id, entry.psn_no, entry.medfee_sumamt_fen, entry.fund_pay_sumamt_fen,
                  entry.acct_pay_fen) != (x.mdtrt_id, x.psn_no, x.medfee_sumamt_fen, x.hifp_pay_fen, x.acct_pay_fen):
                detail.append({"setl_id": setl_id, "stmt_rslt": c.AMOUNTS_DIFFER, "memo": "金额或就诊信息不符"})
        for setl_id in theirs:
            if setl_id not in ours:
                detail.append({"setl_id": setl_id, "stmt_rslt": c.ONLY_HOSPITAL, "memo": "中心无此有效结算"})
        result = c.STMT_MISMATCH if detail else c.STMT_MATCH
        stmtinfo = {"setl_optins": totals.setl_optins, "stmt_rslt": result, "stmt_rslt_dscr": f"{len(detail)} 笔不符"}
        return Applied({"stmtinfo": stmtinfo, "detail": detail})

    # Reversal (2601) --------------------------------------------------------------------------------------
    reversible = frozenset({
        c.FEE_UPLOAD, c.INPATIENT_FEE_UPLOAD, c.FEE_CANCEL, c.INPATIENT_FEE_CANCEL, c.PRE_SETTLE,
        c.INPATIENT_PRE_SETTLE, c.SETTLE, c.INPATIENT_SETTLE, c.CANCEL_SETTLEMENT, c.INPATIENT_CANCEL_SETTLEMENT,
    })

    async def undo(self, s: AsyncSession, target: InsurMessage) -> None:
        """Undoes what the (successful) message ``target`` did, as far as it still stands."""
        effect = effect_of(target.effect)
        visit = await locked(s, InsurVisit, target.mdtrt_id) if target.mdtrt_id else None
        if visit is None:
            return
        if target.infno in (c.FEE_UPLOAD, c.INPATIENT_FEE_UPLOAD):
            fees = (await s.execute(select(InsurFee).where(col(InsurFee.msgid) == target.msgid))).scalars().all()
            if any(fee.setl_id is not None for fee in fees):
                raise Refusal(c.FEES_SETTLED, "the uploaded lines are settled: cancel the settlement first")
            for fee in fees:
                fee.status = REVERSED if fee.status == ACTIVE else fee.status
                s.add(fee)
        elif target.infno in (c.FEE_CANCEL, c.INPATIENT_FEE_CANCEL):
            for fee_id in effect.get("fees", []):
                withdrawn = await s.get(InsurFee, fee_id)
                if withdrawn is not None and withdrawn.status == CANCELLED:
                    withdrawn.status = ACTIVE
                    s.add(withdrawn)
        elif target.infno in (c.PRE_SETTLE, c.INPATIENT_PRE_SETTLE):
            pre_settlement = effect.get("pre_settlement")
            await s.execute(delete(InsurPreSettlement).where(col(InsurPreSettlement.id) == pre_settlement))
        elif target.infno in (c.SETTLE, c.INPATIENT_SETTLE):
            settlement = await locked(s, InsurSettlement, effect.get("setl_id", ""))
            if settlement is not None and settlement.status == SETTLED:
                await self._unsettle(s, settlement, visit)
                settlement.status = REVERSED
                s.add(settlement)
        else:  # a settlement cancel: the settlement stands again, and spends the accounts again
            settlement = await locked(s, InsurSettlement, effect.get("setl_id", ""))
            if settlement is not None and settlement.status == CANCELLED:
                await self._resettle(s, settlement, visit, effect.get("fees", []))

    async def _resettle(
        self, s: AsyncSession, settlement: InsurSettlement, visit: InsurVisit, fee_ids: list[int]
    ) -> None:
        fees = [await s.get(InsurFee, fee_id) for fee_id in fee_ids]
        if any(fee is None or fee.status != ACTIVE or fee.setl_id is not None for fee in fees):
            raise Refusal(c.FEES_SETTLED, "the settlement's fee lines were cancelled or settled again since")
        insurance = await self._insurance(s, visit)
        insurance.balance_fen -= settlement.acct_pay_fen
        insurance.family_balance_fen -= settlement.acct_mulaid_pay_fen
        s.add(insurance)
        for fee in fees:
            assert fee is not None
            fee.setl_id = settlement.setl_id
            s.add(fee)
        settlement.status, settlement.cancel_setl_id, settlement.cancelled_at = SETTLED, None, None
        s.add(settlement)


def _answer(view: c.Settlement, request: wire.Request) -> dict[str, Any]:
    clr_optins = request.insuplc_admdvs or request.mdtrtarea_admvs
    return {"setlinfo": codec.settlement_to_wire(view, clr_optins), "setldetail": codec.fund_details(view)}


def _identities(fees: list[InsurFee]) -> str:
    return json.dumps(sorted(fee.id for fee in fees if fee.id is not None))


def _clr_type(kind: str) -> str:
    return c.CLR_INPATIENT if kind == INPATIENT else c.CLR_OUTPATIENT


def _beijing_start(day: date) -> datetime:
    return datetime.combine(day, time(), SHANGHAI)


def _view(
    setl_id: str, visit: InsurVisit, med_type: str, split: Split, balc_fen: int, now: datetime, msgid: str
) -> c.Settlement:
    return c.Settlement(
        setl_id=setl_id, mdtrt_id=visit.mdtrt_id, psn_no=visit.psn_no, insutype=visit.insutype, med_type=med_type,
        clr_type=_clr_type(visit.kind), setl_time=now, medfee_sumamt_fen=split.medfee_sumamt_fen,
        fulamt_ownpay_amt_fen=split.fulamt_ownpay_amt_fen, preselfpay_amt_fen=split.preselfpay_amt_fen,
        inscp_scp_amt_fen=split.inscp_scp_amt_fen, act_pay_dedc_fen=split.act_pay_dedc_fen,
        hifp_pay_fen=split.hifp_pay_fen, fund_pay_sumamt_fen=split.fund_pay_sumamt_fen,
        psn_part_amt_fen=split.psn_part_amt_fen, acct_pay_fen=split.acct_pay_fen,
        acct_mulaid_pay_fen=split.acct_mulaid_pay_fen, psn_cash_pay_fen=split.psn_cash_pay_fen, balc_fen=balc_fen,
        msgid=msgid,
    )


def _negated(x: InsurSettlement, visit: InsurVisit, msgid: str) -> c.Settlement:
    split = Split(
        medfee_sumamt_fen=-x.medfee_sumamt_fen, fulamt_ownpay_amt_fen=-x.fulamt_ownpay_amt_fen,
        preselfpay_amt_fen=-x.preselfpay_amt_fen, inscp_scp_amt_fen=-x.inscp_scp_amt_fen,
        act_pay_dedc_fen=-x.act_pay_dedc_fen, hifp_pay_fen=-x.hifp_pay_fen, acct_pay_fen=-x.acct_pay_fen,
        acct_mulaid_pay_fen=-x.acct_mulaid_pay_fen, psn_cash_pay_fen=-x.psn_cash_pay_fen, negative=True,
    )
    return _view(x.setl_id, visit, x.med_type, split, x.balc_fen, x.setl_time, msgid)
