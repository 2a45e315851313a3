"""Domain errors. Business outcomes carry what the user must see; the schema maps each to a typed
payload member in one place. ``NotAuthorized``/``NotAuthenticated`` become GraphQL errors."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime
from typing import TypeVar

from datasources.errors import SourceUnavailable

T = TypeVar("T")
HIS_DOWN = "The hospital system is not answering; please try again shortly."


class DomainError(Exception):
    code = "DOMAIN_ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotAuthenticated(DomainError):
    code = "UNAUTHENTICATED"


class NotAuthorized(DomainError):
    code = "FORBIDDEN"


class NotFound(DomainError):
    """Also what another account's patient, card or registration looks like: it does not exist."""

    code = "NOT_FOUND"


class InvalidInput(DomainError):
    code = "INVALID_INPUT"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class LoginFailed(DomainError):
    code = "LOGIN_FAILED"


class AccountLocked(DomainError):
    code = "ACCOUNT_LOCKED"

    def __init__(self, until: datetime) -> None:
        super().__init__("Too many failed attempts; try again after the lock ends.")
        self.until = until


class MissingPatientInformation(DomainError):
    code = "MISSING_PATIENT_INFORMATION"

    def __init__(self, patient_id: int, fields: list[str]) -> None:
        super().__init__("The patient's record is incomplete: fill in " + ", ".join(fields) + " first.")
        self.patient_id = patient_id
        self.fields = fields


class MedicalCardRequired(DomainError):
    code = "MEDICAL_CARD_REQUIRED"

    def __init__(self, patient_id: int) -> None:
        super().__init__("Bind a medical card (or create a hospital record) for this patient first.")
        self.patient_id = patient_id


class SlotTaken(DomainError):
    code = "SLOT_TAKEN"


class AlreadyRegistered(DomainError):
    code = "ALREADY_REGISTERED"


class CreditDefaulted(DomainError):
    """本院欠费: arrears at this hospital must be cleared (deposit top-up) before booking or check-in."""

    code = "CREDIT_DEFAULTED_HERE"

    def __init__(self, arrears_fen: int, appeal_url: str) -> None:
        super().__init__("You have unpaid bills at this hospital. Top up your deposit to clear them, then try again.")
        self.arrears_fen = arrears_fen
        self.appeal_url = appeal_url


class OutsideGeofence(DomainError):
    code = "OUTSIDE_GEOFENCE"

    def __init__(self, distance_m: float, radius_m: float, campus_name: str) -> None:
        super().__init__(
            f"You are {distance_m:,.0f} m from {campus_name}; this is only possible within {radius_m:,.0f} m."
        )
        self.distance_m = distance_m
        self.radius_m = radius_m


class CutoffPassed(DomainError):
    code = "CUTOFF_PASSED"

    def __init__(self, message: str, cutoff_at: datetime) -> None:
        super().__init__(message)
        self.cutoff_at = cutoff_at


class NotAllowed(DomainError):
    """The action does not apply to this object in its current state (e.g. cancelling a same-day one)."""

    code = "NOT_ALLOWED"

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class ServiceUnavailable(DomainError):
    code = "SERVICE_UNAVAILABLE"


class WeakPassword(DomainError):
    """A staff password that breaks the rules; ``problems`` names each broken rule."""

    code = "WEAK_PASSWORD"

    def __init__(self, problems: list[str], message: str) -> None:
        super().__init__(message)
        self.problems = problems


class SecondFactorRequired(DomainError):
    """The password was right; the account also needs the current code of its authenticator app."""

    code = "SECOND_FACTOR_REQUIRED"


class SecondFactorRejected(DomainError):
    code = "SECOND_FACTOR_INVALID"


class SecondFactorReused(SecondFactorRejected):
    """A code is good once: a second login with it is a replay, or a second tab within 30 s."""

    code = "SECOND_FACTOR_REUSED"


class SecondFactorNotEnrolled(DomainError):
    """Production: operators log in only with a confirmed second factor."""

    code = "SECOND_FACTOR_NOT_ENROLLED"


async def in_service(call: Awaitable[T], message: str = HIS_DOWN) -> T:
    """Awaits a call to an external system; an outage becomes a clear error the user may retry."""
    try:
        return await call
    except SourceUnavailable as exc:
        raise ServiceUnavailable(message) from exc


class OrderClosed(DomainError):
    """The payment order was closed (not paid in time, or replaced): start a new payment."""

    code = "ORDER_CLOSED"


class RefundExceedsPaid(DomainError):
    """A refund above what is left of the payment (paid minus refunded and refunds under way)."""

    code = "REFUND_EXCEEDS_PAID"

    def __init__(self, refundable_fen: int) -> None:
        super().__init__(f"At most {refundable_fen / 100:.2f} yuan of this payment can still be refunded.")
        self.refundable_fen = refundable_fen


class InsuranceNotAuthorized(DomainError):
    """The insurance authorization (医保电子凭证 / payAuthNo) is missing, expired, used, or someone else's."""

    code = "VOUCHER_NOT_AUTHORIZED"


class InsufficientPersonalAccount(DomainError):
    """The personal (or family) account no longer holds the share fixed when the fees were uploaded."""

    code = "INSUFFICIENT_PERSONAL_ACCOUNT"


class IdentityNotVerified(DomainError):
    """At a kiosk: the face did not match the ID, the capture was not live, or the ticket ended."""

    code = "IDENTITY_NOT_VERIFIED"
