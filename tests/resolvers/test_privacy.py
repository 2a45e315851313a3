"""Masking: what every output shows of a person by default."""

from __future__ import annotations

import pytest

from resolvers.privacy import mask_card_number, mask_document_number, mask_name, mask_phone


@pytest.mark.parametrize(("name", "shown"), [("李四", "李*"), ("欧阳娜娜", "欧***"), ("王", "王"), ("", "")])
def test_names_keep_only_the_first_character(name: str, shown: str) -> None:
    assert mask_name(name) == shown


def test_resident_ids_keep_three_and_two_characters_and_hide_the_length() -> None:
    assert mask_document_number("130102199001011289") == "130******89"
    assert mask_document_number("E12345678") == "E12******78"


def test_phones_keep_the_first_three_and_last_four_digits() -> None:
    assert mask_phone("13812345678") == "138****5678"


def test_cards_keep_the_last_four_digits() -> None:
    assert mask_card_number("900000000123") == "********0123"
