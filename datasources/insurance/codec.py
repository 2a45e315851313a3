"""The settlement transactions' ``input`` and ``output`` shapes, both ways, in one place.

The client encodes what it sends and decodes what it gets; the sandbox decodes what it receives
with the same functions, so the two cannot drift apart. Decoding raises ``KeyError``,
``TypeError`` or ``ValueError`` (``wire.EnvelopeError`` is one) on a malformed message; each side
turns that into its own failure. Times are ``yyyy-MM-dd HH:mm:ss`` and dates ``yyyy-MM-dd``
(Beijing), amounts yuan numbers with two decimals, counts and ratios plain decimals, flags "0"/"1".
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from datasources.insurance import contract as c
from datasources.insurance import wire

DATE_FORMAT = "%Y-%m-%d"


def text(data: dict[str, Any], name: str) -> str:
    value = data[name]
    if not isinstance(value, str):
        raise TypeError(f"{name}: expected a string")
    return value


def count(data: dict[str, Any], name: str) -> int:
    """A whole number the spec types as numeric, which some gateways send as text."""
    value = data[name]
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"{name}: expected a whole number")
    return int(value)


def number(data: dict[str, Any], name: str) -> Decimal:
    value = data[name]
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise TypeError(f"{name}: expected a number")
    return Decimal(value)


def fen(data: dict[str, Any], name: str) -> int:
    value = data[name]
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise TypeError(f"{name}: expected a yuan amount")
    return wire.yuan_to_fen(value)


def day_text(value: date) -> str:
    return value.strftime(DATE_FORMAT)


def parse_day(value: str) -> date:
    return datetime.strptime(value, DATE_FORMAT).date()


def objects(data: dict[str, Any], name: str) -> list[dict[str, Any]]:
    value = data[name]
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise TypeError(f"{name}: expected a list of objects")
    return value


# Diagnoses -------------------------------------------------------------------------------------------
def diagnosis_to_wire(d: c.Diagnosis, psn_no: str) -> dict[str, Any]:
    return {
        "psn_no": psn_no, "diag_type": d.diag_type, "diag_srt_no": d.diag_srt_no, "diag_code": d.diag_code,
        "diag_name": d.diag_name, "diag_dept": d.diag_dept, "dise_dor_no": d.dise_dor_no,
        "dise_dor_name": d.dise_dor_name, "diag_time": wire.inf_time(d.diag_time), "vali_flag": "1",
        "maindiag_flag": "1" if d.diag_srt_no == 1 else "0",
    }


def diagnosis_from_wire(data: dict[str, Any]) -> c.Diagnosis:
    return c.Diagnosis(
        diag_type=text(data, "diag_type"), diag_srt_no=count(data, "diag_srt_no"),
        diag_code=text(data, "diag_code"), diag_name=text(data, "diag_name"), diag_dept=text(data, "diag_dept"),
        dise_dor_no=text(data, "dise_dor_no"), dise_dor_name=text(data, "dise_dor_name"),
        diag_time=wire.parse_inf_time(text(data, "diag_time")),
    )


# Fees -------------------------------------------------------------------------------------------------
def fee_line_to_wire(line: c.FeeLine, upload: c.FeeUpload) -> dict[str, Any]:
    return {
        "feedetl_sn": line.feedetl_sn, "mdtrt_id": upload.mdtrt_id, "psn_no": upload.psn_no,
        "chrg_bchno": upload.chrg_bchno, "med_type": upload.med_type,
        "fee_ocur_time": wire.inf_time(line.fee_ocur_time),
        "med_list_codg": line.med_list_codg, "medins_list_codg": line.medins_list_codg,
        "det_item_fee_sumamt": wire.fen_to_yuan(line.det_item_fee_sumamt_fen), "cnt": line.cnt,
        "pric": wire.fen_to_yuan(line.pric_fen), "bilg_dept_codg": line.bilg_dept_codg,
        "bilg_dept_name": line.bilg_dept_name, "bilg_dr_codg": line.bilg_dr_codg, "bilg_dr_name": line.bilg_dr_name,
        "hosp_appr_flag": "1",
    }


def fee_line_from_wire(data: dict[str, Any]) -> c.FeeLine:
    return c.FeeLine(
        feedetl_sn=text(data, "feedetl_sn"), fee_ocur_time=wire.parse_inf_time(text(data, "fee_ocur_time")),
        med_list_codg=text(data, "med_list_codg"), medins_list_codg=text(data, "medins_list_codg"),
        cnt=number(data, "cnt"), pric_fen=fen(data, "pric"), det_item_fee_sumamt_fen=fen(data, "det_item_fee_sumamt"),
        bilg_dept_codg=text(data, "bilg_dept_codg"), bilg_dept_name=text(data, "bilg_dept_name"),
        bilg_dr_codg=text(data, "bilg_dr_codg"), bilg_dr_name=text(data, "bilg_dr_name"),
    )


def classification_to_wire(k: c.FeeClassification) -> dict[str, Any]:
    return {
        "feedetl_sn": k.feedetl_sn, "det_item_fee_sumamt": wire.fen_to_yuan(k.det_item_fee_sumamt_fen),
        "chrgitm_lv": k.chrgitm_lv, "selfpay_prop": k.selfpay_prop,
        "fulamt_ownpay_amt": wire.fen_to_yuan(k.fulamt_ownpay_amt_fen),
        "preselfpay_amt": wire.fen_to_yuan(k.preselfpay_amt_fen), "overlmt_amt": wire.fen_to_yuan(0),
        "inscp_scp_amt": wire.fen_to_yuan(k.inscp_scp_amt_fen), "pric_uplmt_amt": wire.fen_to_yuan(0),
    }


def classification_from_wire(data: dict[str, Any]) -> c.FeeClassification:
    return c.FeeClassification(
        feedetl_sn=text(data, "feedetl_sn"), det_item_fee_sumamt_fen=fen(data, "det_item_fee_sumamt"),
        chrgitm_lv=text(data, "chrgitm_lv"), selfpay_prop=number(data, "selfpay_prop"),
        fulamt_ownpay_amt_fen=fen(data, "fulamt_ownpay_amt"), preselfpay_amt_fen=fen(data, "preselfpay_amt"),
        inscp_scp_amt_fen=fen(data, "inscp_scp_amt"),
    )


# Settlements -----------------------------------------------------------------------------------------
def settlement_request_to_wire(r: c.SettlementRequest) -> dict[str, Any]:
    return {
        "psn_no": r.psn_no, "mdtrt_cert_type": r.mdtrt_cert_type, "mdtrt_cert_no": r.mdtrt_cert_no,
        "med_type": r.med_type, "medfee_sumamt": wire.fen_to_yuan(r.medfee_sumamt_fen), "psn_setlway": r.psn_setlway,
        "mdtrt_id": r.mdtrt_id, "chrg_bchno": r.chrg_bchno, "insutype": r.insutype,
        "acct_used_flag": "1" if r.acct_used_flag else "0", "mid_setl_flag": "0",
    }


def settlement_request_from_wire(data: dict[str, Any], insuplc_admdvs: str) -> c.SettlementRequest:
    flag = text(data, "acct_used_flag")
    if flag not in ("0", "1"):
        raise ValueError("acct_used_flag: expected 0 or 1")
    return c.SettlementRequest(
        mdtrt_id=text(data, "mdtrt_id"), psn_no=text(data, "psn_no"), insutype=text(data, "insutype"),
        insuplc_admdvs=insuplc_admdvs, med_type=text(data, "med_type"), mdtrt_cert_type=text(data, "mdtrt_cert_type"),
        mdtrt_cert_no=text(data, "mdtrt_cert_no"), medfee_sumamt_fen=fen(data, "medfee_sumamt"),
        acct_used_flag=flag == "1", chrg_bchno=str(data.get("chrg_bchno") or ""),
        psn_setlway=text(data, "psn_setlway"),
    )


_AMOUNTS = (
    "medfee_sumamt", "fulamt_ownpay_amt", "preselfpay_amt", "inscp_scp_amt", "act_pay_dedc", "hifp_pay",
    "fund_pay_sumamt", "psn_part_amt", "acct_pay", "acct_mulaid_pay", "psn_cash_pay", "balc",
)
_ZERO = ("overlmt_selfpay", "cvlserv_pay", "hifes_pay", "hifmi_pay", "hifob_pay", "maf_pay", "oth_pay", "hosp_part_amt")


def settlement_to_wire(s: c.Settlement, clr_optins: str) -> dict[str, Any]:
    """setlinfo; ``medins_setl_id`` is the hospital's message id, ``clr_optins`` the clearing agency."""
    out: dict[str, Any] = {
        "setl_id": s.setl_id, "mdtrt_id": s.mdtrt_id, "psn_no": s.psn_no, "insutype": s.insutype,
        "med_type": s.med_type, "clr_type": s.clr_type, "setl_time": wire.inf_time(s.setl_time),
        "medins_setl_id": s.msgid, "clr_optins": clr_optins, "clr_way": "1",
    }
    for name in _AMOUNTS:
        out[name] = wire.fen_to_yuan(getattr(s, f"{name}_fen"))
    for name in _ZERO:  # funds and parts the sandbox does not model
        out[name] = wire.fen_to_yuan(0)
    return out


