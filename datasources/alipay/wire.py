"""Alipay's wire format, shared by the sandbox, the served gateway and the HTTP client.

Signing (RSA2 = SHA256withRSA, PKCS#1 v1.5, base64): the content is every parameter but ``sign``
(and, for async notifies, ``sign_type``), empty values skipped, sorted by name, joined as
``k=v&k=v`` with raw (not URL-encoded) values, UTF-8. A gateway response is signed over the exact
text of its ``<method>_response`` node. Amounts are yuan strings with at most two decimals.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import zipfile
from collections.abc import Mapping
from datetime import date, datetime, timedelta

from datasources.alipay import contract as c
from datasources.clock import SHANGHAI
from datasources.crypto.primitives import PrivateKey, PublicKey, sign, verify
from datasources.errors import SourceRejected
from datasources.money import AmountError, fen_from_yuan, yuan_text

SOURCE = "alipay"
SUCCESS = "10000"
UNAVAILABLE = "20000"
MISSING_ARGUMENTS = "40001"
INVALID_ARGUMENTS = "40002"
BUSINESS_FAILED = "40004"
MESSAGES = {
    SUCCESS: "Success",
    UNAVAILABLE: "Service Currently Unavailable",
    MISSING_ARGUMENTS: "Missing Required Arguments",
    INVALID_ARGUMENTS: "Invalid Arguments",
    BUSINESS_FAILED: "Business Failed",
}
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
BILL_HEADER = (
    "支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,对方账户,"
    "订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,券名称,"
    "商家红包消费金额（元）,卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注"
).split(",")


def reject(code: str, detail: str = "") -> SourceRejected:
    return SourceRejected(SOURCE, code, detail)


# --- amounts and times -------------------------------------------------------------------------------


fen_to_yuan = yuan_text


def yuan_to_fen(value: str) -> int:
    """"12.50" → 1250, exactly; more than two decimals, exponents or junk are refused."""
    try:
        return fen_from_yuan(value)
    except AmountError as exc:
        raise reject(c.INVALID_PARAMETER, str(exc)) from None


def format_time(at: datetime) -> str:
    """"yyyy-MM-dd HH:mm:ss" in Asia/Shanghai, as every Alipay time field."""
    return at.astimezone(SHANGHAI).strftime(TIME_FORMAT)


def parse_time(value: str) -> datetime:
    try:
        return datetime.strptime(value, TIME_FORMAT).replace(tzinfo=SHANGHAI)
    except ValueError:
        raise reject(c.INVALID_PARAMETER, f"not a time yyyy-MM-dd HH:mm:ss: {value!r}") from None


_EXPRESS_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}


def parse_timeout_express(value: str) -> timedelta:
    """``timeout_express`` ("90m", "2h", "1d"): how long the trade waits for the buyer, 1m to 15d."""
    unit, count = _EXPRESS_UNITS.get(value[-1:]), value[:-1]
    if unit is None or not count.isdigit() or not timedelta(minutes=1) <= int(count) * unit <= timedelta(days=15):
        raise reject(c.INVALID_PARAMETER, f"timeout_express is 1m..15d as Nm, Nh or Nd: {value!r}")
    return int(count) * unit


# --- signatures ----------------------------------------------------------------------------------------


def signing_content(params: Mapping[str, str], *, drop: tuple[str, ...] = ("sign",)) -> str:
    return "&".join(f"{k}={params[k]}" for k in sorted(params) if k not in drop and params[k] != "")


def sign_params(key: PrivateKey, params: Mapping[str, str]) -> str:
    return base64.b64encode(sign(key, signing_content(params).encode())).decode()


def sign_text(key: PrivateKey, text: str) -> str:
    return base64.b64encode(sign(key, text.encode())).decode()


def verify_text(key: PublicKey, signature: str, text: str) -> bool:
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return False
    return verify(key, raw, text.encode())


def verify_params(key: PublicKey, params: Mapping[str, str], *, drop: tuple[str, ...] = ("sign",)) -> None:
    """Raises ``SourceRejected`` (missing or invalid signature) unless ``params`` carry a valid ``sign``."""
    signature = params.get("sign", "")
    if not signature:
        raise reject(c.MISSING_SIGNATURE, "no sign")
    if not verify_text(key, signature, signing_content(params, drop=drop)):
        raise reject(c.INVALID_SIGNATURE, "the signature does not verify")


# --- async notifies -----------------------------------------------------------------------------------


def notification_form(
    key: PrivateKey, *, app_id: str, seller_id: str, notify_id: str, notify_time: datetime, trade: c.Trade,
    subject: str, gmt_create: datetime, refund_fen: int | None = None, out_biz_no: str | None = None,
    gmt_refund: datetime | None = None,
) -> dict[str, str]:
    """The form Alipay POSTs to notify_url for a trade's change, signed with the platform key."""
    form = {
        "notify_time": format_time(notify_time),
        "notify_type": "trade_status_sync",
        "notify_id": notify_id,
        "app_id": app_id,
        "charset": "utf-8",
        "version": "1.0",
        "trade_no": trade.trade_no,
        "out_trade_no": trade.out_trade_no,
        "buyer_id": trade.buyer_id,
        "seller_id": seller_id,
        "trade_status": trade.trade_status,
        "total_amount": fen_to_yuan(trade.total_fen),
        "receipt_amount": fen_to_yuan(trade.total_fen),
        "subject": subject,
        "gmt_create": format_time(gmt_create),
    }
    if trade.gmt_payment is not None:
        form["gmt_payment"] = format_time(trade.gmt_payment)
    if refund_fen is not None:
        form["refund_fee"] = fen_to_yuan(refund_fen)
    if out_biz_no is not None:
        form["out_biz_no"] = out_biz_no
    if gmt_refund is not None:
        form["gmt_refund"] = format_time(gmt_refund)
    content = signing_content(form, drop=("sign", "sign_type"))
    form["sign_type"] = "RSA2"
    form["sign"] = base64.b64encode(sign(key, content.encode())).decode()
    return form


