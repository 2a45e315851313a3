"""``HttpHISInpatient``: the ``HISInpatient`` contract over the HIS gateway's HTTP API (``inpatient_wire.py``).

As ``HttpHISBilling``: every call has a timeout, reads are retried a bounded number of times, a
circuit breaker stops calling a HIS that keeps failing, and httpx errors never leave this module.
Writes are never retried: one that timed out (or got a 503) raises ``SourceUnavailable`` and may or
may not have been done. Every inpatient write is idempotent per reference, so the caller may repeat
it with the same reference and content (it gets the first answer), or ask ``admission`` and
``settlements_by_references``.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import httpx

from datasources.breaker import AttemptFailed, CircuitBreaker
from datasources.errors import SourceRejected, SourceUnavailable
from datasources.his import inpatient as i
from datasources.his import inpatient_wire, wire

SOURCE = "his"


class HttpHISInpatient:
    """Implements ``HISInpatient`` by calling ``POST {base_url}/his/v1/inpatient/<method>``."""

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
        method = inpatient_wire.METHODS[name]
        body = wire.encode_arguments(method, arguments)
        attempts = 1 + (self.retries if method.idempotent else 0)
        envelope = await self.breaker.call(
            name, lambda: self._attempt(name, body), tries=attempts, backoff_s=self.backoff_seconds
        )
        return self._result(method, envelope)

    async def _attempt(self, name: str, body: dict[str, Any]) -> Any:
        try:
            response = await self._http.post(inpatient_wire.PREFIX.lstrip("/") + name, json=body)
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
    async def admission_notice(self, code: str) -> i.AdmissionNotice:
        return await self._call("admission_notice", code=code)

    async def free_beds(self, ward_id: str) -> list[i.Bed]:
        return await self._call("free_beds", ward_id=ward_id)

    async def admission(self, admission_id: str) -> i.Admission:
        return await self._call("admission", admission_id=admission_id)

    async def admissions_of(self, his_patient_ids: list[str]) -> list[i.Admission]:
        return await self._call("admissions_of", his_patient_ids=his_patient_ids)

    async def fee_items(self, admission_id: str) -> i.FeeList:
        return await self._call("fee_items", admission_id=admission_id)

    async def settlements_by_references(self, references: list[str]) -> list[i.DischargeReceipt]:
        return await self._call("settlements_by_references", references=references)

    # Writes (sent once; repeat with the same reference when the outcome is unknown) ---------
    async def admit(
        self,
        notice_code: str,
        *,
        his_patient_id: str,
        bed_id: str,
        admission_type: str,
        insurance_visit_id: str | None,
        reference: str,
    ) -> i.Admission:
        return await self._call(
            "admit",
            notice_code=notice_code,
            his_patient_id=his_patient_id,
            bed_id=bed_id,
            admission_type=admission_type,
            insurance_visit_id=insurance_visit_id,
            reference=reference,
        )

    async def convert_to_insurance(self, admission_id: str, insurance_visit_id: str, reference: str) -> i.Admission:
        return await self._call(
            "convert_to_insurance",
            admission_id=admission_id,
            insurance_visit_id=insurance_visit_id,
            reference=reference,
        )

    async def register_discharge(
        self, admission_id: str, *, discharged_at: datetime, diagnosis: str, reference: str
    ) -> i.Admission:
        return await self._call(
            "register_discharge",
            admission_id=admission_id,
            discharged_at=discharged_at,
            diagnosis=diagnosis,
            reference=reference,
        )

    async def undo_discharge(self, admission_id: str, reference: str) -> i.Admission:
        return await self._call("undo_discharge", admission_id=admission_id, reference=reference)

    async def settle(self, admission_id: str, settlement: i.InpatientSettlement) -> i.DischargeReceipt:
        return await self._call("settle", admission_id=admission_id, settlement=settlement)

    async def cancel_settlement(
        self, admission_id: str, *, settlement_reference: str, reference: str
    ) -> i.SettlementCancellation:
        return await self._call(
            "cancel_settlement",
            admission_id=admission_id,
            settlement_reference=settlement_reference,
            reference=reference,
        )


if TYPE_CHECKING:  # mypy proves HttpHISInpatient keeps to the contract
    _conforms: i.HISInpatient = HttpHISInpatient("http://his.invalid", timeout=1.0)