def fund_details(s: c.Settlement) -> list[dict[str, Any]]:
    """setldetail: the funds that paid, one entry each (only the pooled fund in the sandbox)."""
    if s.hifp_pay_fen == 0:
        return []
    return [{
        "fund_pay_type": f"{s.insutype}100", "inscp_scp_amt": wire.fen_to_yuan(s.inscp_scp_amt_fen),
        "crt_payb_lmt_amt": wire.fen_to_yuan(s.hifp_pay_fen), "fund_payamt": wire.fen_to_yuan(s.hifp_pay_fen),
        "fund_pay_type_name": "基本医疗保险统筹基金", "setl_proc_info": "",
    }]


def settlement_from_wire(data: dict[str, Any], msgid: str) -> c.Settlement:
    amounts = {f"{name}_fen": fen(data, name) for name in _AMOUNTS}
    return c.Settlement(
        setl_id=str(data.get("setl_id") or ""), mdtrt_id=text(data, "mdtrt_id"), psn_no=text(data, "psn_no"),
        insutype=text(data, "insutype"), med_type=text(data, "med_type"), clr_type=text(data, "clr_type"),
        setl_time=wire.parse_inf_time(text(data, "setl_time")), msgid=msgid, **amounts,
    )


# Reconciliation ----------------------------------------------------------------------------------------
def totals_to_wire(t: c.ReconciliationTotals) -> dict[str, Any]:
    return {
        "insutype": t.insutype, "clr_type": t.clr_type, "setl_optins": t.setl_optins,
        "stmt_begndate": day_text(t.stmt_begndate), "stmt_enddate": day_text(t.stmt_enddate),
        "medfee_sumamt": wire.fen_to_yuan(t.medfee_sumamt_fen),
        "fund_pay_sumamt": wire.fen_to_yuan(t.fund_pay_sumamt_fen),
        "acct_pay": wire.fen_to_yuan(t.acct_pay_fen), "fixmedins_setl_cnt": t.fixmedins_setl_cnt,
        "refd_setl_flag": "0",
    }