def parse_notification(form: Mapping[str, str], *, app_id: str, alipay_public_key: PublicKey) -> c.Notification:
    """Verifies (sign and sign_type left out of the content) and reads an async notify."""
    verify_params(alipay_public_key, form, drop=("sign", "sign_type"))
    if form.get("app_id") != app_id:
        raise reject(c.INVALID_APP_ID, "the notify is for another app")
    try:
        return c.Notification(
            notify_id=form["notify_id"],
            notify_time=parse_time(form["notify_time"]),
            app_id=form["app_id"],
            out_trade_no=form["out_trade_no"],
            trade_no=form["trade_no"],
            trade_status=form["trade_status"],
            total_fen=yuan_to_fen(form["total_amount"]),
            buyer_id=form.get("buyer_id", ""),
            gmt_payment=parse_time(form["gmt_payment"]) if form.get("gmt_payment") else None,
            refund_fen=yuan_to_fen(form["refund_fee"]) if form.get("refund_fee") else None,
            out_biz_no=form.get("out_biz_no") or None,
        )
    except KeyError as exc:
        raise reject(c.INVALID_PARAMETER, f"the notify lacks {exc.args[0]}") from None


# --- gateway responses ------------------------------------------------------------------------------


def response_name(method: str) -> str:
    return method.replace(".", "_") + "_response"


def response_body(name: str, node: Mapping[str, object], key: PrivateKey | None) -> str:
    """``{"<name>": node, "sign": ...}`` with the signature over the node's exact text."""
    text = json.dumps(node, ensure_ascii=False, separators=(",", ":"))
    if key is None:
        return f'{{"{name}":{text}}}'
    return f'{{"{name}":{text},"sign":"{sign_text(key, text)}"}}'


