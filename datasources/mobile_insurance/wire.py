"""The envelope of mobile insurance payment 2.0 (医保移动支付 2.0), both directions, in one place.

A request body is ``{appId, encType: "SM4", encData, signType: "SM2", signData, timestamp,
version}``; a reply carries the same fields plus ``code`` and ``message``. The business data
travels only inside ``encData``; ``signData`` covers the plaintext.

Where the rules come from (public material found with the code search; none of it copied):

- Key derivation and ``encData``: the platform's published JavaScript SDK as seen in
  ``star0904/SourceCode`` (``国家医保服务平台--sm国密/fuwu.js``) and the PHP port ``yh/gm``
  (``SM4::encrypt($appId, $appSecret, $message)``). The SM4 key is derived from the app id and
  the app secret: SM4/ECB/PKCS7 of the app secret under the first 16 characters of the app id,
  as upper-case hex, of which the first 16 characters (as UTF-8 bytes) are the key. ``encData``
  is the upper-case hex of SM4/ECB/PKCS7 of the business data as compact JSON with every
  non-ASCII character escaped as ``\\uXXXX``.
- ``signData``: the same SDK, and the rule as the platform's interface document states it (quoted
  in public pages, e.g. blog.csdn.net/wdsfeisng/article/details/125608019 and the Tianjin
  mobile-payment access guide at blog.cachecha.com/csdn/weixin_43585799/131508579.html). Take
  every envelope field except ``signData``, ``encData`` and ``extra``, add ``data`` (the plaintext
  business data), sort the keys by ASCII, skip null and empty values, write ``k=v`` joined by
  ``&`` and append ``&key=<appSecret>`` (the SDK's form of "append the app secret"). ``data`` is
  written as compact JSON with its keys sorted and non-ASCII characters as they are (the SDK's
  ``JSON.stringify``); in it, top-level numbers and booleans become strings, empty arrays and empty
  or null values are dropped, and the objects inside top-level arrays have their keys sorted. The
  string's UTF-8 bytes are signed with SM2-with-SM3 (user id ``1234567812345678``), the raw
  ``r ‖ s`` signature (64 bytes) in base64.

Our choices where the sources are silent or disagree (correct them here, nowhere else):

- The JavaScript SDK is the services platform's (its envelope names the app ``appCode``); the
  mobile payment document's example names it ``appId`` with ``version`` ``2.0.1``, which we send.

- ``timestamp``: the sources disagree (the JavaScript SDK of the services platform sends seconds
  since the epoch; the 2.0.1 document's example shows ``20200207175759``). We follow the 2.0.1
  example: ``yyyyMMddHHmmss`` in Beijing time (``timestamp``); no freshness window is enforced.
- A reply is signed by the platform's key by the same rule, ``code`` and ``message`` included;
  a rejection carries the stable code of ``contract.py`` in ``code`` and no ``encData``.
- Amounts in the business data are yuan strings with two decimals (``"12.50"``); numbers are
  accepted on reading too, always through ``Decimal``.
- One POST path per transaction, as the platform names its hospital-side APIs (``PATHS``),
  recalled from the interface document and not confirmed by the sources above; the
  authorization lookup path is ours.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from datasources.clock import SHANGHAI
from datasources.crypto.primitives import (
    CryptoError,
    PrivateKey,
    PublicKey,
    sign,
    sm4_ecb_decrypt,
    sm4_ecb_encrypt,
    verify,
)
from datasources.money import AmountError, fen_from_yuan, yuan_text

ENC_TYPE = "SM4"
SIGN_TYPE = "SM2"
VERSION = "2.0.1"
OK = "0"
UNSIGNED_FIELDS = frozenset({"signData", "encData", "extra"})

# Transaction → POST path of the platform's hospital-side API.
PATHS: dict[str, str] = {
    "auth": "/org/local/api/hos/auth_query",
    "6201": "/org/local/api/hos/uldFeeInfo",
    "6202": "/org/local/api/hos/pay_order",
    "6203": "/org/local/api/hos/refund_Order",
    "6301": "/org/local/api/hos/query_order_info",
    "6401": "/org/local/api/hos/revoke_order",
}
AUTH_PAGE = "/mipay/auth"


class EnvelopeError(ValueError):
    """An envelope that is malformed, does not decrypt, or whose signature does not verify."""

    def __init__(self, message: str, *, bad_signature: bool = False) -> None:
        super().__init__(message)
        self.bad_signature = bad_signature


@dataclass(frozen=True, slots=True)
class Party:
    """What one side of the exchange holds: the app's id and secret, its own key, the peer's key."""

    app_id: str
    app_secret: str
    own_key: PrivateKey
    peer_key: PublicKey


def sm4_key(app_id: str, app_secret: str) -> bytes:
    if len(app_id) < 16:
        raise CryptoError("the app id has fewer than 16 characters: no SM4 key can be derived from it")
    derived = sm4_ecb_encrypt(app_id[:16].encode(), app_secret.encode())
    return binascii.hexlify(derived).decode().upper()[:16].encode()


def data_json(data: Mapping[str, Any], *, ascii_only: bool = True) -> str:
    """Compact JSON: escaped to ASCII for ``encData`` (as the SDK does), raw for the signing string."""
    # default=str: a number read as Decimal inside a nested object is written back as a string, which
    # is not what the peer signed; our own data carries amounts as strings, so this only bites peers.
    return json.dumps(data, ensure_ascii=ascii_only, separators=(",", ":"), default=str)


def _sorted(obj: Any) -> Any:
    return {k: obj[k] for k in sorted(obj)} if isinstance(obj, dict) else obj


def _signed_data(data: Mapping[str, Any]) -> str:
    cleaned: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, int | float | Decimal):
            value = str(value)
        elif isinstance(value, list):
            value = [_sorted(item) for item in value]
        if value is None or value == "" or value == []:
            continue
        cleaned[key] = value
    return data_json(_sorted(cleaned), ascii_only=False)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def signing_string(fields: Mapping[str, Any], data: Mapping[str, Any] | None, app_secret: str) -> str:
    """The string ``signData`` covers: sorted ``k=v`` of the envelope and ``data``, then ``key=``."""
    params = {k: v for k, v in fields.items() if k not in UNSIGNED_FIELDS and v is not None}
    if data is not None:
        params["data"] = data
    parts = []
    for key in sorted(params):
        value = params[key]
        if key == "data":
            parts.append(f"data={_signed_data(value)}")
        elif _text(value) != "":
            parts.append(f"{key}={_text(value)}")
    parts.append(f"key={app_secret}")
    return "&".join(parts)


def timestamp(at: datetime) -> str:
    return at.astimezone(SHANGHAI).strftime("%Y%m%d%H%M%S")


def seal(party: Party, data: Mapping[str, Any] | None, timestamp: str | int, **extra_fields: str) -> dict[str, Any]:
    """A signed envelope for ``data`` (``None`` for a rejection, which carries no ``encData``)."""
    fields: dict[str, Any] = {
        "appId": party.app_id,
        "encType": ENC_TYPE,
        "signType": SIGN_TYPE,
        "timestamp": str(timestamp),
        "version": VERSION,
        **extra_fields,
    }
    signature = sign(party.own_key, signing_string(fields, data, party.app_secret).encode(), encoding="raw")
    fields["signData"] = base64.b64encode(signature).decode()
    if data is not None:
        key = sm4_key(party.app_id, party.app_secret)
        fields["encData"] = binascii.hexlify(sm4_ecb_encrypt(key, data_json(data).encode())).decode().upper()
    return fields


def open_envelope(party: Party, envelope: Any) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(fields, data) of an envelope from the peer, after checking its signature with the peer's key."""
    if not isinstance(envelope, dict):
        raise EnvelopeError("the envelope is not a JSON object")
    fields = {k: v for k, v in envelope.items() if k != "encData"}
    for name in ("appId", "encType", "signType", "signData", "timestamp", "version"):
        if not isinstance(fields.get(name), str | int) or isinstance(fields.get(name), bool):
            raise EnvelopeError(f"the envelope has no {name}")
    if fields["appId"] != party.app_id:
        raise EnvelopeError(f"unknown appId {fields['appId']!r}", bad_signature=True)
    if fields["encType"] != ENC_TYPE or fields["signType"] != SIGN_TYPE:
        raise EnvelopeError("only encType SM4 and signType SM2 are spoken here")
    data: dict[str, Any] | None = None
    enc = envelope.get("encData")
    if enc is not None:
        if not isinstance(enc, str):
            raise EnvelopeError("encData is not a string")
        try:
            plain = sm4_ecb_decrypt(sm4_key(party.app_id, party.app_secret), binascii.unhexlify(enc))
            parsed = json.loads(plain, parse_float=Decimal)
        except (CryptoError, binascii.Error, ValueError) as exc:
            raise EnvelopeError("encData does not decrypt to JSON with this app's key", bad_signature=True) from exc
        if not isinstance(parsed, dict):
            raise EnvelopeError("encData is not a JSON object")
        data = parsed
    try:
        signature = base64.b64decode(str(fields["signData"]), validate=True)
    except binascii.Error as exc:
        raise EnvelopeError("signData is not base64", bad_signature=True) from exc
    if not verify(party.peer_key, signature, signing_string(fields, data, party.app_secret).encode()):
        raise EnvelopeError("signData does not verify with the peer's key", bad_signature=True)
    return fields, data


# --- amounts -------------------------------------------------------------------------------------

_CENT = Decimal("0.01")


yuan = yuan_text


def fen(value: Any, name: str) -> int:
    """A yuan amount (string or number, never through float) as integer fen; refuses fractions of a fen."""
    try:
        return fen_from_yuan(value)
    except AmountError as exc:
        raise EnvelopeError(f"{name}: {exc}") from None