def totals_from_wire(data: dict[str, Any]) -> c.ReconciliationTotals:
    return c.ReconciliationTotals(
        insutype=text(data, "insutype"), clr_type=text(data, "clr_type"), setl_optins=text(data, "setl_optins"),
        stmt_begndate=parse_day(text(data, "stmt_begndate")), stmt_enddate=parse_day(text(data, "stmt_enddate")),
        medfee_sumamt_fen=fen(data, "medfee_sumamt"), fund_pay_sumamt_fen=fen(data, "fund_pay_sumamt"),
        acct_pay_fen=fen(data, "acct_pay"), fixmedins_setl_cnt=count(data, "fixmedins_setl_cnt"),
    )


def entry_to_wire(e: c.SettlementEntry) -> dict[str, Any]:
    return {
        "setl_id": e.setl_id, "mdtrt_id": e.mdtrt_id, "psn_no": e.psn_no,
        "medfee_sumamt": wire.fen_to_yuan(e.medfee_sumamt_fen),
        "fund_pay_sumamt": wire.fen_to_yuan(e.fund_pay_sumamt_fen),
        "acct_pay": wire.fen_to_yuan(e.acct_pay_fen),
    }


def entry_from_wire(data: dict[str, Any]) -> c.SettlementEntry:
    return c.SettlementEntry(
        setl_id=text(data, "setl_id"), mdtrt_id=text(data, "mdtrt_id"), psn_no=text(data, "psn_no"),
        medfee_sumamt_fen=fen(data, "medfee_sumamt"), fund_pay_sumamt_fen=fen(data, "fund_pay_sumamt"),
        acct_pay_fen=fen(data, "acct_pay"),
    )


