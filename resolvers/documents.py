"""Identity documents and phone numbers: validation before anything reaches HIS."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from resolvers.errors import InvalidInput

RESIDENT_ID = "RESIDENT_ID"  # 居民身份证
PASSPORT = "PASSPORT"  # 护照 (foreign nationals)
HK_MACAO_PERMIT = "HK_MACAO_PERMIT"  # 港澳居民来往内地通行证
TAIWAN_PERMIT = "TAIWAN_PERMIT"  # 台湾居民来往大陆通行证
FOREIGNER_PERMANENT_ID = "FOREIGNER_PERMANENT_ID"  # 外国人永久居留身份证
DOCUMENT_TYPES = (RESIDENT_ID, PASSPORT, HK_MACAO_PERMIT, TAIWAN_PERMIT, FOREIGNER_PERMANENT_ID)

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
_RESIDENT_RE = re.compile(r"^\d{17}[\dX]$")
_MOBILE_RE = re.compile(r"^1[3-9]\d{9}$")
_PASSPORT_RE = re.compile(r"^[A-Z0-9]{5,17}$")
_HK_MACAO_RE = re.compile(r"^[HM]\d{8,10}$")
_TAIWAN_RE = re.compile(r"^\d{8}$|^\d{10}$")


@dataclass(frozen=True, slots=True)
class ResidentId:
    number: str
    birth_date: date
    gender: str  # MALE, FEMALE (odd/even sequence digit)
    region: str


def check_digit(first17: str) -> str:
    """GB 11643-1999, ISO 7064 MOD 11-2."""
    total = sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK[total % 11]


def parse_resident_id(raw: str, *, today: date) -> ResidentId:
    number = raw.strip().upper()
    if not _RESIDENT_RE.match(number):
        raise InvalidInput("documentNumber", "A resident ID number has 18 characters: 17 digits, then a digit or X.")
    if check_digit(number[:17]) != number[17]:
        raise InvalidInput("documentNumber", "The ID number's last character does not match; please check it.")
    try:
        born = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError as exc:
        raise InvalidInput("documentNumber", "The ID number contains an impossible birth date.") from exc
    if born > today or born.year < 1880:
        raise InvalidInput("documentNumber", "The ID number's birth date is not plausible.")
    gender = "MALE" if int(number[16]) % 2 == 1 else "FEMALE"
    return ResidentId(number=number, birth_date=born, gender=gender, region=number[:6])


def normalize_document(document_type: str, raw: str) -> str:
    number = raw.strip().upper().replace(" ", "")
    if document_type == PASSPORT and not _PASSPORT_RE.match(number):
        raise InvalidInput("documentNumber", "A passport number has 5 to 17 letters and digits.")
    if document_type == HK_MACAO_PERMIT and not _HK_MACAO_RE.match(number):
        raise InvalidInput("documentNumber", "A Hong Kong/Macao permit number is H or M followed by 8 to 10 digits.")
    if document_type == TAIWAN_PERMIT and not _TAIWAN_RE.match(number):
        raise InvalidInput("documentNumber", "A Taiwan permit number has 8 or 10 digits.")
    if document_type == FOREIGNER_PERMANENT_ID and not (len(number) == 15 or _RESIDENT_RE.match(number)):
        raise InvalidInput("documentNumber", "A foreigner's permanent residence ID has 15 or 18 characters.")
    if document_type not in DOCUMENT_TYPES:
        raise InvalidInput("documentType", f"Unknown document type; use one of {', '.join(DOCUMENT_TYPES)}.")
    return number


def normalize_mobile(raw: str) -> str:
    number = re.sub(r"[\s-]", "", raw.strip())
    if number.startswith("+86"):
        number = number[3:]
    if not _MOBILE_RE.match(number):
        raise InvalidInput("phone", "A mainland mobile number has 11 digits and starts with 13 to 19.")
    return number
