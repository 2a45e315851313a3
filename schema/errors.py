"""The one place where domain errors become typed payload members."""

from __future__ import annotations

from typing import Any

import strawberry

from resolvers import errors as e
from resolvers import idempotency
from schema.common import (
    AccountLockedError,
    AlreadyRegisteredError,
    CreditDefaultedError,
    CutoffPassedError,
    DepositTopUpEntry,
    IdempotencyConflictError,
    IdentityNotVerifiedError,
    InsufficientPersonalAccountError,
    InsuranceNotAuthorizedError,
    InvalidInputError,
    LoginFailedError,
    MedicalCardRequiredError,
    MissingPatientInformationError,
    Money,
    NotAllowedError,
    NotFoundError,
    OrderClosedError,
    OutsideGeofenceError,
    RefundExceedsPaidError,
    SecondFactorNotEnrolledError,
    SecondFactorRejectedError,
    SecondFactorRequiredError,
    ServiceUnavailableError,
    SlotTakenError,
    WeakPasswordError,
)
from schema.enums import PasswordProblem

TOP_UP_ROUTE = "deposit/top-up"


def user_error(exc: e.DomainError) -> Any:
    """Maps a domain error to its payload member; unknown kinds are re-raised (masked upstream).

    Typed ``Any``: the member is one of the mutation's payload union, which each caller declares."""
    m, code = exc.message, exc.code
    match exc:
        case e.InvalidInput():
            return InvalidInputError(message=m, code=code, field=exc.field)
        case e.NotFound():
            return NotFoundError(message=m, code=code)
        case e.NotAllowed():
            return NotAllowedError(message=m, code=code, reason=exc.reason)
        case e.ServiceUnavailable():
            return ServiceUnavailableError(message=m, code=code)
        case e.LoginFailed():
            return LoginFailedError(message=m, code=code)
        case e.AccountLocked():
            return AccountLockedError(message=m, code=code, until=exc.until)
        case e.MissingPatientInformation():
            return MissingPatientInformationError(
                message=m, code=code, patient_id=strawberry.ID(str(exc.patient_id)), fields=exc.fields
            )
        case e.MedicalCardRequired():
            return MedicalCardRequiredError(message=m, code=code, patient_id=strawberry.ID(str(exc.patient_id)))
        case e.SlotTaken():
            return SlotTakenError(message=m, code=code)
        case e.AlreadyRegistered():
            return AlreadyRegisteredError(message=m, code=code)
        case e.CreditDefaulted():
            return CreditDefaultedError(
                message=m,
                code=code,
                arrears=Money.of(exc.arrears_fen),
                top_up=DepositTopUpEntry(amount=Money.of(exc.arrears_fen), route=TOP_UP_ROUTE),
                appeal_url=exc.appeal_url,
            )
        case e.OutsideGeofence():
            return OutsideGeofenceError(
                message=m, code=code, distance_meters=round(exc.distance_m), radius_meters=round(exc.radius_m)
            )
        case e.CutoffPassed():
            return CutoffPassedError(message=m, code=code, cutoff_at=exc.cutoff_at)
        case e.WeakPassword():
            return WeakPasswordError(message=m, code=code, problems=[PasswordProblem(p) for p in exc.problems])
        case e.SecondFactorRequired():
            return SecondFactorRequiredError(message=m, code=code)
        case e.SecondFactorRejected():
            return SecondFactorRejectedError(message=m, code=code)
        case e.SecondFactorNotEnrolled():
            return SecondFactorNotEnrolledError(message=m, code=code)
        case e.OrderClosed():
            return OrderClosedError(message=m, code=code)
        case e.RefundExceedsPaid():
            return RefundExceedsPaidError(message=m, code=code, refundable=Money.of(exc.refundable_fen))
        case e.IdentityNotVerified():
            return IdentityNotVerifiedError(message=m, code=code)
        case e.InsuranceNotAuthorized():
            return InsuranceNotAuthorizedError(message=m, code=code)
        case e.InsufficientPersonalAccount():
            return InsufficientPersonalAccountError(message=m, code=code)
        case idempotency.IdempotencyKeyReused() | idempotency.RequestInProgress():
            return IdempotencyConflictError(message=m, code=code)
    raise exc
