"""``HttpInsurancePlatform``: the contract over the platform's HTTP endpoint (envelope in ``wire.py``).

Every exchange has a timeout. Reads (1101 person info, 9001 sign-in, which only hands out a new
sign_no, the pre-settlements 2206/2303, the reconciliations 3201/3202 and 5301) are retried a
bounded number of times under the same msgid: the platform answers a repeat with its first answer.
Writes (settlements 2207/2304 among them) are never retried: a write that failed in transit raises
``OutcomeUnknown`` naming its msgid, and the caller reverses it with 2601. A circuit breaker stops
calling a platform that keeps failing. httpx errors never leave this module.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import httpx

from datasources.breaker import AttemptFailed, CircuitBreaker
from datasources.clock import Clock
from datasources.errors import SourceUnavailable
from datasources.insurance import contract as c
from datasources.insurance import wire
from datasources.insurance.client import Institution, PlatformClient

log = logging.getLogger(__name__)
# Pre-settlements move no money and reconciliation and 5301 only read: a repeat is harmless.
READS = frozenset({
    c.PERSON_INFO, c.SIGN_IN, c.PRE_SETTLE, c.INPATIENT_PRE_SETTLE, c.RECONCILE_TOTALS, c.RECONCILE_DETAILS,
    c.CHRONIC_DISEASES,
})


_Failed = AttemptFailed


class HttpInsurancePlatform(PlatformClient):
    def __init__(
        self,
        base_url: str,
        institution: Institution,
        clock: Clock,
        msgids: wire.MsgIds,
        *,
        timeout: float,
        retries: int = 2,
        backoff_seconds: float = 0.05,
        failure_threshold: int = 5,
        cooldown_seconds: float = 10.0,
    ) -> None:
        super().__init__(self._exchange_http, institution, clock, msgids)
        self.retries = retries
        self.backoff_seconds = backoff_seconds
        self.breaker = CircuitBreaker(c.SOURCE, threshold=failure_threshold, cooldown=cooldown_seconds)
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), timeout=httpx.Timeout(timeout),
            headers={"content-type": "application/json", "accept": "application/json"},
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _exchange_http(self, request: wire.Request) -> wire.Response:
        body = wire.dumps(request.to_json()).encode()
        attempts = 1 + (self.retries if request.infno in READS else 0)
        def unknown(message: str) -> Exception:
            if request.infno in READS:
                return SourceUnavailable(c.SOURCE, message)
            return c.OutcomeUnknown(c.SOURCE, message, msgid=request.msgid, infno=request.infno)

        return await self.breaker.call(
            f"{request.infno} {request.msgid}",
            lambda: self._attempt(body),
            tries=attempts,
            backoff_s=self.backoff_seconds,
            exhausted=unknown,
        )

    async def _attempt(self, body: bytes) -> wire.Response:
        try:
            response = await self._http.post(wire.PATH, content=body)
        except httpx.TimeoutException:
            raise _Failed("timed out") from None
        except httpx.TransportError as exc:
            raise _Failed(f"transport error {type(exc).__name__}") from None
        if response.status_code >= 500:
            raise _Failed(f"HTTP {response.status_code}")
        try:
            return wire.Response.from_json(wire.loads(response.content))
        except (ValueError, UnicodeDecodeError):
            # Something answered, but not the platform (a proxy page, a wrong URL).
            raise _Failed(f"HTTP {response.status_code} without an envelope") from None


if TYPE_CHECKING:  # mypy proves HttpInsurancePlatform keeps to the contract
    from datasources.clock import SystemClock

    _conforms: c.InsurancePlatform = HttpInsurancePlatform(
        "http://fsi.invalid", Institution("H00000000000", "", "", "", ""), SystemClock(),
        wire.MsgIds("H00000000000", SystemClock()), timeout=1.0,
    )
