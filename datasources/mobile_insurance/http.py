"""``HttpMobileInsurance``: the ``MobileInsurance`` contract over the platform's signed envelope API.

Every request is sealed (``wire.seal``) with the hospital's key and every reply is opened with the
platform's key before a single field of it is believed: a reply that does not verify means the
outcome is unknown (``SourceUnavailable``), never a success or a refusal. Every call has a timeout;
reads (the authorization lookup, 6301) are retried a bounded number of times, money never is (6201,
6202, 6203, 6401: a write that timed out may have happened; query 6301 to learn its outcome). The
circuit breaker is the HIS client's. httpx errors never leave this module.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlencode

import httpx

from datasources.breaker import AttemptFailed, CircuitBreaker
from datasources.clock import Clock
from datasources.errors import SourceRejected, SourceUnavailable
from datasources.mobile_insurance import contract as c
from datasources.mobile_insurance import transactions as t
from datasources.mobile_insurance import wire

SOURCE = "mobile_insurance"
IDEMPOTENT = frozenset({"auth", "6301"})
log = logging.getLogger(__name__)
T = TypeVar("T")


_Failed = AttemptFailed


class HttpMobileInsurance:
    def __init__(
        self,
        base_url: str,
        hospital: wire.Party,
        clock: Clock,
        *,
        timeout: float,
        auth_page_url: str | None = None,
        retries: int = 2,
        backoff_seconds: float = 0.05,
        failure_threshold: int = 5,
        cooldown_seconds: float = 10.0,
    ) -> None:
        self.hospital = hospital
        self.clock = clock
        self.retries = retries
        self.backoff_seconds = backoff_seconds
        self.auth_page_url = auth_page_url or base_url.rstrip("/") + wire.AUTH_PAGE
        self.breaker = CircuitBreaker(SOURCE, threshold=failure_threshold, cooldown=cooldown_seconds)
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), timeout=httpx.Timeout(timeout), headers={"accept": "application/json"}
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(self, name: str, data: dict[str, Any], read: Callable[[dict[str, Any]], T]) -> T:
        attempts = 1 + (self.retries if name in IDEMPOTENT else 0)
        fields, answer = await self.breaker.call(
            name, lambda: self._attempt(name, data), tries=attempts, backoff_s=self.backoff_seconds
        )
        code = str(fields.get("code", ""))
        if code != wire.OK:
            message = fields.get("message")
            raise SourceRejected(SOURCE, code, message if isinstance(message, str) else "")
        if answer is None:
            raise SourceUnavailable(SOURCE, f"{name}: a success without encData")
        try:
            return read(answer)
        except (wire.EnvelopeError, ValueError) as exc:
            raise SourceUnavailable(SOURCE, f"{name}: unreadable answer ({exc})") from None

    async def _attempt(self, name: str, data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
        body = wire.seal(self.hospital, data, wire.timestamp(self.clock.now()))
        try:
            response = await self._http.post(wire.PATHS[name], json=body)
        except httpx.TimeoutException:
            raise _Failed("timed out") from None
        except httpx.TransportError as exc:
            raise _Failed(f"transport error {type(exc).__name__}") from None
        if response.status_code >= 500:
            raise _Failed(f"HTTP {response.status_code}")
        try:
            envelope = response.json()
        except ValueError:
            raise _Failed(f"HTTP {response.status_code} without an envelope") from None
        try:
            return wire.open_envelope(self.hospital, envelope)
        except wire.EnvelopeError as exc:
            # Forged, tampered or foreign: nothing in it can be believed, so the outcome is unknown.
            raise _Failed(f"the reply was refused: {exc}") from None

    def authorize_url(self, return_url: str, state: str) -> str:
        return f"{self.auth_page_url}?{urlencode({'returnUrl': return_url, 'state': state})}"

    async def authorization(self, auth_code: str) -> c.Authorization:
        return await self._call("auth", {"authCode": auth_code}, t.authorization_of)

    async def upload_fees(self, upload: c.FeeUpload) -> c.Uploaded:
        return await self._call("6201", t.upload_data(upload), t.uploaded_of)

    async def place_order(self, *, pay_ord_id: str, pay_token: str) -> c.Order:
        return await self._call("6202", {"payOrdId": pay_ord_id, "payToken": pay_token}, t.order_of)

    async def refund(self, *, pay_ord_id: str, refund_sn: str, reason: str) -> c.Refund:
        data = {"payOrdId": pay_ord_id, "appRefdSn": refund_sn, "refdType": "HI", "expContent": reason}
        return await self._call("6203", data, t.refund_of)

    async def query(self, *, pay_ord_id: str) -> c.Order:
        return await self._call("6301", {"payOrdId": pay_ord_id}, t.order_of)

    async def cancel_upload(self, *, pay_ord_id: str, pay_token: str, reason: str) -> c.Order:
        data = {"payOrdId": pay_ord_id, "payToken": pay_token, "expContent": reason}
        return await self._call("6401", data, t.order_of)
