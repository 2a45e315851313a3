"""``HttpWeChatPay``: the ``WeChatPay`` contract over WeChat Pay API v3 (the real one, or the sandbox
served by ``served.py``).

Every request is signed (``Authorization: WECHATPAY2-SHA256-RSA2048 …``); every answer must carry a
valid ``Wechatpay-Signature`` from a key the merchant trusts, or it is not believed (an unsigned or
forged answer is ``SourceUnavailable``: the outcome is unknown). Refusals (4xx with
``{"code", "message"}``) become ``SourceRejected`` with WeChat Pay's code. Each call has a timeout;
only GETs (query, refund query, bill) are retried; a circuit breaker (the HIS client's) stops calling
a WeChat Pay that keeps failing. httpx errors never leave this module.

It also speaks the medical-insurance orders (``WeChatMedInsPay``, ``/v3/med-ins/…``): the payer's
name and ID digest are encrypted with WeChat Pay's public key, named in ``Wechatpay-Serial``.
"""

from __future__ import annotations

import json
import logging
from datetime import date, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit

import httpx

from datasources.breaker import AttemptFailed, CircuitBreaker
from datasources.clock import Clock, SystemClock
from datasources.crypto.primitives import digest, load_private_key
from datasources.errors import SourceRejected, SourceUnavailable
from datasources.wechatpay import contract as c
from datasources.wechatpay import medins_contract as m
from datasources.wechatpay import medins_wire, wire

SOURCE = c.SOURCE
log = logging.getLogger(__name__)
RESPONSE_MAX_AGE_SECONDS = 300


_Failed = AttemptFailed


