"""The med-ins orders' wire format (``/v3/med-ins/…``), on top of ``wire.py``'s signatures and AEAD.

- The request body carries ``payer.name``/``payer.id_digest`` (and ``relative``'s) encrypted with
  RSA-OAEP (SHA-1, MGF1-SHA-1, as WeChat Pay's sensitive-field encryption is) under WeChat Pay's
  public key, base64; the request names that key in ``Wechatpay-Serial``. ``card_type`` is plain.
  The primitives' ``wrap`` is OAEP-SHA-256, hence the padding here.
- Amounts are integer fen; times RFC 3339 with +08:00.
"""

from __future__ import annotations

import base64
import json
from dataclasses import fields
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from datasources.crypto.primitives import load_private_key, load_public_key
from datasources.errors import SourceRejected
from datasources.wechatpay import contract as c
from datasources.wechatpay import medins_contract as m
from datasources.wechatpay import wire
from datasources.wechatpay.wire import WireError

# WeChat Pay's documented padding (RSA/ECB/OAEPWithSHA-1AndMGF1Padding); OAEP with SHA-1 stays sound.
_OAEP_SHA1 = padding.OAEP(
    mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None  # noqa: S303
)
_FEES = (
    "total_fee", "med_ins_gov_fee", "med_ins_self_fee", "med_ins_other_fee", "med_ins_cash_fee", "wechat_pay_cash_fee",
)
_REQUIRED_IN_ANSWER = ("mix_trade_no", "mix_pay_status", "self_pay_status", "med_ins_pay_status")
_OPTIONAL_TEXT = (
    "pay_order_id", "pay_auth_no", "geo_location", "prepay_id", "passthrough_request_content", "extends", "attach",
    "channel_no",
)


def encrypt_sensitive(public_key_pem: bytes, text: str) -> str:
    key = load_public_key(public_key_pem)
    if not isinstance(key, rsa.RSAPublicKey):
        raise WireError("sensitive fields are encrypted with an RSA key")
    return base64.b64encode(key.encrypt(text.encode(), _OAEP_SHA1)).decode()


def decrypt_sensitive(private_key_pem: bytes, ciphertext: Any) -> str:
    key = load_private_key(private_key_pem)
    if not isinstance(key, rsa.RSAPrivateKey) or not isinstance(ciphertext, str):
        raise WireError("a sensitive field is not an RSA-OAEP ciphertext")
    try:
        return key.decrypt(base64.b64decode(ciphertext, validate=True), _OAEP_SHA1).decode()
    except ValueError:
        raise WireError("a sensitive field does not decrypt with WeChat Pay's key (sent in clear?)") from None


def _person_json(p: m.Person, public_key_pem: bytes) -> dict[str, str]:
    return {
        "name": encrypt_sensitive(public_key_pem, p.name),
        "id_digest": encrypt_sensitive(public_key_pem, p.id_digest),
        "card_type": p.card_type,
    }


def _to_person(d: Any, private_key_pem: bytes) -> m.Person:
    if not isinstance(d, dict):
        raise WireError("payer is not an object")
    return m.Person(
        decrypt_sensitive(private_key_pem, d.get("name")),
        decrypt_sensitive(private_key_pem, d.get("id_digest")),
        str(d.get("card_type", "ID_CARD")),
    )


def _fee(d: dict[str, Any], key: str) -> int:
    value = d.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int):
        raise WireError(f"{key} is not an integer number of fen")
    return value


