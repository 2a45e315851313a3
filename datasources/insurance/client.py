"""The ``InsurancePlatform`` contract spoken as envelopes, over any way of exchanging them.

``PlatformClient`` builds each request (a fresh ``msgid``, the institution's fields, the current
``sign_no``), reads the answer and maps failures to ``SourceRejected`` with the contract's codes.
The sandbox in-process and ``HttpInsurancePlatform`` differ only in how an envelope travels. The
settlement transactions' shapes are in ``codec.py``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from datasources.clock import Clock
from datasources.errors import SourceRejected, SourceUnavailable
from datasources.insurance import codec, wire
from datasources.insurance import contract as c

Exchange = Callable[[wire.Request], Awaitable[wire.Response]]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Institution:
    """Who is calling: the designated medical institution and its operator."""

    fixmedins_code: str  # 12 characters
    fixmedins_name: str
    mdtrtarea_admvs: str  # where care is given (6-digit division code)
    opter: str
    opter_name: str
    opter_type: str = "1"  # 1 staff, 2 self-service terminal, 3 mobile terminal
    recer_sys_code: str = "FSI_LOCAL"
    infver: str = "V1.0"


class PlatformClient:
    def __init__(self, exchange: Exchange, institution: Institution, clock: Clock, msgids: wire.MsgIds) -> None:
        self._exchange = exchange
        self.institution = institution
        self.clock = clock
        self.msgids = msgids
        self.sign_no = ""
        self._operator: tuple[str, str, str] | None = None

    def _request(self, infno: str, input: dict[str, Any], insuplc_admdvs: str = "") -> wire.Request:
        i = self.institution
        return wire.Request(
            infno=infno, msgid=self.msgids.next(), mdtrtarea_admvs=i.mdtrtarea_admvs,
            insuplc_admdvs=insuplc_admdvs, recer_sys_code=i.recer_sys_code, infver=i.infver,
            opter_type=i.opter_type, opter=i.opter, opter_name=i.opter_name,
            inf_time=wire.inf_time(self.clock.now()), fixmedins_code=i.fixmedins_code,
            fixmedins_name=i.fixmedins_name, sign_no=self.sign_no, input=input,
        )

    async def _send(self, infno: str, input: dict[str, Any], insuplc_admdvs: str = "") -> tuple[str, dict[str, Any]]:
        """One transaction: (the msgid that succeeded, its output).

        Signs in again once when the platform says the sign_no is not valid, and resends under a
        new msgid (the platform remembers the refused one with its refusal, and it changed nothing).
        """
        for attempt in range(2):
            request = self._request(infno, input, insuplc_admdvs)
            answer = await self._exchange(request)
            if answer.infcode == wire.SUCCESS:
                return request.msgid, answer.output or {}
            code, detail = answer.rejection
            if code == c.SIGN_IN_REQUIRED and infno != c.SIGN_IN and self._operator and attempt == 0:
                await self.sign_in(*self._operator)
                continue
            raise SourceRejected(c.SOURCE, code, detail)
        raise AssertionError("unreachable")

    async def sign_in(self, opter_no: str, mac: str, ip: str) -> c.SignIn:
        _, out = await self._send(c.SIGN_IN, {"signIn": {"opter_no": opter_no, "mac": mac, "ip": ip}})
        try:
            result = out["signinoutb"]
            signed = c.SignIn(sign_no=str(result["sign_no"]), sign_time=wire.parse_inf_time(result["sign_time"]))
        except (KeyError, TypeError, wire.EnvelopeError) as exc:
            raise SourceUnavailable(c.SOURCE, f"9001: unreadable answer ({exc})") from None
        self.sign_no, self._operator = signed.sign_no, (opter_no, mac, ip)
        return signed

    async def person_info(self, cert_type: str, cert_no: str, psn_name: str) -> c.Person:
        data = {
            "mdtrt_cert_type": cert_type, "mdtrt_cert_no": cert_no, "card_sn": "", "begntime": "",
            "psn_cert_type": "01" if cert_type == c.CERT_RESIDENT_ID else "", "certno": cert_no,
            "psn_name": psn_name,
        }
        _, out = await self._send(c.PERSON_INFO, {"data": data})
        try:
            base = out["baseinfo"]
            insurances = tuple(
                c.Insurance(
                    insutype=str(i["insutype"]), psn_type=str(i["psn_type"]), balance_fen=wire.yuan_to_fen(i["balc"]),
                    insuplc_admdvs=str(i["insuplc_admdvs"]), active=str(i["psn_insu_stas"]) == "1",
                )
                for i in out["insuinfo"]
            )
            return c.Person(
                psn_no=str(base["psn_no"]), psn_name=str(base["psn_name"]), psn_cert_type=str(base["psn_cert_type"]),
                certno=str(base["certno"]), gender=str(base["gend"]), insurances=insurances,
            )
        except (KeyError, TypeError, wire.EnvelopeError) as exc:
            raise SourceUnavailable(c.SOURCE, f"1101: unreadable answer ({exc})") from None

    async def register(self, visit: c.VisitRequest) -> c.Visit:
        data = {
            "psn_no": visit.psn_no, "insutype": visit.insutype, "begntime": wire.inf_time(visit.begntime),
            "mdtrt_cert_type": visit.mdtrt_cert_type, "mdtrt_cert_no": visit.mdtrt_cert_no,
            "ipt_otp_no": visit.ipt_otp_no, "atddr_no": visit.atddr_no, "dr_name": visit.dr_name,
            "dept_code": visit.dept_code, "dept_name": visit.dept_name, "caty": visit.caty,
        }
        msgid, out = await self._send(c.REGISTER, {"data": data}, visit.insuplc_admdvs)
        try:
            result = out["data"]
            return c.Visit(
                mdtrt_id=str(result["mdtrt_id"]), psn_no=str(result["psn_no"]),
                ipt_otp_no=str(result["ipt_otp_no"]), msgid=msgid,
            )
        except (KeyError, TypeError) as exc:
            raise SourceUnavailable(c.SOURCE, f"2201: unreadable answer ({exc})") from None

    async def cancel_registration(
        self, *, psn_no: str, mdtrt_id: str, ipt_otp_no: str, insuplc_admdvs: str
    ) -> None:
        data = {"psn_no": psn_no, "mdtrt_id": mdtrt_id, "ipt_otp_no": ipt_otp_no}
        await self._send(c.CANCEL_REGISTRATION, {"data": data}, insuplc_admdvs)

    async def reverse(self, *, psn_no: str, omsgid: str, oinfno: str, insuplc_admdvs: str) -> None:
        data = {"psn_no": psn_no, "omsgid": omsgid, "oinfno": oinfno}
        await self._send(c.REVERSE, {"data": data}, insuplc_admdvs)

    # Settlement --------------------------------------------------------------------------------------
    def _read(self, infno: str, read: Callable[[], T]) -> T:
        try:
            return read()
        except (KeyError, TypeError, ValueError) as exc:
            raise SourceUnavailable(c.SOURCE, f"{infno}: unreadable answer ({exc})") from None

    async def upload_visit_info(self, info: c.VisitInfo) -> None:
        mdtrtinfo = {
            "mdtrt_id": info.mdtrt_id, "psn_no": info.psn_no, "med_type": info.med_type,
            "begntime": wire.inf_time(info.begntime), "main_cond_dscr": info.main_cond_dscr,
            "dise_codg": info.dise_codg, "dise_name": info.dise_name,
        }
        diseinfo = [codec.diagnosis_to_wire(d, info.psn_no) for d in info.diagnoses]
        await self._send(c.VISIT_INFO, {"mdtrtinfo": mdtrtinfo, "diseinfo": diseinfo}, info.insuplc_admdvs)

    async def _upload(self, infno: str, upload: c.FeeUpload) -> tuple[c.FeeClassification, ...]:
        lines = [codec.fee_line_to_wire(line, upload) for line in upload.lines]
        _, out = await self._send(infno, {"feedetail": lines}, upload.insuplc_admdvs)
        return self._read(infno, lambda: tuple(
            codec.classification_from_wire(row) for row in codec.objects(out, "result")
        ))

    async def upload_fees(self, upload: c.FeeUpload) -> tuple[c.FeeClassification, ...]:
        return await self._upload(c.FEE_UPLOAD, upload)

    async def upload_inpatient_fees(self, upload: c.FeeUpload) -> tuple[c.FeeClassification, ...]:
        return await self._upload(c.INPATIENT_FEE_UPLOAD, upload)

    async def cancel_fees(self, *, psn_no: str, mdtrt_id: str, chrg_bchno: str, insuplc_admdvs: str) -> None:
        data = {"chrg_bchno": chrg_bchno, "mdtrt_id": mdtrt_id, "psn_no": psn_no}
        await self._send(c.FEE_CANCEL, {"data": data}, insuplc_admdvs)

    async def cancel_inpatient_fees(
        self, *, psn_no: str, mdtrt_id: str, feedetl_sn: str, insuplc_admdvs: str
    ) -> None:
        data = [{"feedetl_sn": feedetl_sn, "mdtrt_id": mdtrt_id, "psn_no": psn_no}]
        await self._send(c.INPATIENT_FEE_CANCEL, {"data": data}, insuplc_admdvs)

    async def _settlement(self, infno: str, input: dict[str, Any], insuplc_admdvs: str) -> c.Settlement:
        msgid, out = await self._send(infno, input, insuplc_admdvs)
        return self._read(infno, lambda: codec.settlement_from_wire(out["setlinfo"], msgid))

    async def pre_settle(self, request: c.SettlementRequest) -> c.Settlement:
        data = codec.settlement_request_to_wire(request)
        return await self._settlement(c.PRE_SETTLE, {"data": data}, request.insuplc_admdvs)

    async def settle(self, request: c.SettlementRequest) -> c.Settlement:
        data = codec.settlement_request_to_wire(request)
        return await self._settlement(c.SETTLE, {"data": data}, request.insuplc_admdvs)

    async def cancel_settlement(
        self, *, psn_no: str, mdtrt_id: str, setl_id: str, insuplc_admdvs: str
    ) -> c.Settlement:
        data = {"setl_id": setl_id, "mdtrt_id": mdtrt_id, "psn_no": psn_no}
        return await self._settlement(c.CANCEL_SETTLEMENT, {"data": data}, insuplc_admdvs)

    async def pre_settle_inpatient(self, request: c.SettlementRequest) -> c.Settlement:
        data = codec.settlement_request_to_wire(request)
        return await self._settlement(c.INPATIENT_PRE_SETTLE, {"data": data}, request.insuplc_admdvs)

    async def settle_inpatient(self, request: c.SettlementRequest) -> c.Settlement:
        data = codec.settlement_request_to_wire(request)
        return await self._settlement(c.INPATIENT_SETTLE, {"data": data}, request.insuplc_admdvs)

    async def cancel_inpatient_settlement(
        self, *, psn_no: str, mdtrt_id: str, setl_id: str, insuplc_admdvs: str
    ) -> c.Settlement:
        data = {"setl_id": setl_id, "mdtrt_id": mdtrt_id, "psn_no": psn_no}
        return await self._settlement(c.INPATIENT_CANCEL_SETTLEMENT, {"data": data}, insuplc_admdvs)

    # Inpatient stays ------------------------------------------------------------------------------------
    async def admit(self, admission: c.AdmissionRequest) -> c.Visit:
        diseinfo = [codec.diagnosis_to_wire(d, admission.psn_no) for d in admission.diagnoses]
        input = {"mdtrtinfo": codec.admission_to_wire(admission), "diseinfo": diseinfo}
        msgid, out = await self._send(c.ADMIT, input, admission.insuplc_admdvs)

        def read() -> c.Visit:  # the spec's answer holds the mdtrt_id only
            mdtrt_id = codec.text(out["result"], "mdtrt_id")
            return c.Visit(mdtrt_id=mdtrt_id, psn_no=admission.psn_no, ipt_otp_no=admission.ipt_no, msgid=msgid)

        return self._read(c.ADMIT, read)

    async def discharge(self, discharge: c.DischargeRequest) -> None:
        diseinfo = [codec.diagnosis_to_wire(d, discharge.psn_no) for d in discharge.diagnoses]
        input = {"dscginfo": codec.discharge_to_wire(discharge), "diseinfo": diseinfo}
        await self._send(c.DISCHARGE, input, discharge.insuplc_admdvs)

    async def change_admission(self, mdtrt_id: str, admission: c.AdmissionRequest) -> None:
        diseinfo = [codec.diagnosis_to_wire(d, admission.psn_no) for d in admission.diagnoses]
        adminfo = {**codec.admission_to_wire(admission), "mdtrt_id": mdtrt_id, "ipt_otp_no": admission.ipt_no}
        await self._send(c.CHANGE_ADMISSION, {"adminfo": adminfo, "diseinfo": diseinfo}, admission.insuplc_admdvs)

    async def cancel_admission(self, *, psn_no: str, mdtrt_id: str, insuplc_admdvs: str) -> None:
        await self._send(c.CANCEL_ADMISSION, {"data": {"mdtrt_id": mdtrt_id, "psn_no": psn_no}}, insuplc_admdvs)

    async def cancel_discharge(self, *, psn_no: str, mdtrt_id: str, insuplc_admdvs: str) -> None:
        await self._send(c.CANCEL_DISCHARGE, {"data": {"mdtrt_id": mdtrt_id, "psn_no": psn_no}}, insuplc_admdvs)

    # Reconciliation and records -------------------------------------------------------------------------
    async def reconcile_totals(self, totals: c.ReconciliationTotals) -> c.ReconciliationResult:
        _, out = await self._send(c.RECONCILE_TOTALS, {"data": codec.totals_to_wire(totals)}, totals.setl_optins)

        def read() -> c.ReconciliationResult:
            info = out["stmtinfo"]
            return c.ReconciliationResult(codec.text(info, "stmt_rslt"), str(info.get("stmt_rslt_dscr") or ""))

        return self._read(c.RECONCILE_TOTALS, read)

    async def reconcile_details(
        self, totals: c.ReconciliationTotals, entries: tuple[c.SettlementEntry, ...]
    ) -> tuple[c.EntryDifference, ...]:
        input = {"data": codec.totals_to_wire(totals), "detail": [codec.entry_to_wire(e) for e in entries]}
        _, out = await self._send(c.RECONCILE_DETAILS, input, totals.setl_optins)
        return self._read(c.RECONCILE_DETAILS, lambda: tuple(
            c.EntryDifference(codec.text(row, "setl_id"), codec.text(row, "stmt_rslt"), str(row.get("memo") or ""))
            for row in codec.objects(out, "detail")
        ))

    async def chronic_diseases(self, *, psn_no: str, insuplc_admdvs: str) -> tuple[c.ChronicDisease, ...]:
        _, out = await self._send(c.CHRONIC_DISEASES, {"data": {"psn_no": psn_no}}, insuplc_admdvs)
        return self._read(c.CHRONIC_DISEASES, lambda: tuple(
            codec.chronic_disease_from_wire(row) for row in codec.objects(out, "feedetail")
        ))
