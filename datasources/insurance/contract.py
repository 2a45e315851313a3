"""The national medical insurance platform (国家医保信息平台): sign-in, person info, outpatient visits.

Every transaction after sign-in (9001) carries the operator's ``sign_no``; an implementation keeps
the current one and signs in again, with the same operator, when the platform says it is no longer
valid. A write whose answer never came (``OutcomeUnknown``) may or may not have happened: the
caller reverses it with 2601, naming its ``msgid``. The platform answers a repeated ``msgid`` with
its first answer, so a message is never applied twice.

Money is integer fen here; the wire carries yuan with two decimals.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from datasources.errors import SourceUnavailable

SOURCE = "insurance"

# Stable rejection codes (SourceRejected.code).
SIGN_IN_REQUIRED = "SIGN_IN_REQUIRED"  # not signed in, or the sign_no is unknown or expired
PERSON_NOT_FOUND = "PERSON_NOT_FOUND"
NOT_INSURED = "NOT_INSURED"  # the person has no active insurance of that type
VISIT_NOT_FOUND = "VISIT_NOT_FOUND"  # includes a visit whose registration was reversed
ALREADY_CANCELLED = "ALREADY_CANCELLED"
REVERSAL_TARGET_UNKNOWN = "REVERSAL_TARGET_UNKNOWN"  # no message with that msgid and infno arrived
MSGID_REUSED = "MSGID_REUSED"  # a msgid sent again with a different transaction or input
BAD_REQUEST = "BAD_REQUEST"

# Transaction numbers (infno).
SIGN_IN = "9001"
PERSON_INFO = "1101"
REGISTER = "2201"
CANCEL_REGISTRATION = "2202"
REVERSE = "2601"

# Medical certificate types (mdtrt_cert_type).
CERT_ECERT = "01"  # the medical insurance e-certificate (医保电子凭证)
CERT_RESIDENT_ID = "02"
CERT_SOCIAL_SECURITY_CARD = "03"


class OutcomeUnknown(SourceUnavailable):
    """The platform did not answer a write: reverse ``msgid`` (of transaction ``infno``) with 2601."""

    def __init__(self, source: str, message: str, *, msgid: str, infno: str) -> None:
        super().__init__(source, message)
        self.msgid = msgid
        self.infno = infno


@dataclass(frozen=True, slots=True)
class SignIn:
    sign_no: str
    sign_time: datetime


@dataclass(frozen=True, slots=True)
class Insurance:
    insutype: str  # e.g. 310 employee basic medical insurance, 390 urban-rural resident
    psn_type: str
    balance_fen: int  # the personal account balance (balc)
    insuplc_admdvs: str  # where the person is insured; later calls about them carry it
    active: bool


@dataclass(frozen=True, slots=True)
class Person:
    psn_no: str
    psn_name: str
    psn_cert_type: str
    certno: str
    gender: str
    insurances: tuple[Insurance, ...]


@dataclass(frozen=True, slots=True)
class VisitRequest:
    """An outpatient registration (2201): who, under which insurance, with which doctor."""

    psn_no: str
    insutype: str
    insuplc_admdvs: str
    begntime: datetime
    mdtrt_cert_type: str
    mdtrt_cert_no: str
    ipt_otp_no: str  # the hospital's outpatient number for this visit
    atddr_no: str
    dr_name: str
    dept_code: str
    dept_name: str
    caty: str


@dataclass(frozen=True, slots=True)
class Visit:
    mdtrt_id: str
    psn_no: str
    ipt_otp_no: str
    msgid: str  # the 2201 message that created it, for a reversal


class InsurancePlatform(Protocol):
    async def sign_in(self, opter_no: str, mac: str, ip: str) -> SignIn: ...
    async def person_info(self, cert_type: str, cert_no: str, psn_name: str) -> Person: ...
    async def register(self, visit: VisitRequest) -> Visit: ...
    async def cancel_registration(
        self, *, psn_no: str, mdtrt_id: str, ipt_otp_no: str, insuplc_admdvs: str
    ) -> None: ...
    async def reverse(self, *, psn_no: str, omsgid: str, oinfno: str, insuplc_admdvs: str) -> None:
        """Undo the message ``omsgid`` whatever its outcome was; refuses a msgid that never arrived."""
        ...
