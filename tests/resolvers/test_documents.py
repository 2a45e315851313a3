"""Identity documents and phone numbers are checked before anything reaches HIS."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resolvers.documents import (
    PASSPORT,
    check_digit,
    normalize_document,
    normalize_mobile,
    parse_resident_id,
)
from resolvers.errors import InvalidInput

TODAY = date(2026, 11, 23)


def test_a_valid_resident_id_yields_birth_date_and_gender() -> None:
    parsed = parse_resident_id("11010519491231002X", today=TODAY)
    assert parsed.birth_date == date(1949, 12, 31)
    assert parsed.gender == "FEMALE"  # sequence 002: even
    assert parsed.region == "110105"


def test_a_lowercase_x_check_character_is_accepted_and_normalised() -> None:
    assert parse_resident_id("11010519491231002x", today=TODAY).number == "11010519491231002X"


@pytest.mark.parametrize(
    ("number", "why"),
    [
        ("110105194912310021", "last character does not match"),
        ("1101051949123100", "18 characters"),
        ("11010519491331002" + check_digit("11010519491331002"), "impossible birth date"),
        ("11010520300101001" + check_digit("11010520300101001"), "not plausible"),
    ],
)
def test_wrong_resident_ids_are_refused_with_the_reason(number: str, why: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_resident_id(number, today=TODAY)
    assert why in refused.value.message
    assert refused.value.field == "documentNumber"


@given(st.from_regex(r"\A[1-6]\d{5}(19[5-9]\d|200\d)(0[1-9]|1[0-2])(0[1-9]|1\d|2[0-8])\d{3}\Z"))
def test_any_body_with_its_computed_check_digit_is_valid_and_any_other_is_not(body: str) -> None:
    good = body + check_digit(body)
    assert parse_resident_id(good, today=TODAY).number == good
    for wrong in "0123456789X":
        if wrong != good[-1]:
            with pytest.raises(InvalidInput):
                parse_resident_id(body + wrong, today=TODAY)


def test_passports_are_normalised_and_checked() -> None:
    assert normalize_document(PASSPORT, " e1234 5678 ") == "E12345678"
    with pytest.raises(InvalidInput):
        normalize_document(PASSPORT, "E1-2")


@pytest.mark.parametrize("raw", ["13800138000", "+86 138-0013-8000", "19912345678"])
def test_mainland_mobiles_are_normalised(raw: str) -> None:
    assert len(normalize_mobile(raw)) == 11


@pytest.mark.parametrize("raw", ["12800138000", "1380013800", "phone"])
def test_other_numbers_are_not_mobiles(raw: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        normalize_mobile(raw)
    assert refused.value.field == "phone"
