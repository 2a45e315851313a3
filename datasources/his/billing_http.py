"""``HttpHISBilling``: the ``HISBilling`` contract over the HIS gateway's HTTP API (``billing_wire.py``).

As ``HttpHIS``: every call has a timeout, reads are retried a bounded number of times, a circuit
breaker stops calling a HIS that keeps failing, and httpx errors never leave this module. Writes
are never retried: a write-back that timed out raises ``SourceUnavailable`` and may or may not have
been recorded. Every billing write is idempotent per reference, so the caller may repeat it with
the same reference and content (it gets the first answer), or ask ``receipts_by_references``.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

import httpx

from datasources.breaker import AttemptFailed, CircuitBreaker
from datasources.errors import SourceRejected, SourceUnavailable
from datasources.his import billing as b
from datasources.his import billing_wire, wire

SOURCE = "his"


class HttpHISBilling:
    """Implements ``HISBilling`` by calling ``POST {base_url}/his/v1/billing/<method>``."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float,
        retries: int = 2,
        backoff_seconds: float = 0.05,
        failure_threshold: int = 5,
        cooldown_seconds: float = 10.0,
    ) -> None:
        self.retries = retries
        self.backoff_seconds = backoff_seconds
        self.breaker = CircuitBreaker(SOURCE, threshold=failure_threshold, cooldown=cooldown_seconds)
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/",
            timeout=httpx.Timeout(timeout),
            headers={"accept": "application/json"},
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(self, name: str, /, **arguments: Any) -> Any:
        method = billing_wire.METHODS[name]
        body = wire.encode_arguments(method, arguments)
        attempts = 1 + (self.retries if method.idempotent else 0)
        envelope = await self.breaker.call(
            name, lambda: self._attempt(name, body), tries=attempts, backoff_s=self.backoff_seconds
        )
        return self._result(method, envelope)

    async def _attempt(self, name: str, body: dict[str, Any]) -> Any:
        try:
            response = await self._http.post(billing_wire.PREFIX.lstrip("/") + name, json=body)
        except httpx.TimeoutException:
            raise AttemptFailed("timed out") from None
        except httpx.TransportError as exc:
            raise AttemptFailed(f"transport error {type(exc).__name__}") from None
        if response.status_code >= 500:
            raise AttemptFailed(f"HTTP {response.status_code}")
        try:
            envelope = response.json()
        except ValueError:
            envelope = None
        if not isinstance(envelope, dict) or not isinstance(envelope.get("code"), str):
            return {"code": wire.UNAVAILABLE, "message": f"HTTP {response.status_code} without a HIS envelope"}
        return envelope

    def _result(self, method: wire.Method, envelope: dict[str, Any]) -> Any:
        code = envelope["code"]
        if code == wire.UNAVAILABLE:
            raise SourceUnavailable(SOURCE, f"{method.name}: {envelope.get('message', '')}")
        if code != wire.OK:
            message = envelope.get("message")
            raise SourceRejected(SOURCE, code, message if isinstance(message, str) else "")
        try:
            return wire.decode(envelope.get("data"), method.returns)
        except wire.WireError as exc:
            raise SourceUnavailable(SOURCE, f"{method.name}: unreadable answer ({exc})") from None

    # Reads ---------------------------------------------------------------------------------
    async def pending_bills(self, his_patient_ids: list[str]) -> list[b.Bill]:
        return await self._call("pending_bills", his_patient_ids=his_patient_ids)

    async def bills_by_ids(self, ids: list[str]) -> list[b.Bill]:
        return await self._call("bills_by_ids", ids=ids)

    async def receipts_by_references(self, references: list[str]) -> list[b.Receipt]:
        return await self._call("receipts_by_references", references=references)

    async def ledger(self, day: date) -> list[b.LedgerEntry]:
        return await self._call("ledger", day=day)

    async def deposit_accounts(self, his_patient_ids: list[str]) -> list[b.DepositAccount]:
        return await self._call("deposit_accounts", his_patient_ids=his_patient_ids)

    # Write-backs (sent once; repeat with the same reference when the outcome is unknown) -----
    async def pay_bills(self, bill_ids: list[str], payment: b.PaymentRecord) -> b.Receipt:
        return await self._call("pay_bills", bill_ids=bill_ids, payment=payment)

    async def pay_registration(self, registration_id: str, payment: b.PaymentRecord) -> b.Receipt:
        return await self._call("pay_registration", registration_id=registration_id, payment=payment)

    async def refund(self, refund: b.RefundRecord) -> b.RefundRecord:
        return await self._call("refund", refund=refund)

    async def top_up_deposit(
        self, his_patient_id: str, kind: str, admission_id: str | None, payment: b.PaymentRecord
    ) -> b.DepositAccount:
        return await self._call(
            "top_up_deposit", his_patient_id=his_patient_id, kind=kind, admission_id=admission_id, payment=payment
        )

    async def refund_deposit(
        self, his_patient_id: str, kind: str, admission_id: str | None, refund: b.RefundRecord
    ) -> b.DepositAccount:
        return await self._call(
            "refund_deposit", his_patient_id=his_patient_id, kind=kind, admission_id=admission_id, refund=refund
        )


if TYPE_CHECKING:  # mypy proves HttpHISBilling keeps to the contract
    _conforms: b.HISBilling = HttpHISBilling("http://his.invalid", timeout=1.0)
