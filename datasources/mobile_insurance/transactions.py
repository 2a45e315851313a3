"""The business data of each transaction (what ``encData`` holds), to and from the contract's values.

Field names follow the platform's interface document for 6201/6202/6203/6301/6401 as far as we
know it (``payAuthNo``, ``payOrdId``, ``payToken``, ``orgCodg``, ``medOrgOrd``, ``medfeeSumamt``,
``acctUsedFlag``, ``feedetailList``/``feedetlSn``/``medListCodg``/``detItemFeeSumamt``,
``feeSumamt``, ``fundPay``, ``psnAcctPay``, ``ownPayAmt``, ``appRefdSn``, ``expContent``,
``ordStas``); the code search found no copy of that document, so these and the choices below are
ours to correct here: the family account share is ``acctMulaidPay`` (as the national platform
names 个人账户共济支付), an item's category is ``medChrgitmType``, refunds answer with
``fundRefdAmt``/``psnAcctRefdAmt``/``acctMulaidRefdAmt``/``totlRefdAmt``, and ``ordStas`` uses the
codes of ``ORDER_STATUS``. The authorization lookup (``authCode`` → ``payAuthNo``) is ours.
"""

from __future__ import annotations

from typing import Any

from datasources.mobile_insurance import contract as c
from datasources.mobile_insurance.wire import EnvelopeError, fen, yuan

ORDER_STATUS = {c.UPLOADED: "1", c.PAID: "4", c.REFUNDED: "8", c.CANCELLED: "12"}
STATUS_OF = {v: k for k, v in ORDER_STATUS.items()}


def text(data: dict[str, Any], name: str, *, optional: bool = False) -> str:
    value = data.get(name)
    if value is None and optional:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise EnvelopeError(f"{name}: expected a string")
    return str(value)


def number(data: dict[str, Any], name: str) -> int:
    return int(text(data, name))


def amount(data: dict[str, Any], name: str) -> int:
    return fen(data.get(name), name)


# --- authorization -----------------------------------------------------------------------------


def authorization_data(a: c.Authorization) -> dict[str, Any]:
    return {
        "payAuthNo": a.pay_auth_no,
        "userName": a.name,
        "idNo": a.id_no,
        "idType": "01",
        "insuplcAdmdvs": a.insurance_area,
        "expireTime": str(a.expires_at_epoch),
    }


def authorization_of(data: dict[str, Any]) -> c.Authorization:
    return c.Authorization(
        text(data, "payAuthNo"),
        text(data, "userName"),
        text(data, "idNo"),
        text(data, "insuplcAdmdvs"),
        number(data, "expireTime"),
    )


# --- 6201 ----------------------------------------------------------------------------------------


def upload_data(u: c.FeeUpload) -> dict[str, Any]:
    return {
        "payAuthNo": u.pay_auth_no,
        "orgCodg": u.org_code,
        "medOrgOrd": u.med_org_ord,
        "userName": u.name,
        "idNo": u.id_no,
        "idType": "01",
        "medfeeSumamt": yuan(u.total_fen),
        "acctUsedFlag": "1" if u.use_personal_account else "0",
        "feedetailList": [
            {
                "feedetlSn": i.seq,
                "medListCodg": i.code,
                "medListName": i.name,
                "medChrgitmType": i.category,
                "detItemFeeSumamt": yuan(i.amount_fen),
            }
            for i in u.items
        ],
    }


def upload_of(data: dict[str, Any]) -> c.FeeUpload:
    items = data.get("feedetailList")
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise EnvelopeError("feedetailList: expected an array of objects")
    flag = text(data, "acctUsedFlag")
    if flag not in ("0", "1"):
        raise EnvelopeError("acctUsedFlag: expected 0 or 1")
    return c.FeeUpload(
        pay_auth_no=text(data, "payAuthNo"),
        org_code=text(data, "orgCodg"),
        med_org_ord=text(data, "medOrgOrd"),
        name=text(data, "userName"),
        id_no=text(data, "idNo"),
        total_fen=amount(data, "medfeeSumamt"),
        items=tuple(
            c.FeeItem(
                text(i, "feedetlSn"),
                text(i, "medListCodg"),
                text(i, "medListName", optional=True),
                text(i, "medChrgitmType"),
                amount(i, "detItemFeeSumamt"),
            )
            for i in items
        ),
        use_personal_account=flag == "1",
    )


# --- orders (6201 reply, 6202, 6301, 6401) --------------------------------------------------------


def order_data(o: c.Order) -> dict[str, Any]:
    s = o.split
    return {
        "payOrdId": o.pay_ord_id,
        "medOrgOrd": o.med_org_ord,
        "ordStas": ORDER_STATUS[o.status],
        "feeSumamt": yuan(s.total_fen),
        "fundPay": yuan(s.fund_fen),
        "psnAcctPay": yuan(s.personal_account_fen),
        "acctMulaidPay": yuan(s.family_account_fen),
        "ownPayAmt": yuan(s.own_pay_fen),
    }


def order_of(data: dict[str, Any]) -> c.Order:
    status = STATUS_OF.get(text(data, "ordStas"))
    if status is None:
        raise EnvelopeError(f"ordStas: unknown status {data.get('ordStas')!r}")
    try:
        split = c.Split(
            amount(data, "feeSumamt"),
            amount(data, "fundPay"),
            amount(data, "psnAcctPay"),
            amount(data, "acctMulaidPay"),
            amount(data, "ownPayAmt"),
        )
    except ValueError as exc:
        raise EnvelopeError(str(exc)) from exc
    return c.Order(text(data, "payOrdId"), text(data, "medOrgOrd"), status, split)


def uploaded_data(u: c.Uploaded) -> dict[str, Any]:
    return {**order_data(u.order), "payToken": u.pay_token}


def uploaded_of(data: dict[str, Any]) -> c.Uploaded:
    return c.Uploaded(order_of(data), text(data, "payToken"))


# --- 6203 ----------------------------------------------------------------------------------------


def refund_data(r: c.Refund) -> dict[str, Any]:
    return {
        "payOrdId": r.pay_ord_id,
        "appRefdSn": r.refund_sn,
        "refStatus": "SUCC",
        "totlRefdAmt": yuan(r.fund_fen + r.personal_account_fen + r.family_account_fen),
        "fundRefdAmt": yuan(r.fund_fen),
        "psnAcctRefdAmt": yuan(r.personal_account_fen),
        "acctMulaidRefdAmt": yuan(r.family_account_fen),
    }


def refund_of(data: dict[str, Any]) -> c.Refund:
    refund = c.Refund(
        text(data, "payOrdId"),
        text(data, "appRefdSn"),
        amount(data, "fundRefdAmt"),
        amount(data, "psnAcctRefdAmt"),
        amount(data, "acctMulaidRefdAmt"),
    )
    if refund.fund_fen + refund.personal_account_fen + refund.family_account_fen != amount(data, "totlRefdAmt"):
        raise EnvelopeError("totlRefdAmt is not the sum of the refunded parts")
    return refund