def order_request_json(r: m.MedInsOrderRequest, appid: str, public_key_pem: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {
        "mix_pay_type": r.mix_pay_type, "order_type": r.order_type, "appid": appid, "openid": r.openid,
        "payer": _person_json(r.payer, public_key_pem), "pay_for_relatives": r.pay_for_relatives,
        "out_trade_no": r.out_trade_no, "serial_no": r.serial_no, "city_id": r.city_id,
        "med_inst_name": r.med_inst_name, "med_inst_no": r.med_inst_no, "callback_url": r.callback_url,
        "med_ins_test_env": r.med_ins_test_env,
    }
    if r.relative is not None:
        out["relative"] = _person_json(r.relative, public_key_pem)
    for key in _FEES:
        value = getattr(r, key)
        if key == "total_fee" or key == "wechat_pay_cash_fee" or r.mix_pay_type != "CASH_ONLY" or value:
            out[key] = value  # a CASH_ONLY order sends no med_ins_* amounts
    if r.cash_add_detail:
        out["cash_add_detail"] = [{"cash_add_fee": a.cash_add_fee, "cash_add_type": a.cash_add_type}
                                  for a in r.cash_add_detail]
    if r.cash_reduce_detail:
        out["cash_reduce_detail"] = [{"cash_reduce_fee": x.cash_reduce_fee, "cash_reduce_type": x.cash_reduce_type}
                                     for x in r.cash_reduce_detail]
    if r.med_ins_order_create_time is not None:
        out["med_ins_order_create_time"] = wire.rfc3339(r.med_ins_order_create_time)
    for key in _OPTIONAL_TEXT:
        if getattr(r, key) is not None:
            out[key] = getattr(r, key)
    return out


def to_order_request(d: dict[str, Any], private_key_pem: bytes) -> m.MedInsOrderRequest:
    """The served side's reading of a create request (payer decrypted with WeChat Pay's own key)."""
    try:
        text = {k: d[k] for k in ("mix_pay_type", "order_type", "openid", "out_trade_no", "serial_no", "city_id",
                                  "med_inst_name", "med_inst_no", "callback_url")}
    except KeyError as exc:
        raise WireError(f"{exc.args[0]} is required") from None
    if not all(isinstance(v, str) for v in text.values()):
        raise WireError("text fields must be strings")
    optional = {k: d.get(k) for k in _OPTIONAL_TEXT}
    if not all(v is None or isinstance(v, str) for v in optional.values()):
        raise WireError("optional text fields must be strings")
    adds, reduces = d.get("cash_add_detail") or [], d.get("cash_reduce_detail") or []
    if not isinstance(adds, list) or not isinstance(reduces, list):
        raise WireError("cash_add_detail and cash_reduce_detail are lists")
    at = d.get("med_ins_order_create_time")
    given: dict[str, Any] = {**text, **optional, **{k: _fee(d, k) for k in _FEES}}
    return m.MedInsOrderRequest(
        **given,
        payer=_to_person(d.get("payer"), private_key_pem),
        relative=_to_person(d["relative"], private_key_pem) if d.get("relative") else None,
        pay_for_relatives=d.get("pay_for_relatives") is True,
        cash_add_detail=tuple(m.CashAdd(_fee(a, "cash_add_fee"), str(a.get("cash_add_type", "DEFAULT_ADD_TYPE")))
                              for a in adds),
        cash_reduce_detail=tuple(
            m.CashReduce(_fee(x, "cash_reduce_fee"), str(x.get("cash_reduce_type", "DEFAULT_REDUCE_TYPE")))
            for x in reduces
        ),
        med_ins_order_create_time=wire.parse_time(at) if at is not None else None,
        med_ins_test_env=d.get("med_ins_test_env") is True,
    )


def order_json(o: m.MedInsOrder) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(o):
        value = getattr(o, f.name)
        if value is None:
            continue
        out[f.name] = wire.rfc3339(value) if isinstance(value, datetime) else value
    return out


def to_order(d: Any) -> m.MedInsOrder:
    if not isinstance(d, dict):
        raise WireError("the order is not an object")
    try:
        values: dict[str, Any] = {}
        for f in fields(m.MedInsOrder):
            value = d.get(f.name)
            if f.name in _FEES:
                values[f.name] = _fee(d, f.name)
            elif f.name == "paid_time":
                values[f.name] = wire.parse_time(value) if value else None
            elif f.name == "med_ins_test_env":
                values[f.name] = value is True
            elif f.name in ("passthrough_response_content", "pay_order_id", "prepay_id", "attach",
                            "med_ins_fail_reason"):
                values[f.name] = str(value) if value is not None else None
            elif f.name in _REQUIRED_IN_ANSWER:
                values[f.name] = str(d[f.name])
            else:  # echoed request fields: believed when present, never required
                values[f.name] = str(d.get(f.name, ""))
        return m.MedInsOrder(**values)
    except KeyError as exc:
        raise WireError(f"the order lacks {exc.args[0]}") from None


def refund_json(r: m.MedInsRefund) -> dict[str, Any]:
    return {
        "med_refund_total_fee": r.med_refund_total_fee, "med_refund_gov_fee": r.med_refund_gov_fee,
        "med_refund_self_fee": r.med_refund_self_fee, "med_refund_other_fee": r.med_refund_other_fee,
        "refund_time": wire.rfc3339(r.refund_time), "out_refund_no": r.out_refund_no,
    }


def to_refund(d: dict[str, Any]) -> m.MedInsRefund:
    out_refund_no = d.get("out_refund_no")
    if not isinstance(out_refund_no, str):
        raise WireError("out_refund_no is required")
    return m.MedInsRefund(
        out_refund_no=out_refund_no,
        **{k: _fee(d, k) for k in ("med_refund_total_fee", "med_refund_gov_fee", "med_refund_self_fee",
                                   "med_refund_other_fee")},
        refund_time=wire.parse_time(d.get("refund_time")),
    )


def med_ins_payment(
    merchant: c.MerchantConfig, mix_trade_no: str, prepay_id: str | None, now: datetime
) -> dict[str, str]:
    out = {"mixTradeNo": mix_trade_no}
    if prepay_id:
        paid = wire.mini_program_payment(merchant, prepay_id, now)
        out.update({k: v for k, v in paid.items() if k != "appId"})
    return out


def parse_notification(
    merchant: c.MerchantConfig, headers: dict[str, str], body: bytes, now: datetime
) -> m.MedInsNotification:
    wire.verify_signed(merchant.verifying_keys(), headers, body, now=now, max_age=c.NOTIFICATION_MAX_AGE_SECONDS)
    try:
        envelope = json.loads(body)
        if not isinstance(envelope, dict):
            raise WireError("notification is not an object")
        if envelope.get("event_type") != m.SUCCESS_EVENT:
            raise WireError(f"not a {m.SUCCESS_EVENT} notification")
        order = to_order(json.loads(wire.decrypt_resource(merchant.apiv3_key, envelope.get("resource"))))
        if order.appid != merchant.appid:
            raise WireError("the order is another app's")
        return m.MedInsNotification(
            id=str(envelope["id"]), event_type=m.SUCCESS_EVENT, create_time=wire.parse_time(envelope["create_time"]),
            summary=str(envelope.get("summary", "")), order=order,
        )
    except (WireError, ValueError, KeyError, TypeError) as exc:
        raise SourceRejected(c.SOURCE, c.SIGN_ERROR, f"unusable notification: {exc}") from None