def node_text(body: str, name: str) -> str | None:
    """The raw text of the top-level ``name`` node: what the signature covers, never re-serialized."""
    try:
        document = json.loads(body)
    except ValueError:
        return None
    if not isinstance(document, dict) or not isinstance(document.get(name), dict):
        return None
    decoder = json.JSONDecoder()
    at = 0
    while True:
        at = body.find(f'"{name}"', at)
        if at < 0:
            return None
        start = at + len(name) + 2
        while start < len(body) and body[start] in " \t\r\n":
            start += 1
        if start < len(body) and body[start] == ":":
            start += 1
            while start < len(body) and body[start] in " \t\r\n":
                start += 1
            try:
                value, end = decoder.raw_decode(body, start)
            except ValueError:
                return None
            if value == document[name]:
                return body[start:end]
        at += 1


# --- the bill ------------------------------------------------------------------------------------------


def bill_csv(seller_id: str, bill_date: date, lines: list[c.BillLine]) -> str:
    """The business detail file (业务明细) of one day, as Alipay writes it (header and footer rows
    start with ``#``; numbers that look like numbers carry a tab so spreadsheets keep them whole)."""
    out = io.StringIO()
    out.write("#支付宝业务明细查询\n")
    out.write(f"#账号：[{seller_id}]\n")
    day = bill_date.isoformat()
    out.write(f"#起始日期：[{day} 00:00:00]   终止日期：[{day} 23:59:59]\n")
    out.write("#-----------------------------------------业务明细列表----------------------------------------\n")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(BILL_HEADER)
    for line in lines:
        writer.writerow([
            f"{line.trade_no}\t", f"{line.out_trade_no}\t", line.kind, line.subject,
            format_time(line.created_at), format_time(line.finished_at), "", "", "", "", "",
            fen_to_yuan(line.amount_fen), fen_to_yuan(line.received_fen), "0.00", "0.00", "0.00", "0.00",
            "0.00", "", "0.00", "0.00", f"{line.out_request_no}\t" if line.out_request_no else "", "0.00",
            "0.00", "",
        ])
    out.write("#-----------------------------------------业务明细列表结束------------------------------------\n")
    payments = sum(1 for line in lines if line.kind == "交易")
    total = sum(line.amount_fen for line in lines)
    out.write(f"#交易合计：{payments}笔，退款合计：{len(lines) - payments}笔，订单金额合计：{fen_to_yuan(total)}元\n")
    return out.getvalue()


def bill_zip(seller_id: str, bill_date: date, lines: list[c.BillLine]) -> bytes:
    """The downloaded file: a zip holding the detail CSV in GBK."""
    buffer = io.BytesIO()
    stamp = bill_date.strftime("%Y%m%d")
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{seller_id}_{stamp}_业务明细.csv", bill_csv(seller_id, bill_date, lines).encode("gbk"))
    return buffer.getvalue()


def parse_bill_csv(text: str) -> list[c.BillLine]:
    rows = [row for row in csv.reader(io.StringIO(text)) if row and not row[0].startswith("#")]
    if not rows or [cell.strip() for cell in rows[0]] != BILL_HEADER:
        raise reject(c.INVALID_PARAMETER, "not an Alipay business detail file")
    lines = []
    for row in rows[1:]:
        if len(row) != len(BILL_HEADER):
            raise reject(c.INVALID_PARAMETER, "a bill line with the wrong number of columns")
        lines.append(c.BillLine(
            trade_no=row[0].strip(), out_trade_no=row[1].strip(), kind=row[2].strip(), subject=row[3],
            created_at=parse_time(row[4].strip()), finished_at=parse_time(row[5].strip()),
            amount_fen=yuan_to_fen(row[11]), received_fen=yuan_to_fen(row[12]), out_request_no=row[21].strip(),
        ))
    return lines


def parse_bill_zip(data: bytes) -> list[c.BillLine]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = [n for n in archive.namelist() if n.endswith("_业务明细.csv")]
            if len(names) != 1:
                raise reject(c.INVALID_PARAMETER, "the bill archive has no business detail file")
            text = archive.read(names[0]).decode("gbk")
    except (zipfile.BadZipFile, UnicodeDecodeError):
        raise reject(c.INVALID_PARAMETER, "the bill is not a readable zip of GBK CSV") from None
    return parse_bill_csv(text)
