"""``HttpAlipay``: the ``Alipay`` contract over Alipay's open platform gateway (format in ``wire.py``).

Every request is signed RSA2 with the merchant key; every answer's ``sign`` is verified with Alipay's
public key over the response node's exact text, taken from the raw body (re-serializing would change
the bytes). Queries and the bill are retried a bounded number of times; writes (create, close,
refund) never are: a write that timed out may have happened (``SourceUnavailable`` says the outcome
is unknown; refund again with the same out_request_no, or query). The HIS client's circuit breaker
stops calls to a gateway that keeps failing. httpx errors never leave this module.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast

import httpx

from datasources.alipay import contract as c
from datasources.alipay import wire
from datasources.breaker import AttemptFailed, CircuitBreaker
from datasources.clock import Clock, SystemClock
from datasources.errors import SourceRejected, SourceUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")


_Failed = AttemptFailed


class HttpAlipay:
    """Implements ``Alipay`` by calling ``POST {gateway_url}`` (e.g. https://openapi.alipay.com/gateway.do)."""

    def __init__(
        self, gateway_url: str, merchant: c.MerchantConfig, *, timeout: float, clock: Clock | None = None,
        retries: int = 2, backoff_seconds: float = 0.05, failure_threshold: int = 5, cooldown_seconds: float = 10.0,
    ) -> None:
        self.gateway_url = gateway_url
        self.merchant = merchant
        self.clock = clock or SystemClock()
        self.retries = retries
        self.backoff_seconds = backoff_seconds
        self.breaker = CircuitBreaker(wire.SOURCE, threshold=failure_threshold, cooldown=cooldown_seconds)
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(timeout))

    async def aclose(self) -> None:
        await self._http.aclose()

    # Transport -------------------------------------------------------------------------------
    async def _guarded(self, what: str, attempt: Callable[[], Awaitable[T]], *, idempotent: bool) -> T:
        tries = 1 + (self.retries if idempotent else 0)
        return await self.breaker.call(what, attempt, tries=tries, backoff_s=self.backoff_seconds)

    def signed_params(self, method: str, biz: Mapping[str, Any], notify_url: str | None = None) -> dict[str, str]:
        params = {
            "app_id": self.merchant.app_id,
            "method": method,
            "format": "JSON",
            "charset": "utf-8",
            "sign_type": "RSA2",
            "timestamp": wire.format_time(self.clock.now()),
            "version": "1.0",
            "biz_content": json.dumps(biz, ensure_ascii=False, separators=(",", ":")),
        }
        if notify_url:
            params["notify_url"] = notify_url
        params["sign"] = wire.sign_params(self.merchant.private_key, params)
        return params

    async def _call(
        self, method: str, biz: Mapping[str, Any], *, idempotent: bool, notify_url: str | None = None
    ) -> dict[str, Any]:
        async def attempt() -> dict[str, Any]:
            params = self.signed_params(method, biz, notify_url)  # a fresh timestamp and sign per attempt
            try:
                response = await self._http.post(self.gateway_url, data=params)
            except httpx.TimeoutException:
                raise _Failed("timed out") from None
            except httpx.TransportError as exc:
                raise _Failed(f"transport error {type(exc).__name__}") from None
            if response.status_code >= 500:
                raise _Failed(f"HTTP {response.status_code}")
            node = self._verified_node(method, response.text, response.status_code)
            if node.get("code") == wire.UNAVAILABLE:
                raise _Failed(f"{node.get('sub_code', '')} {node.get('sub_msg', '')}".strip())
            return node

        node = await self._guarded(method, attempt, idempotent=idempotent)
        if node.get("code") != wire.SUCCESS:
            sub_code, sub_msg = node.get("sub_code"), node.get("sub_msg")
            code = sub_code if isinstance(sub_code, str) and sub_code else str(node.get("code"))
            raise SourceRejected(wire.SOURCE, code, sub_msg if isinstance(sub_msg, str) else "")
        return node

    def _verified_node(self, method: str, body: str, status: int) -> dict[str, Any]:
        name = wire.response_name(method)
        text = wire.node_text(body, name)
        if text is None:
            name, text = "error_response", wire.node_text(body, "error_response")
        if text is None:
            raise _Failed(f"HTTP {status} without an Alipay response")
        node: dict[str, Any] = json.loads(text)
        signature = json.loads(body).get("sign")
        if isinstance(signature, str) and signature:
            if not wire.verify_text(self.merchant.alipay_public_key, signature, text):
                raise _Failed("the response's signature does not verify with Alipay's key")
        elif node.get("code") == wire.SUCCESS:
            raise _Failed("an unsigned success answer")  # never trusted
        return node

    # The contract ---------------------------------------------------------------------------
    async def create_trade(
        self, *, out_trade_no: str, subject: str, amount_fen: int, buyer_id: str, notify_url: str,
        expires_at: datetime,
    ) -> c.CreatedTrade:
        node = await self._call("alipay.trade.create", {
            "out_trade_no": out_trade_no, "total_amount": wire.fen_to_yuan(amount_fen), "subject": subject,
            "buyer_id": buyer_id, "product_code": "JSAPI_PAY", "time_expire": wire.format_time(expires_at),
        }, idempotent=False, notify_url=notify_url)
        return c.CreatedTrade(self._str(node, "out_trade_no"), self._str(node, "trade_no"))

    async def precreate_trade(
        self, *, out_trade_no: str, subject: str, amount_fen: int, notify_url: str, expires_at: datetime,
    ) -> c.PrecreatedTrade:
        node = await self._call("alipay.trade.precreate", {
            "out_trade_no": out_trade_no, "total_amount": wire.fen_to_yuan(amount_fen), "subject": subject,
            "product_code": "FACE_TO_FACE_PAYMENT", "time_expire": wire.format_time(expires_at),
        }, idempotent=False, notify_url=notify_url)
        qr_code = self._str(node, "qr_code")
        if not qr_code.startswith("https://"):
            raise SourceUnavailable(wire.SOURCE, "unreadable answer: qr_code is not an https URL")
        return c.PrecreatedTrade(self._str(node, "out_trade_no"), qr_code)

    async def query(self, out_trade_no: str) -> c.Trade:
        node = await self._call("alipay.trade.query", {"out_trade_no": out_trade_no}, idempotent=True)
        paid = node.get("send_pay_date")
        return self._read(lambda: c.Trade(
            out_trade_no=self._str(node, "out_trade_no"), trade_no=self._str(node, "trade_no"),
            trade_status=self._str(node, "trade_status"), total_fen=wire.yuan_to_fen(self._str(node, "total_amount")),
            buyer_id=str(node.get("buyer_user_id", "")),
            gmt_payment=wire.parse_time(paid) if isinstance(paid, str) and paid else None,
        ))

    async def close(self, out_trade_no: str) -> None:
        await self._call("alipay.trade.close", {"out_trade_no": out_trade_no}, idempotent=False)

    async def refund(
        self, *, out_trade_no: str, out_request_no: str, refund_fen: int, reason: str
    ) -> c.RefundResult:
        node = await self._call("alipay.trade.refund", {
            "out_trade_no": out_trade_no, "out_request_no": out_request_no,
            "refund_amount": wire.fen_to_yuan(refund_fen), "refund_reason": reason,
        }, idempotent=False)
        return self._read(lambda: c.RefundResult(
            out_trade_no=self._str(node, "out_trade_no"), trade_no=self._str(node, "trade_no"),
            out_request_no=out_request_no, refund_fen=refund_fen,
            refunded_total_fen=wire.yuan_to_fen(self._str(node, "refund_fee")),
            fund_change=node.get("fund_change") == "Y",
        ))

    async def query_refund(self, *, out_trade_no: str, out_request_no: str) -> c.RefundQuery | None:
        node = await self._call(
            "alipay.trade.fastpay.refund.query", {"out_trade_no": out_trade_no, "out_request_no": out_request_no},
            idempotent=True,
        )
        if not node.get("refund_amount"):
            return None
        return self._read(lambda: c.RefundQuery(
            out_trade_no=self._str(node, "out_trade_no"), trade_no=self._str(node, "trade_no"),
            out_request_no=self._str(node, "out_request_no"),
            refund_fen=wire.yuan_to_fen(self._str(node, "refund_amount")),
            total_fen=wire.yuan_to_fen(self._str(node, "total_amount")),
            refund_status=str(node.get("refund_status") or "REFUND_SUCCESS"),
        ))

    async def bill(self, bill_date: date) -> list[c.BillLine]:
        node = await self._call(
            "alipay.data.dataservice.bill.downloadurl.query",
            {"bill_type": "trade", "bill_date": bill_date.isoformat()}, idempotent=True,
        )
        url = self._str(node, "bill_download_url")

        async def download() -> bytes:
            try:
                response = await self._http.get(url)
            except httpx.TimeoutException:
                raise _Failed("bill download timed out") from None
            except httpx.TransportError as exc:
                raise _Failed(f"bill download: transport error {type(exc).__name__}") from None
            if response.status_code != 200:
                raise _Failed(f"bill download: HTTP {response.status_code}")
            return response.content

        # One try only: the link is single-use and short-lived; a failed download asks for a new link.
        data = await self._guarded("bill download", download, idempotent=False)
        return self._read(lambda: wire.parse_bill_zip(data))

    def parse_notification(self, form: Mapping[str, str]) -> c.Notification:
        return wire.parse_notification(
            form, app_id=self.merchant.app_id, alipay_public_key=self.merchant.alipay_public_key
        )

    # Reading answers ------------------------------------------------------------------------
    @staticmethod
    def _str(node: Mapping[str, Any], name: str) -> str:
        value = node.get(name)
        if not isinstance(value, str) or not value:
            raise SourceUnavailable(wire.SOURCE, f"unreadable answer: no {name}")
        return value

    @staticmethod
    def _read(build: Callable[[], T]) -> T:
        try:
            return build()
        except SourceRejected as exc:  # an amount or time Alipay itself wrote badly: not a refusal of ours
            raise SourceUnavailable(wire.SOURCE, f"unreadable answer ({exc.detail})") from None


if TYPE_CHECKING:  # mypy proves HttpAlipay keeps to the contract
    _conforms: c.Alipay = HttpAlipay("http://alipay.invalid", cast(c.MerchantConfig, None), timeout=1.0)
