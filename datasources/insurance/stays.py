"""The sandbox's desk for what a visit is about: outpatient visit info (2203), the inpatient stay
(2401 admit, 2402 discharge, 2403 change, 2404 cancel admission, 2405 cancel discharge), the
person's filed chronic and special diseases (5301), and undoing those writes for a 2601 reversal.

A stay is ACTIVE (in hospital), DISCHARGED, or CANCELLED. Details change only while ACTIVE; an
admission with fee lines cannot be cancelled (cancel them with 2302 first); a discharge cannot be
cancelled while the stay is settled (cancel the settlement with 2305 first).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from datasources.insurance import codec, wire
from datasources.insurance import contract as c
from datasources.insurance.desk import (
    ACTIVE,
    CANCELLED,
    DISCHARGED,
    INPATIENT,
    OUTPATIENT,
    Applied,
    Refusal,
    decode,
    effect_of,
    field,
    find_visit,
    locked,
    section,
)
from datasources.insurance.tables import (
    InsurChronicDisease,
    InsurFee,
    InsurInsurance,
    InsurMessage,
    InsurPerson,
    InsurSettlement,
    InsurVisit,
)

Handler = Callable[[AsyncSession, wire.Request, datetime], Awaitable[Applied]]
REQUIRED_ON_ADMISSION = (
    "psn_no", "insutype", "begntime", "mdtrt_cert_type", "mdtrt_cert_no", "med_type", "ipt_no", "atddr_no",
    "chfpdr_name", "adm_dept_codg", "adm_dept_name",
)


def _time(data: dict[str, Any], name: str) -> datetime:
    try:
        return wire.parse_inf_time(field(data, name))
    except wire.EnvelopeError as exc:
        raise Refusal(c.BAD_REQUEST, f"{name}: {exc}") from None


def _diagnoses(request: wire.Request) -> list[dict[str, Any]]:
    rows = decode(codec.objects, request.input, "diseinfo") if "diseinfo" in request.input else []
    for row in rows:
        decode(codec.diagnosis_from_wire, row)
    return rows


def _snapshot(visit: InsurVisit) -> dict[str, Any]:
    """The columns 2203 and 2403 change, as they are now (for undoing them)."""
    return {
        "med_type": visit.med_type, "details": visit.details, "begntime": wire.inf_time(visit.begntime),
        "ipt_otp_no": visit.ipt_otp_no, "atddr_no": visit.atddr_no, "dr_name": visit.dr_name,
        "dept_code": visit.dept_code, "dept_name": visit.dept_name,
    }


def _restore(visit: InsurVisit, prior: dict[str, Any]) -> None:
    visit.med_type, visit.details = prior["med_type"], prior["details"]
    visit.begntime = wire.parse_inf_time(prior["begntime"])
    visit.ipt_otp_no, visit.atddr_no, visit.dr_name = prior["ipt_otp_no"], prior["atddr_no"], prior["dr_name"]
    visit.dept_code, visit.dept_name = prior["dept_code"], prior["dept_name"]


class StayDesk:
    def __init__(self, admvs: str) -> None:
        self.admvs = admvs
        self.handlers: dict[str, Handler] = {
            c.VISIT_INFO: self._visit_info,
            c.ADMIT: self._admit,
            c.DISCHARGE: self._discharge,
            c.CHANGE_ADMISSION: self._change,
            c.CANCEL_ADMISSION: self._cancel_admission,
            c.CANCEL_DISCHARGE: self._cancel_discharge,
            c.CHRONIC_DISEASES: self._chronic_diseases,
        }

    async def _visit_info(self, s: AsyncSession, request: wire.Request, now: datetime) -> Applied:
        info = section(request, "mdtrtinfo")
        diagnoses = _diagnoses(request)
        visit = await find_visit(s, request, field(info, "psn_no"), field(info, "mdtrt_id"), OUTPATIENT)
        details = {
            "begntime": wire.inf_time(_time(info, "begntime")), "main_cond_dscr": str(info.get("main_cond_dscr") or ""),
            "dise_codg": field(info, "dise_codg"), "dise_name": field(info, "dise_name"), "diseinfo": diagnoses,
        }
        effect = {"prior": _snapshot(visit)}
        visit.med_type, visit.details = field(info, "med_type"), json.dumps(details, ensure_ascii=False)
        s.add(visit)
        return Applied({}, visit.mdtrt_id, effect)

    async def _admit(self, s: AsyncSession, request: wire.Request, now: datetime) -> Applied:
        info = section(request, "mdtrtinfo")
        values = {name: field(info, name) for name in REQUIRED_ON_ADMISSION}
        begntime = _time(info, "begntime")
        diagnoses = _diagnoses(request)
        psn_no, insutype = values["psn_no"], values["insutype"]
        if await s.get(InsurPerson, psn_no) is None:
            raise Refusal(c.PERSON_NOT_FOUND, "no insured person with this psn_no")
        insured = (await s.execute(select(InsurInsurance).where(
            col(InsurInsurance.psn_no) == psn_no, col(InsurInsurance.insutype) == insutype,
            col(InsurInsurance.active).is_(True),
        ))).scalars().first()
        if insured is None:
            raise Refusal(c.NOT_INSURED, f"the person has no active insurance of type {insutype}")
        staying = (await s.execute(select(col(InsurVisit.mdtrt_id)).where(
            col(InsurVisit.psn_no) == psn_no, col(InsurVisit.kind) == INPATIENT,
            col(InsurVisit.fixmedins_code) == request.fixmedins_code, col(InsurVisit.status) == ACTIVE,
        ))).scalars().first()
        if staying is not None:
            raise Refusal(c.ALREADY_ADMITTED, "the person is already in a stay at this institution")
        mdtrt_id = f"{self.admvs}{secrets.randbelow(10**20):020d}"
        s.add(InsurVisit(
            mdtrt_id=mdtrt_id, psn_no=psn_no, fixmedins_code=request.fixmedins_code, insutype=insutype,
            begntime=begntime, mdtrt_cert_type=values["mdtrt_cert_type"], mdtrt_cert_no=values["mdtrt_cert_no"],
            ipt_otp_no=values["ipt_no"], atddr_no=values["atddr_no"], dr_name=values["chfpdr_name"],
            dept_code=values["adm_dept_codg"], dept_name=values["adm_dept_name"], caty=values["adm_dept_codg"],
            status=ACTIVE, msgid=request.msgid, kind=INPATIENT, med_type=values["med_type"],
            details=json.dumps({**info, "diseinfo": diagnoses}, ensure_ascii=False, default=str),
        ))
        return Applied({"result": {"mdtrt_id": mdtrt_id, "psn_no": psn_no, "ipt_otp_no": values["ipt_no"]}}, mdtrt_id)

    async def _in_hospital(self, s: AsyncSession, request: wire.Request, data: dict[str, Any]) -> InsurVisit:
        visit = await find_visit(s, request, field(data, "psn_no"), field(data, "mdtrt_id"), INPATIENT)
        if visit.status == DISCHARGED:
            raise Refusal(c.ALREADY_DISCHARGED, "the stay is discharged (cancel the discharge with 2405 first)")
        return visit

    async def _change(self, s: AsyncSession, request: wire.Request, now: datetime) -> Applied:
        info = section(request, "adminfo")
        diagnoses = _diagnoses(request)
        visit = await self._in_hospital(s, request, info)
        if "ipt_no" not in info:  # 2403 names the inpatient number ipt_otp_no
            info = {**info, "ipt_no": info.get("ipt_otp_no")}
        unchanged = ("psn_no", "insutype", "mdtrt_cert_no")
        values = {name: field(info, name) for name in REQUIRED_ON_ADMISSION if name not in unchanged}
        effect = {"prior": _snapshot(visit)}
        visit.begntime, visit.med_type = _time(info, "begntime"), values["med_type"]
        visit.ipt_otp_no, visit.atddr_no, visit.dr_name = values["ipt_no"], values["atddr_no"], values["chfpdr_name"]
        visit.dept_code, visit.dept_name = values["adm_dept_codg"], values["adm_dept_name"]
        visit.details = json.dumps({**info, "diseinfo": diagnoses}, ensure_ascii=False, default=str)
        s.add(visit)
        return Applied({}, visit.mdtrt_id, effect)

    async def _discharge(self, s: AsyncSession, request: wire.Request, now: datetime) -> Applied:
        info = section(request, "dscginfo")
        diagnoses = _diagnoses(request)
        visit = await self._in_hospital(s, request, info)
        endtime = _time(info, "endtime")
        if endtime < visit.begntime:
            raise Refusal(c.BAD_REQUEST, "endtime is before the admission")
        for name in ("dise_codg", "dise_name", "dscg_way", "dscg_dept_codg", "dscg_dept_name"):
            field(info, name)
        visit.status, visit.endtime = DISCHARGED, endtime
        visit.discharge = json.dumps({**info, "diseinfo": diagnoses}, ensure_ascii=False, default=str)
        s.add(visit)
        return Applied({}, visit.mdtrt_id)

    async def _cancel_admission(self, s: AsyncSession, request: wire.Request, now: datetime) -> Applied:
        visit = await self._in_hospital(s, request, section(request))
        fees = (await s.execute(select(col(InsurFee.id)).where(
            col(InsurFee.mdtrt_id) == visit.mdtrt_id, col(InsurFee.status) == ACTIVE
        ))).scalars().first()
        if fees is not None:
            raise Refusal(c.VISIT_HAS_FEES, "the stay has fee lines: cancel them (2302) first")
        visit.status = CANCELLED
        s.add(visit)
        return Applied({}, visit.mdtrt_id)

    async def _cancel_discharge(self, s: AsyncSession, request: wire.Request, now: datetime) -> Applied:
        visit = await find_visit(s, request, field(section(request), "psn_no"), field(section(request), "mdtrt_id"),
                                 INPATIENT)
        if visit.status != DISCHARGED:
            raise Refusal(c.NOT_DISCHARGED, "the stay is not discharged")
        if await _settled(s, visit.mdtrt_id):
            raise Refusal(c.ALREADY_SETTLED, "the stay is settled: cancel the settlement (2305) first")
        effect = {"endtime": wire.inf_time(visit.endtime) if visit.endtime else None}
        visit.status, visit.endtime = ACTIVE, None
        s.add(visit)
        return Applied({}, visit.mdtrt_id, effect)

    async def _chronic_diseases(self, s: AsyncSession, request: wire.Request, now: datetime) -> Applied:
        psn_no = field(section(request), "psn_no")
        if await s.get(InsurPerson, psn_no) is None:
            raise Refusal(c.PERSON_NOT_FOUND, "no insured person with this psn_no")
        rows = (await s.execute(
            select(InsurChronicDisease).where(col(InsurChronicDisease.psn_no) == psn_no)
            .order_by(col(InsurChronicDisease.begndate), col(InsurChronicDisease.id))
        )).scalars().all()
        diseases = [
            codec.chronic_disease_to_wire(c.ChronicDisease(r.opsp_dise_code, r.opsp_dise_name, r.begndate, r.enddate))
            for r in rows
        ]
        return Applied({"feedetail": diseases})

    # Reversal (2601) --------------------------------------------------------------------------------------
    reversible = frozenset({c.VISIT_INFO, c.DISCHARGE, c.CHANGE_ADMISSION, c.CANCEL_ADMISSION, c.CANCEL_DISCHARGE})

    async def undo(self, s: AsyncSession, target: InsurMessage) -> None:
        """Undoes what the (successful) message ``target`` did to its visit, as far as it still stands."""
        visit = await locked(s, InsurVisit, target.mdtrt_id) if target.mdtrt_id else None
        if visit is None:
            return
        effect = effect_of(target.effect)
        if target.infno in (c.VISIT_INFO, c.CHANGE_ADMISSION):
            _restore(visit, effect["prior"])
        elif target.infno == c.DISCHARGE and visit.status == DISCHARGED:
            if await _settled(s, visit.mdtrt_id):
                raise Refusal(c.ALREADY_SETTLED, "the stay is settled: cancel the settlement (2305) first")
            visit.status, visit.endtime = ACTIVE, None
        elif target.infno == c.CANCEL_ADMISSION and visit.status == CANCELLED:
            visit.status = ACTIVE
        elif target.infno == c.CANCEL_DISCHARGE and visit.status == ACTIVE:
            endtime = effect.get("endtime")
            visit.status, visit.endtime = DISCHARGED, wire.parse_inf_time(endtime) if endtime else None
        s.add(visit)


async def _settled(s: AsyncSession, mdtrt_id: str) -> bool:
    found = (await s.execute(select(col(InsurSettlement.setl_id)).where(
        col(InsurSettlement.mdtrt_id) == mdtrt_id, col(InsurSettlement.status) == "SETTLED"
    ))).scalars().first()
    return found is not None