class HttpWeChatPay:
    def __init__(
        self,
        base_url: str,
        merchant: c.MerchantConfig,
        *,
        timeout: float,
        clock: Clock | None = None,
        retries: int = 2,
        backoff_seconds: float = 0.05,
        failure_threshold: int = 5,
        cooldown_seconds: float = 10.0,
    ) -> None:
        self.merchant = merchant
        self.clock: Clock = clock or SystemClock()
        self.retries = retries
        self.backoff_seconds = backoff_seconds
        self.breaker = CircuitBreaker(SOURCE, threshold=failure_threshold, cooldown=cooldown_seconds)
        self._key = load_private_key(merchant.private_key_pem)
        self._base = base_url.rstrip("/")
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(timeout))

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- transport --------------------------------------------------------------------------------
    def _authorization(self, method: str, target: str, body: str) -> str:
        return wire.authorization(
            self._key, mchid=self.merchant.mchid, serial_no=self.merchant.certificate_serial, method=method,
            path_and_query=target, body=body, timestamp=int(self.clock.now().timestamp()),
        )

    async def _call(
        self, method: str, path: str, *, query: dict[str, str] | None = None, payload: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """Sends one API call; returns its verified JSON (None for 204)."""
        target = path + ("?" + urlencode(query) if query else "")
        body = "" if payload is None else json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        attempts = 1 + (self.retries if method == "GET" else 0)
        response = await self.breaker.call(
            f"{method} {path}",
            lambda: self._attempt(method, target, body, headers),
            tries=attempts,
            backoff_s=self.backoff_seconds,
        )
        return self._result(method, path, response)

    async def _attempt(
        self, method: str, target: str, body: str, extra: dict[str, str] | None = None
    ) -> httpx.Response:
        headers = {
            "Authorization": self._authorization(method, target, body),
            "Accept": "application/json",
            "User-Agent": "smart-hospital-bff",
            **(extra or {}),
        }
        if method == "POST":
            headers["Content-Type"] = "application/json"
        try:
            response = await self._http.request(method, self._base + target, content=body.encode(), headers=headers)
        except httpx.TimeoutException:
            raise _Failed("timed out") from None
        except httpx.TransportError as exc:
            raise _Failed(f"transport error {type(exc).__name__}") from None
        if response.status_code >= 500 or response.status_code == 429:
            raise _Failed(f"HTTP {response.status_code}")
        return response

    def _result(self, method: str, path: str, response: httpx.Response) -> Any:
        try:
            wire.verify_signed(
                self.merchant.verifying_keys(), dict(response.headers), response.content, now=self.clock.now(),
                max_age=RESPONSE_MAX_AGE_SECONDS,
            )
        except SourceRejected as exc:
            # Not WeChat Pay's word (a proxy, a forger, a wrong URL): nothing in it can be believed.
            raise SourceUnavailable(SOURCE, f"{method} {path}: answer not verified ({exc.detail})") from None
        if response.status_code == 204:
            return None
        try:
            data = response.json()
        except ValueError:
            raise SourceUnavailable(SOURCE, f"{method} {path}: HTTP {response.status_code}, not JSON") from None
        if response.status_code >= 400:
            code = data.get("code") if isinstance(data, dict) else None
            message = data.get("message") if isinstance(data, dict) else None
            raise SourceRejected(
                SOURCE, code if isinstance(code, str) else f"HTTP_{response.status_code}",
                message if isinstance(message, str) else "",
            )
        return data

    def _decode(self, what: str, decoder: Any, data: Any) -> Any:
        try:
            return decoder(data)
        except (wire.WireError, ValueError) as exc:
            raise SourceUnavailable(SOURCE, f"{what}: unreadable answer ({exc})") from None

    # --- the contract ---------------------------------------------------------------------------------
    async def prepay_jsapi(
        self,
        out_trade_no: str,
        description: str,
        amount_fen: int,
        payer_openid: str,
        notify_url: str,
        expires_at: datetime,
    ) -> c.Prepay:
        data = await self._call(
            "POST", "/v3/pay/transactions/jsapi",
            payload={
                "appid": self.merchant.appid, "mchid": self.merchant.mchid, "description": description,
                "out_trade_no": out_trade_no, "time_expire": wire.rfc3339(expires_at), "notify_url": notify_url,
                "amount": {"total": amount_fen, "currency": "CNY"}, "payer": {"openid": payer_openid},
            },
        )
        prepay_id = data.get("prepay_id") if isinstance(data, dict) else None
        if not isinstance(prepay_id, str) or not prepay_id:
            raise SourceUnavailable(SOURCE, "prepay: answer without prepay_id")
        return c.Prepay(prepay_id)

    async def prepay_native(
        self,
        out_trade_no: str,
        description: str,
        amount_fen: int,
        notify_url: str,
        expires_at: datetime,
    ) -> c.NativePrepay:
        data = await self._call(
            "POST", "/v3/pay/transactions/native",
            payload={
                "appid": self.merchant.appid, "mchid": self.merchant.mchid, "description": description,
                "out_trade_no": out_trade_no, "time_expire": wire.rfc3339(expires_at), "notify_url": notify_url,
                "amount": {"total": amount_fen, "currency": "CNY"},
            },
        )
        code_url = data.get("code_url") if isinstance(data, dict) else None
        if not isinstance(code_url, str) or not code_url.startswith("weixin://"):
            raise SourceUnavailable(SOURCE, "prepay_native: answer without a weixin:// code_url")
        return c.NativePrepay(code_url)

    def mini_program_payment(self, prepay_id: str) -> dict[str, str]:
        return wire.mini_program_payment(self.merchant, prepay_id, self.clock.now())

    async def query(self, out_trade_no: str) -> c.Transaction:
        data = await self._call(
            "GET", f"/v3/pay/transactions/out-trade-no/{quote(out_trade_no, safe='')}",
            query={"mchid": self.merchant.mchid},
        )
        return self._decode("query", wire.to_transaction, data)  # type: ignore[no-any-return]

    async def close(self, out_trade_no: str) -> None:
        await self._call(
            "POST", f"/v3/pay/transactions/out-trade-no/{quote(out_trade_no, safe='')}/close",
            payload={"mchid": self.merchant.mchid},
        )

    async def refund(
        self,
        out_trade_no: str,
        out_refund_no: str,
        refund_fen: int,
        total_fen: int,
        reason: str,
        notify_url: str,
    ) -> c.Refund:
        payload: dict[str, Any] = {
            "out_trade_no": out_trade_no, "out_refund_no": out_refund_no,
            "amount": {"refund": refund_fen, "total": total_fen, "currency": "CNY"},
        }
        if reason:
            payload["reason"] = reason
        if notify_url:
            payload["notify_url"] = notify_url
        data = await self._call("POST", "/v3/refund/domestic/refunds", payload=payload)
        return self._decode("refund", wire.to_refund, data)  # type: ignore[no-any-return]

    async def query_refund(self, out_refund_no: str) -> c.Refund:
        data = await self._call("GET", f"/v3/refund/domestic/refunds/{quote(out_refund_no, safe='')}")
        return self._decode("query_refund", wire.to_refund, data)  # type: ignore[no-any-return]

    async def trade_bill(self, bill_date: date) -> list[c.BillLine]:
        data = await self._call(
            "GET", "/v3/bill/tradebill", query={"bill_date": bill_date.isoformat(), "bill_type": "ALL"}
        )
        if not isinstance(data, dict) or not isinstance(data.get("download_url"), str):
            raise SourceUnavailable(SOURCE, "trade_bill: answer without download_url")
        content = await self._download(data["download_url"])
        if data.get("hash_type") != "SHA1" or digest("SHA1", content).hex() != str(data.get("hash_value", "")).lower():
            raise SourceUnavailable(SOURCE, "trade_bill: the file does not match its hash_value")
        try:
            return wire.parse_bill(content.decode("utf-8-sig"))
        except (wire.WireError, UnicodeDecodeError) as exc:
            raise SourceUnavailable(SOURCE, f"trade_bill: unreadable bill ({exc})") from None

    async def _download(self, url: str) -> bytes:
        """The bill file: signed like any call (over its path and query), answered unsigned."""
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        if not url.startswith(self._base):
            raise SourceUnavailable(SOURCE, "trade_bill: download_url is not on the API's host")
        response = await self.breaker.call(
            "bill download",
            lambda: self._attempt("GET", target, ""),
            tries=1 + self.retries,
            backoff_s=self.backoff_seconds,
        )
        if response.status_code != 200:
            return self._result("GET", parts.path, response)  # type: ignore[no-any-return]
        return response.content

    def parse_notification(self, headers: dict[str, str], body: bytes) -> c.Notification:
        return wire.parse_notification(self.merchant, headers, body, self.clock.now())

    # --- medical-insurance orders ---------------------------------------------------------------------
    async def create_med_ins_order(self, request: m.MedInsOrderRequest) -> m.MedInsOrder:
        payload = medins_wire.order_request_json(
            request, self.merchant.appid, self.merchant.wechatpay_public_key_pem
        )
        data = await self._call(
            "POST", "/v3/med-ins/orders", payload=payload,
            headers={"Wechatpay-Serial": self.merchant.wechatpay_public_key_id},
        )
        return self._decode("create_med_ins_order", medins_wire.to_order, data)  # type: ignore[no-any-return]

    async def query_med_ins_order(self, mix_trade_no: str) -> m.MedInsOrder:
        data = await self._call("GET", f"/v3/med-ins/orders/mix-trade-no/{quote(mix_trade_no, safe='')}")
        return self._decode("query_med_ins_order", medins_wire.to_order, data)  # type: ignore[no-any-return]

    async def query_med_ins_order_by_out_trade_no(self, out_trade_no: str) -> m.MedInsOrder:
        data = await self._call("GET", f"/v3/med-ins/orders/out-trade-no/{quote(out_trade_no, safe='')}")
        return self._decode("query_med_ins_order", medins_wire.to_order, data)  # type: ignore[no-any-return]

    async def notify_med_ins_refund(self, mix_trade_no: str, refund: m.MedInsRefund) -> None:
        await self._call(
            "POST", "/v3/med-ins/refunds/notify", query={"mix_trade_no": mix_trade_no},
            payload=medins_wire.refund_json(refund),
        )

    def med_ins_payment(self, mix_trade_no: str, prepay_id: str | None) -> dict[str, str]:
        return medins_wire.med_ins_payment(self.merchant, mix_trade_no, prepay_id, self.clock.now())

    def parse_med_ins_notification(self, headers: dict[str, str], body: bytes) -> m.MedInsNotification:
        return medins_wire.parse_notification(self.merchant, headers, body, self.clock.now())


if TYPE_CHECKING:  # mypy proves HttpWeChatPay keeps to both contracts
    _conforms: c.WeChatPay = HttpWeChatPay("https://api.mch.weixin.qq.com", None, timeout=1.0)  # type: ignore[arg-type]
    _conforms_med_ins: m.WeChatMedInsPay = HttpWeChatPay(
        "https://api.mch.weixin.qq.com", None, timeout=1.0  # type: ignore[arg-type]
    )
