"""WeChat Pay API v3's wire format, shared by the sandbox, its served app and ``HttpWeChatPay``.

- Request signature (``Authorization: WECHATPAY2-SHA256-RSA2048 mchid="…",nonce_str="…",
  signature="…",timestamp="…",serial_no="…"``): RSA-SHA256 (PKCS#1 v1.5) with the merchant's key
  over ``METHOD\\nPATH?QUERY\\ntimestamp\\nnonce\\nbody\\n`` (body empty for GET), base64.
- Answers and notifications: ``Wechatpay-Timestamp``, ``-Nonce``, ``-Serial`` (the key's id,
  ``PUB_KEY_ID_…`` or a platform certificate serial) and ``-Signature`` over
  ``timestamp\\nnonce\\nbody\\n`` with WeChat Pay's key.
- Notification resources: AEAD_AES_256_GCM under the APIv3 key, the 12-character ``nonce`` and
  ``associated_data`` as given, ``ciphertext`` = base64(ciphertext ‖ 16-byte tag).
- mini-program paySign: RSA-SHA256 over ``appId\\ntimeStamp\\nnonceStr\\npackage\\n``.
- Times are RFC 3339 with the +08:00 offset; amounts are integer fen (``total``, ``refund``).
- The trade bill (bill_type ALL) is text: a header line, rows whose fields each start with a
  backtick, then a summary header and one summary row; amounts in yuan with 2 decimals.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import string
from datetime import date, datetime
from typing import Any

from datasources.clock import SHANGHAI
from datasources.crypto.primitives import (
    CryptoError,
    PrivateKey,
    PublicKey,
    Sealer,
    load_private_key,
    load_public_key,
    sign,
    verify,
)
from datasources.errors import SourceRejected
from datasources.money import AmountError, fen_from_yuan, yuan_text
from datasources.wechatpay import contract as c

SCHEMA = "WECHATPAY2-SHA256-RSA2048"
NATIVE_CODE_URL_PREFIX = "weixin://wxpay/bizpayurl?pr="  # a Native order's code_url, shown as a QR code
AEAD = "AEAD_AES_256_GCM"
_ALPHANUM = string.ascii_letters + string.digits


class WireError(ValueError):
    """Something on the wire does not have the expected shape."""


def nonce(length: int = 32) -> str:
    return "".join(secrets.choice(_ALPHANUM) for _ in range(length))


def rfc3339(at: datetime) -> str:
    return at.astimezone(SHANGHAI).isoformat(timespec="seconds")


def parse_time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise WireError(f"not a time: {value!r}")
    try:
        at = datetime.fromisoformat(value)
    except ValueError as exc:
        raise WireError(f"not an RFC 3339 time: {value!r}") from exc
    if at.tzinfo is None:
        raise WireError(f"time without offset: {value!r}")
    return at


yuan = yuan_text


def fen_of_yuan(text: str) -> int:
    try:
        return fen_from_yuan(text)
    except AmountError as exc:
        raise WireError(str(exc)) from None


# --- signatures ----------------------------------------------------------------------------------


def request_message(method: str, path_and_query: str, timestamp: str, nonce_str: str, body: str) -> bytes:
    return f"{method.upper()}\n{path_and_query}\n{timestamp}\n{nonce_str}\n{body}\n".encode()


def response_message(timestamp: str, nonce_str: str, body: bytes) -> bytes:
    return f"{timestamp}\n{nonce_str}\n".encode() + body + b"\n"


def sign_b64(key: PrivateKey, message: bytes) -> str:
    return base64.b64encode(sign(key, message)).decode()


def verify_b64(key: PublicKey, signature: str, message: bytes) -> bool:
    try:
        raw = base64.b64decode(signature, validate=True)
    except ValueError:
        return False
    return verify(key, raw, message)


def authorization(
    key: PrivateKey, *, mchid: str, serial_no: str, method: str, path_and_query: str, body: str, timestamp: int
) -> str:
    nonce_str = nonce()
    signature = sign_b64(key, request_message(method, path_and_query, str(timestamp), nonce_str, body))
    return (
        f'{SCHEMA} mchid="{mchid}",nonce_str="{nonce_str}",signature="{signature}",'
        f'timestamp="{timestamp}",serial_no="{serial_no}"'
    )


_PARAM = re.compile(r'\s*([a-z_]+)="([^"]*)"\s*')


def parse_authorization(header: str) -> dict[str, str]:
    schema, _, rest = header.strip().partition(" ")
    if schema != SCHEMA:
        raise WireError(f"authorization schema is not {SCHEMA}")
    params: dict[str, str] = {}
    for part in rest.split(","):
        match = _PARAM.fullmatch(part)
        if match is None:
            raise WireError("malformed authorization parameter")
        params[match.group(1)] = match.group(2)
    missing = {"mchid", "nonce_str", "signature", "timestamp", "serial_no"} - params.keys()
    if missing:
        raise WireError(f"authorization lacks {', '.join(sorted(missing))}")
    return params


def signed_headers(key: PrivateKey, serial: str, body: bytes, timestamp: int) -> dict[str, str]:
    nonce_str = nonce()
    return {
        "Wechatpay-Timestamp": str(timestamp),
        "Wechatpay-Nonce": nonce_str,
        "Wechatpay-Serial": serial,
        "Wechatpay-Signature": sign_b64(key, response_message(str(timestamp), nonce_str, body)),
        "Wechatpay-Signature-Type": SCHEMA,
    }


def verify_signed(
    keys: dict[str, bytes], headers: dict[str, str], body: bytes, *, now: datetime, max_age: int | None
) -> None:
    """Raises SIGN_ERROR unless ``headers`` sign ``body`` with a known key and (when ``max_age``) are fresh."""
    h = {k.lower(): v for k, v in headers.items()}
    timestamp, nonce_str = h.get("wechatpay-timestamp", ""), h.get("wechatpay-nonce", "")
    serial, signature = h.get("wechatpay-serial", ""), h.get("wechatpay-signature", "")
    if not (timestamp and nonce_str and serial and signature):
        raise SourceRejected(c.SOURCE, c.SIGN_ERROR, "unsigned: Wechatpay-* headers missing")
    pem = keys.get(serial)
    if pem is None:
        raise SourceRejected(c.SOURCE, c.SIGN_ERROR, f"unknown Wechatpay-Serial {serial}")
    if not timestamp.isdigit():
        raise SourceRejected(c.SOURCE, c.SIGN_ERROR, "Wechatpay-Timestamp is not a number")
    if max_age is not None and abs(now.timestamp() - int(timestamp)) > max_age:
        raise SourceRejected(c.SOURCE, c.SIGN_ERROR, "stale or future Wechatpay-Timestamp")
    if not verify_b64(load_public_key(pem), signature, response_message(timestamp, nonce_str, body)):
        raise SourceRejected(c.SOURCE, c.SIGN_ERROR, "Wechatpay-Signature does not verify")


def pay_sign(key: PrivateKey, appid: str, timestamp: str, nonce_str: str, package: str) -> str:
    return sign_b64(key, f"{appid}\n{timestamp}\n{nonce_str}\n{package}\n".encode())


def mini_program_payment(merchant: c.MerchantConfig, prepay_id: str, now: datetime) -> dict[str, str]:
    timestamp, nonce_str, package = str(int(now.timestamp())), nonce(), f"prepay_id={prepay_id}"
    key = load_private_key(merchant.private_key_pem)
    return {
        "appId": merchant.appid,
        "timeStamp": timestamp,
        "nonceStr": nonce_str,
        "package": package,
        "signType": "RSA",
        "paySign": pay_sign(key, merchant.appid, timestamp, nonce_str, package),
    }


# --- notification resources ------------------------------------------------------------------------


def encrypt_resource(apiv3_key: bytes, plaintext: bytes, associated_data: str, original_type: str) -> dict[str, str]:
    nonce_str = nonce(12)
    sealed = Sealer("A256GCM", apiv3_key).seal(plaintext, associated_data.encode(), nonce=nonce_str.encode())
    return {
        "original_type": original_type,
        "algorithm": AEAD,
        "ciphertext": base64.b64encode(sealed[12:]).decode(),
        "associated_data": associated_data,
        "nonce": nonce_str,
    }


def decrypt_resource(apiv3_key: bytes, resource: Any) -> bytes:
    if not isinstance(resource, dict) or resource.get("algorithm") != AEAD:
        raise WireError(f"resource is not {AEAD}")
    nonce_str, ciphertext = resource.get("nonce"), resource.get("ciphertext")
    aad = resource.get("associated_data") or ""
    if not isinstance(nonce_str, str) or not isinstance(ciphertext, str) or not isinstance(aad, str):
        raise WireError("resource lacks nonce or ciphertext")
    try:
        body = base64.b64decode(ciphertext, validate=True)
        return Sealer("A256GCM", apiv3_key).open(nonce_str.encode() + body, aad.encode())
    except (ValueError, CryptoError) as exc:
        raise WireError("resource does not decrypt with the APIv3 key") from exc


def parse_notification(
    merchant: c.MerchantConfig, headers: dict[str, str], body: bytes, now: datetime
) -> c.Notification:
    verify_signed(merchant.verifying_keys(), headers, body, now=now, max_age=c.NOTIFICATION_MAX_AGE_SECONDS)
    try:
        envelope = json.loads(body)
        if not isinstance(envelope, dict):
            raise WireError("notification is not an object")
        plain = json.loads(decrypt_resource(merchant.apiv3_key, envelope.get("resource")))
        event_type = str(envelope["event_type"])
        transaction = refund = None
        if event_type.startswith("TRANSACTION."):
            transaction = to_transaction(plain)
            if (transaction.mchid, transaction.appid) != (merchant.mchid, merchant.appid):
                raise WireError("the transaction is another merchant's")
        elif event_type.startswith("REFUND."):
            refund = to_refund(plain)
        else:
            raise WireError(f"unknown event_type {event_type}")
        return c.Notification(
            id=str(envelope["id"]),
            event_type=event_type,
            create_time=parse_time(envelope["create_time"]),
            summary=str(envelope.get("summary", "")),
            transaction=transaction,
            refund=refund,
        )
    except (WireError, ValueError, KeyError, TypeError) as exc:
        raise SourceRejected(c.SOURCE, c.SIGN_ERROR, f"unusable notification: {exc}") from None


# --- JSON bodies -------------------------------------------------------------------------------------


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise WireError(f"not an integer amount: {value!r}")
    return value


def transaction_json(t: c.Transaction) -> dict[str, Any]:
    out: dict[str, Any] = {
        "appid": t.appid,
        "mchid": t.mchid,
        "out_trade_no": t.out_trade_no,
        "trade_type": t.trade_type,
        "trade_state": t.trade_state,
        "trade_state_desc": t.trade_state_desc,
        "amount": {"total": t.amount_fen, "currency": "CNY"},
    }
    if t.transaction_id is not None:
        out["transaction_id"] = t.transaction_id
        out["bank_type"] = "OTHERS"
    if t.payer_total_fen is not None:
        out["amount"].update(payer_total=t.payer_total_fen, payer_currency="CNY")
    if t.payer_openid is not None:
        out["payer"] = {"openid": t.payer_openid}
    if t.success_time is not None:
        out["success_time"] = rfc3339(t.success_time)
    return out


def to_transaction(d: Any) -> c.Transaction:
    if not isinstance(d, dict):
        raise WireError("transaction is not an object")
    try:
        amount = d["amount"]
        payer = d.get("payer") or {}
        return c.Transaction(
            appid=str(d["appid"]),
            mchid=str(d["mchid"]),
            out_trade_no=str(d["out_trade_no"]),
            transaction_id=d.get("transaction_id") or None,
            trade_state=str(d["trade_state"]),
            trade_state_desc=str(d.get("trade_state_desc", "")),
            amount_fen=_int(amount["total"]),
            payer_total_fen=_int(amount["payer_total"]) if "payer_total" in amount else None,
            payer_openid=payer.get("openid") or None,
            success_time=parse_time(d["success_time"]) if d.get("success_time") else None,
            trade_type=str(d.get("trade_type") or ""),  # not in every answer: "" when not said
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise WireError(f"transaction lacks {exc}") from exc


def refund_json(r: c.Refund, mchid: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "refund_id": r.refund_id,
        "out_refund_no": r.out_refund_no,
        "transaction_id": r.transaction_id,
        "out_trade_no": r.out_trade_no,
        "channel": "ORIGINAL",
        "user_received_account": r.user_received_account,
        "create_time": rfc3339(r.create_time),
        "status": r.status,
        "amount": {
            "total": r.total_fen, "refund": r.refund_fen, "payer_total": r.total_fen,
            "payer_refund": r.refund_fen, "currency": "CNY",
        },
    }
    if r.success_time is not None:
        out["success_time"] = rfc3339(r.success_time)
    if mchid is not None:  # the notification's form: mchid, refund_status
        out["mchid"] = mchid
        out["refund_status"] = out.pop("status")
    return out


def to_refund(d: Any) -> c.Refund:
    if not isinstance(d, dict):
        raise WireError("refund is not an object")
    try:
        amount = d["amount"]
        return c.Refund(
            refund_id=str(d["refund_id"]),
            out_refund_no=str(d["out_refund_no"]),
            transaction_id=str(d["transaction_id"]),
            out_trade_no=str(d["out_trade_no"]),
            status=str(d.get("status") or d["refund_status"]),
            refund_fen=_int(amount["refund"]),
            total_fen=_int(amount["total"]),
            user_received_account=str(d.get("user_received_account", "")),
            create_time=parse_time(d["create_time"]) if d.get("create_time") else parse_time(d["success_time"]),
            success_time=parse_time(d["success_time"]) if d.get("success_time") else None,
        )
    except (KeyError, TypeError) as exc:
        raise WireError(f"refund lacks {exc}") from exc


# --- the trade bill ----------------------------------------------------------------------------------

BILL_HEADER = (
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,"
    "货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,"
    "商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注"
)
BILL_SUMMARY_HEADER = "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"
_FIELDS = len(BILL_HEADER.split(","))


def _cell(value: str) -> str:
    return "`" + value.replace(",", "，").replace("\n", " ")


def format_bill(lines: list[c.BillLine]) -> str:
    rows = [BILL_HEADER]
    for ln in lines:
        refund = ln.trade_state == "REFUND"
        fields = [
            ln.trade_time.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S"), ln.appid, ln.mchid, "0", "",
            ln.transaction_id, ln.out_trade_no, ln.openid, ln.trade_type, ln.trade_state, "OTHERS", "CNY",
            yuan(ln.settlement_total_fen), "0.00", ln.refund_id or "0", ln.out_refund_no or "0",
            yuan(ln.refund_fen), "0.00", "ORIGINAL" if refund else "", ln.refund_status, ln.description, "",
            "0.00000", "0.00%", yuan(ln.order_fen), yuan(ln.refund_fen), "",
        ]
        rows.append(",".join(_cell(f) for f in fields))
    paid = sum(ln.settlement_total_fen for ln in lines if ln.trade_state != "REFUND")
    refunded = sum(ln.refund_fen for ln in lines)
    ordered = sum(ln.order_fen for ln in lines if ln.trade_state != "REFUND")
    rows.append(BILL_SUMMARY_HEADER)
    summary = [str(len(lines)), yuan(paid), yuan(refunded), "0.00", "0.00000", yuan(ordered), yuan(refunded)]
    rows.append(",".join(_cell(f) for f in summary))
    return "\r\n".join(rows) + "\r\n"


def parse_bill(text: str) -> list[c.BillLine]:
    """Parses a bill and checks its summary row against its rows (count, paid and refunded fen)."""
    rows = [r for r in text.replace("\r\n", "\n").split("\n") if r.strip()]
    if len(rows) < 3 or rows[0].lstrip("\ufeff") != BILL_HEADER or rows[-2] != BILL_SUMMARY_HEADER:
        raise WireError("not a trade bill (headers missing)")

    def cells(row: str, n: int) -> list[str]:
        parts = row.split(",")
        if len(parts) != n or not all(p.startswith("`") for p in parts):
            raise WireError("bill row with unexpected fields")
        return [p[1:] for p in parts]

    lines = []
    for row in rows[1:-2]:
        f = cells(row, _FIELDS)
        try:
            at = datetime.strptime(f[0], "%Y-%m-%d %H:%M:%S").replace(tzinfo=SHANGHAI)
        except ValueError as exc:
            raise WireError(f"bill time {f[0]!r}") from exc
        lines.append(
            c.BillLine(
                trade_time=at, appid=f[1], mchid=f[2], transaction_id=f[5], out_trade_no=f[6], openid=f[7],
                trade_type=f[8], trade_state=f[9], settlement_total_fen=fen_of_yuan(f[12]),
                refund_id="" if f[14] == "0" else f[14], out_refund_no="" if f[15] == "0" else f[15],
                refund_fen=fen_of_yuan(f[16]), refund_status=f[19], description=f[20],
                order_fen=fen_of_yuan(f[24]),
            )
        )
    summary = cells(rows[-1], 7)
    paid = sum(ln.settlement_total_fen for ln in lines if ln.trade_state != "REFUND")
    refunded = sum(ln.refund_fen for ln in lines)
    if (int(summary[0]), fen_of_yuan(summary[1]), fen_of_yuan(summary[2])) != (len(lines), paid, refunded):
        raise WireError("bill summary does not add up to its rows")
    return lines


def parse_bill_date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise WireError(f"bill_date {value!r} is not YYYY-MM-DD") from exc
