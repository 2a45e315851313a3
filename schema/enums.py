"""Closed sets of values as GraphQL enums, so front ends get generated types and validation.

Values equal names, and equal the strings the resolvers and sources use: ``Enum(value)`` converts.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

import strawberry


def plain(value: Any) -> Any:
    """An enum input as the plain string the resolvers use; anything else unchanged."""
    return value.value if isinstance(value, Enum) else value


@strawberry.enum(description="What an account is.")
class Role(Enum):
    PATIENT = "PATIENT"
    DOCTOR = "DOCTOR"
    PHARMACIST = "PHARMACIST"
    OPERATOR = "OPERATOR"
    DEVICE = "DEVICE"


@strawberry.enum(description="Who the patient is to the account holder.")
class Relationship(Enum):
    SELF = "SELF"
    CHILD = "CHILD"
    PARENT = "PARENT"
    SPOUSE = "SPOUSE"
    OTHER = "OTHER"


@strawberry.enum
class DocumentType(Enum):
    RESIDENT_ID = "RESIDENT_ID"
    PASSPORT = "PASSPORT"
    HK_MACAO_PERMIT = "HK_MACAO_PERMIT"
    TAIWAN_PERMIT = "TAIWAN_PERMIT"
    FOREIGNER_PERMANENT_ID = "FOREIGNER_PERMANENT_ID"


@strawberry.enum
class Gender(Enum):
    MALE = "MALE"
    FEMALE = "FEMALE"


@strawberry.enum(description="Half-day of a session: morning or afternoon.")
class Period(Enum):
    AM = "AM"
    PM = "PM"


@strawberry.enum(description="Coordinate system of a location: mini-programs report GCJ02.")
class CoordinateSystem(Enum):
    GCJ02 = "GCJ02"
    WGS84 = "WGS84"
    BD09 = "BD09"


@strawberry.enum(description="APPOINTMENT (预约挂号, booked ahead) or SAME_DAY (当日挂号).")
class RegistrationKind(Enum):
    APPOINTMENT = "APPOINTMENT"
    SAME_DAY = "SAME_DAY"


@strawberry.enum
class RegistrationStatus(Enum):
    BOOKED = "BOOKED"
    CHECKED_IN = "CHECKED_IN"
    CALLED = "CALLED"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"


@strawberry.enum(description="PAY_LATER: treat first, pay afterwards (先诊疗后付费). REFUNDED: paid, then given back.")
class PaymentStatus(Enum):
    UNPAID = "UNPAID"
    PAID = "PAID"
    PAY_LATER = "PAY_LATER"
    REFUNDED = "REFUNDED"


@strawberry.enum(
    description="A payment order: CREATED/PAYING (waiting for the patient), PAID (the channel has the money), "
    "SETTLED (the hospital recorded it), CLOSED (not paid in time), REFUNDING/REFUNDED (all of it going/gone back)."
)
class PaymentOrderStatus(Enum):
    CREATED = "CREATED"
    PAYING = "PAYING"
    PAID = "PAID"
    SETTLED = "SETTLED"
    CLOSED = "CLOSED"
    REFUNDING = "REFUNDING"
    REFUNDED = "REFUNDED"


@strawberry.enum(description="What a payment is for.")
class PaymentPurpose(Enum):
    REGISTRATION = "REGISTRATION"
    BILLS = "BILLS"
    DEPOSIT = "DEPOSIT"


@strawberry.enum(description="预交金: the outpatient deposit, or one inpatient stay's.")
class DepositKind(Enum):
    OUTPATIENT = "OUTPATIENT"
    INPATIENT = "INPATIENT"


@strawberry.enum(
    description="How the patient paid: WECHAT_MED_INS is WeChat Pay's medical-insurance order (insurance and cash "
    "together); INSURANCE is an order the insurance paid in full; WECHAT_NATIVE and ALIPAY_QR are codes scanned at "
    "a kiosk."
)
class PaymentChannel(Enum):
    WECHAT_PAY = "WECHAT_PAY"
    ALIPAY = "ALIPAY"
    WECHAT_MED_INS = "WECHAT_MED_INS"
    INSURANCE = "INSURANCE"
    WECHAT_NATIVE = "WECHAT_NATIVE"
    ALIPAY_QR = "ALIPAY_QR"


@strawberry.enum(description="How a kiosk takes money: a QR code of WeChat Pay (Native) or Alipay the patient scans.")
class KioskPaymentChannel(Enum):
    WECHAT_NATIVE = "WECHAT_NATIVE"
    ALIPAY_QR = "ALIPAY_QR"


@strawberry.enum(
    description="A refund: PENDING_APPROVAL (an operator decides), REQUESTED/PROCESSING (under way), SUCCEEDED, "
    "FAILED (the hospital or the channel refused; nothing was returned), REJECTED (by an operator)."
)
class RefundStatus(Enum):
    PENDING_APPROVAL = "PENDING_APPROVAL"
    REQUESTED = "REQUESTED"
    PROCESSING = "PROCESSING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    REJECTED = "REJECTED"


@strawberry.enum(description="A bill's kind: 处方 prescription, 检验 lab test, 检查 exam, 治疗 treatment.")
class BillCategory(Enum):
    PRESCRIPTION = "PRESCRIPTION"
    LAB = "LAB"
    EXAM = "EXAM"
    TREATMENT = "TREATMENT"


@strawberry.enum
class QueuePositionState(Enum):
    NOT_CHECKED_IN = "NOT_CHECKED_IN"
    WAITING = "WAITING"
    CALLED = "CALLED"
    PASSED = "PASSED"


@strawberry.enum(
    description="The provincial credit platform's answer as it affects pay-later: UNKNOWN (not known "
    "there) and UNAVAILABLE (platform down) both mean no pay-later, never a refusal."
)
class CreditStatus(Enum):
    GOOD = "GOOD"
    DEFAULTED_ELSEWHERE = "DEFAULTED_ELSEWHERE"
    UNKNOWN = "UNKNOWN"
    UNAVAILABLE = "UNAVAILABLE"


@strawberry.enum(description="A rule a new staff password breaks.")
class PasswordProblem(Enum):
    TOO_SHORT = "TOO_SHORT"
    TOO_FEW_CHARACTER_CLASSES = "TOO_FEW_CHARACTER_CLASSES"
    CONTAINS_USERNAME = "CONTAINS_USERNAME"
    SAME_AS_CURRENT = "SAME_AS_CURRENT"


@strawberry.enum(description="Why personal data is seen unmasked; recorded with each read in the audit log.")
class RevealPurpose(Enum):
    SELF_SERVICE = "SELF_SERVICE"
    CUSTOMER_SERVICE = "CUSTOMER_SERVICE"
    BILLING_DISPUTE = "BILLING_DISPUTE"
    LEGAL_REQUEST = "LEGAL_REQUEST"