# Inpatient stays ---------------------------------------------------------------------------------------
def admission_to_wire(a: c.AdmissionRequest) -> dict[str, Any]:
    return {
        "psn_no": a.psn_no, "insutype": a.insutype, "begntime": wire.inf_time(a.begntime),
        "mdtrt_cert_type": a.mdtrt_cert_type, "mdtrt_cert_no": a.mdtrt_cert_no, "med_type": a.med_type,
        "ipt_no": a.ipt_no, "medrcdno": a.medrcdno, "atddr_no": a.atddr_no, "chfpdr_name": a.chfpdr_name,
        "adm_diag_dscr": a.adm_diag_dscr, "adm_dept_codg": a.adm_dept_codg, "adm_dept_name": a.adm_dept_name,
        "adm_bed": a.adm_bed, "dscg_maindiag_code": a.dscg_maindiag_code, "dscg_maindiag_name": a.dscg_maindiag_name,
        "insuplc_admdvs": a.insuplc_admdvs,
    }


ADMISSION_FIELDS = (
    "psn_no", "insutype", "begntime", "mdtrt_cert_type", "mdtrt_cert_no", "med_type", "ipt_no", "medrcdno",
    "atddr_no", "chfpdr_name", "adm_diag_dscr", "adm_dept_codg", "adm_dept_name", "adm_bed", "dscg_maindiag_code",
    "dscg_maindiag_name",
)


def discharge_to_wire(d: c.DischargeRequest) -> dict[str, Any]:
    return {
        "mdtrt_id": d.mdtrt_id, "psn_no": d.psn_no, "insutype": d.insutype, "endtime": wire.inf_time(d.endtime),
        "dise_codg": d.dise_codg, "dise_name": d.dise_name, "dscg_way": d.dscg_way,
        "dscg_dept_codg": d.dscg_dept_codg, "dscg_dept_name": d.dscg_dept_name, "insuplc_admdvs": d.insuplc_admdvs,
    }


def chronic_disease_to_wire(d: c.ChronicDisease) -> dict[str, Any]:
    return {
        "opsp_dise_code": d.opsp_dise_code, "opsp_dise_name": d.opsp_dise_name, "begndate": day_text(d.begndate),
        "enddate": day_text(d.enddate) if d.enddate else "",
    }


def chronic_disease_from_wire(data: dict[str, Any]) -> c.ChronicDisease:
    end = data.get("enddate")
    return c.ChronicDisease(
        opsp_dise_code=text(data, "opsp_dise_code"), opsp_dise_name=text(data, "opsp_dise_name"),
        begndate=parse_day(text(data, "begndate")), enddate=parse_day(end) if isinstance(end, str) and end else None,
    )
