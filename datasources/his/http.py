"""``HttpHIS``: the ``HIS`` contract over the HIS gateway's HTTP API (format in ``wire.py``).

Every call has a timeout. Reads are retried a bounded number of times with a small backoff;
writes never are, because a write that timed out may have happened (``SourceUnavailable`` says
the outcome is unknown, and the resolvers compensate). A circuit breaker stops hammering a HIS
that keeps failing: after ``failure_threshold`` consecutive transport failures or 5xx answers it
fails every call at once for ``cooldown_seconds``, then lets one trial call through. httpx errors
never leave this module.
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import httpx

from datasources.breaker import AttemptFailed, CircuitBreaker
from datasources.errors import SourceRejected, SourceUnavailable
from datasources.his import contract as c
from datasources.his import wire

SOURCE = "his"
log = logging.getLogger(__name__)


_Failed = AttemptFailed


class HttpHIS:
    """Implements ``HIS`` by calling ``POST {base_url}/his/v1/<method>``."""

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
        method = wire.METHODS[name]
        body = wire.encode_arguments(method, arguments)
        attempts = 1 + (self.retries if method.idempotent else 0)
        envelope = await self.breaker.call(
            name, lambda: self._attempt(name, body), tries=attempts, backoff_s=self.backoff_seconds
        )
        return self._result(method, envelope)

    async def _attempt(self, name: str, body: dict[str, Any]) -> Any:
        try:
            response = await self._http.post(wire.PREFIX.lstrip("/") + name, json=body)
        except httpx.TimeoutException:
            raise _Failed("timed out") from None
        except httpx.TransportError as exc:
            raise _Failed(f"transport error {type(exc).__name__}") from None
        if response.status_code >= 500:
            raise _Failed(f"HTTP {response.status_code}")
        try:
            envelope = response.json()
        except ValueError:
            envelope = None
        if not isinstance(envelope, dict) or not isinstance(envelope.get("code"), str):
            # Something answered, but not the HIS API (a proxy page, a wrong URL): nothing usable.
            message = f"HTTP {response.status_code} without a HIS envelope"
            return {"code": wire.UNAVAILABLE, "message": message}
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

    # Catalog -------------------------------------------------------------------------------
    async def campuses(self) -> list[c.Campus]:
        return await self._call("campuses")

    async def departments(self, campus_id: str | None = None) -> list[c.Department]:
        return await self._call("departments", campus_id=campus_id)

    async def departments_by_ids(self, ids: list[str]) -> list[c.Department]:
        return await self._call("departments_by_ids", ids=ids)

    async def doctors(
        self, *, department_id: str | None, campus_id: str | None, after: str | None, first: int
    ) -> list[c.Doctor]:
        return await self._call(
            "doctors", department_id=department_id, campus_id=campus_id, after=after, first=first
        )

    async def doctors_by_ids(self, ids: list[str]) -> list[c.Doctor]:
        return await self._call("doctors_by_ids", ids=ids)

    async def schedules(
        self,
        *,
        date_from: date,
        date_to: date,
        department_id: str | None = None,
        doctor_ids: list[str] | None = None,
        campus_id: str | None = None,
    ) -> list[c.Schedule]:
        return await self._call(
            "schedules", date_from=date_from, date_to=date_to, department_id=department_id,
            doctor_ids=doctor_ids, campus_id=campus_id,
        )

    async def schedules_by_ids(self, ids: list[str]) -> list[c.Schedule]:
        return await self._call("schedules_by_ids", ids=ids)

    async def slots_by_ids(self, ids: list[str]) -> list[c.Slot]:
        return await self._call("slots_by_ids", ids=ids)

    # Patient records -----------------------------------------------------------------------
    async def find_cards(self, *, name: str, document_number: str) -> list[c.MedicalCard]:
        return await self._call("find_cards", name=name, document_number=document_number)

    async def create_record(self, record: c.PatientRecordInput) -> c.MedicalCard:
        return await self._call("create_record", record=record)

    # Registration --------------------------------------------------------------------------
    async def lock_slot(
        self, *, slot_id: str, his_patient_id: str, card_no: str, kind: str, lock_seconds: int
    ) -> c.SlotLock:
        return await self._call(
            "lock_slot", slot_id=slot_id, his_patient_id=his_patient_id, card_no=card_no, kind=kind,
            lock_seconds=lock_seconds,
        )

    async def confirm_registration(
        self, *, lock_id: str, payment_status: str, hold_expires_at: datetime | None
    ) -> c.Registration:
        return await self._call(
            "confirm_registration", lock_id=lock_id, payment_status=payment_status,
            hold_expires_at=hold_expires_at,
        )

    async def unlock_slot(self, lock_id: str) -> None:
        await self._call("unlock_slot", lock_id=lock_id)

    async def check_in(self, registration_id: str) -> c.Registration:
        return await self._call("check_in", registration_id=registration_id)

    async def cancel_registration(self, registration_id: str) -> c.Registration:
        return await self._call("cancel_registration", registration_id=registration_id)

    async def release_expired(self) -> list[c.Registration]:
        return await self._call("release_expired")

    async def registrations_by_ids(self, ids: list[str]) -> list[c.Registration]:
        return await self._call("registrations_by_ids", ids=ids)

    async def registrations_of_patients(
        self, his_patient_ids: list[str], flt: c.RegistrationFilter, *, after: str | None, first: int
    ) -> c.RegistrationPage:
        return await self._call(
            "registrations_of_patients", his_patient_ids=his_patient_ids, flt=flt, after=after, first=first
        )

    # Queue ---------------------------------------------------------------------------------
    async def queue_snapshots(self, schedule_ids: list[str]) -> list[c.QueueSnapshot]:
        return await self._call("queue_snapshots", schedule_ids=schedule_ids)

    async def queue_entries(self, schedule_id: str) -> list[c.QueueEntry]:
        return await self._call("queue_entries", schedule_id=schedule_id)

    async def call_next(self, schedule_id: str) -> tuple[c.QueueSnapshot, c.Registration]:
        return await self._call("call_next", schedule_id=schedule_id)


if TYPE_CHECKING:  # mypy proves HttpHIS keeps to the contract
    _conforms: c.HIS = HttpHIS("http://his.invalid", timeout=1.0)
