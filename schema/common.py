"""Shared schema pieces: money, pages, the UserError interface and its members."""

from __future__ import annotations

import base64
from datetime import datetime
from decimal import Decimal
from typing import Generic, TypeVar

import strawberry
from strawberry.types import Info

from bff.context import Context
from schema.enums import CoordinateSystem, PasswordProblem

T = TypeVar("T")
Ctx = Info[Context, None]


@strawberry.type(description="An amount of money in CNY; `fen` is exact, `yuan` is for display.")
class Money:
    fen: int
    yuan: str = strawberry.field(description='Yuan with two decimals, e.g. "12.50".')

    @staticmethod
    def of(fen: int) -> Money:
        """Exact: fen are integers, yuan is their decimal rendering, never a float."""
        return Money(fen=fen, yuan=str((Decimal(fen) / 100).quantize(Decimal("0.01"))))


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo

    @strawberry.field
    def nodes(self) -> list[T]:
        return [e.node for e in self.edges]


def offset_cursor(n: int) -> str:
    return base64.urlsafe_b64encode(f"o:{n}".encode()).decode()


@strawberry.input(description="Where the caller is. Mini-programs report GCJ02 (the default).")
class LocationInput:
    latitude: float
    longitude: float
    system: CoordinateSystem = CoordinateSystem.GCJ02


@strawberry.interface(description="A business outcome the front end must show to the user.")
class UserError:
    message: str
    code: str


@strawberry.type(description="The input was wrong; `field` names the input field to correct.")
class InvalidInputError(UserError):
    field: str


@strawberry.type(description="Not found, or not yours: the two are indistinguishable on purpose.")
class NotFoundError(UserError):
    pass


@strawberry.type(description="The action does not apply in the object's current state; `reason` says which rule.")
class NotAllowedError(UserError):
    reason: str


@strawberry.type(description="A system behind the BFF is not answering; the same request can be retried.")
class ServiceUnavailableError(UserError):
    pass


@strawberry.type(description="Login failed: wrong or expired code, wrong username or password.")
class LoginFailedError(UserError):
    pass


@strawberry.type(description="Too many failed attempts; login is possible again after `until`.")
class AccountLockedError(UserError):
    until: datetime


@strawberry.type(
    description="The new password breaks the rules (at least 10 characters, 3 of lower case, upper case, "
    "digits and symbols, not containing the username, not the current one); `problems` lists each one."
)
class WeakPasswordError(UserError):
    problems: list[PasswordProblem]


@strawberry.type(
    description="The password was right; the account also needs the current 6-digit code of its "
    "authenticator app: ask for it and send the login again with `totpCode`."
)
class SecondFactorRequiredError(UserError):
    pass


@strawberry.type(
    description="The authenticator code is wrong or expired (`SECOND_FACTOR_INVALID`) or was used already "
    "(`SECOND_FACTOR_REUSED`: wait for the next one). At login it counts toward the lockout."
)
class SecondFactorRejectedError(UserError):
    pass


@strawberry.type(
    description="Operators log in only with a second factor, and this account has none yet: an administrator "
    "enrolls it on the BFF's host."
)
class SecondFactorNotEnrolledError(UserError):
    pass


@strawberry.type(description="The patient's record is incomplete; send the user to the form for `fields`.")
class MissingPatientInformationError(UserError):
    patient_id: strawberry.ID
    fields: list[str]


@strawberry.type(description="The patient has no medical card yet: bind one or create a hospital record.")
class MedicalCardRequiredError(UserError):
    patient_id: strawberry.ID


@strawberry.type(description="The slot was taken by someone else; offer another time.")
class SlotTakenError(UserError):
    pass


@strawberry.type(description="The patient already holds a registration for this doctor's session.")
class AlreadyRegisteredError(UserError):
    pass


@strawberry.type(description="Deposit top-up entry: where the app sends the patient to clear arrears.")
class DepositTopUpEntry:
    amount: Money
    route: str


@strawberry.type(
    description="本院欠费: unpaid bills at this hospital. Show the amount, offer the deposit top-up that "
    "clears them, and the credit platform's appeal link."
)
class CreditDefaultedError(UserError):
    arrears: Money
    top_up: DepositTopUpEntry
    appeal_url: str


@strawberry.type(description="The caller is too far from the campus; `distanceMeters` is how far.")
class OutsideGeofenceError(UserError):
    distance_meters: int
    radius_meters: int


@strawberry.type(description="The time for this action has passed at `cutoffAt`.")
class CutoffPassedError(UserError):
    cutoff_at: datetime


@strawberry.type(description="The payment was closed (not paid in time, or replaced by a newer one): start again.")
class OrderClosedError(UserError):
    pass


@strawberry.type(description="The refund asked for is more than is left of the payment; `refundable` is what is.")
class RefundExceedsPaidError(UserError):
    refundable: Money


@strawberry.type(
    description="The idempotency key belongs to another request (IDEMPOTENCY_KEY_REUSED: use a new key), or the "
    "first request with it is still running (REQUEST_IN_PROGRESS: ask again shortly)."
)
class IdempotencyConflictError(UserError):
    pass


@strawberry.type(
    description="The insurance authorization (医保电子凭证) is missing, expired, used, or another person's: "
    "authorize again in the app."
)
class InsuranceNotAuthorizedError(UserError):
    pass


@strawberry.type(description="The personal account no longer covers its share; pay again to have it recalculated.")
class InsufficientPersonalAccountError(UserError):
    pass


@strawberry.type(
    description="At a kiosk: the face did not match the ID, the capture was not live, or the ticket ended or "
    "belongs to another device: identify the patient again."
)
class IdentityNotVerifiedError(UserError):
    pass
