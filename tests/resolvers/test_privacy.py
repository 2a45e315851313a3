"""Masking: what every output shows of a person by default."""

from __future__ import annotations

import pytest

from resolvers.privacy import (
    mask_address,
    mask_address_detail,
    mask_bank_card,
    mask_card_number,
    mask_document_number,
    mask_name,
    mask_phone,
)


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


@pytest.mark.parametrize(
    ("address", "shown"),
    [
        ("广东省广州市越秀区中山路1号", "广东省广州市越秀区****"),
        ("北京市朝阳区建国路88号", "北京市朝阳区****"),
        ("内蒙古自治区呼和浩特市新城区某路", "内蒙古自治区呼和浩特市新城区****"),
        ("广州市越秀区", "广州市越秀区"),  # no finer than a district: nothing to hide
        ("12 Baker Street", "12 B****"),
    ],
)
def test_addresses_keep_down_to_the_district(address: str, shown: str) -> None:
    assert mask_address(address) == shown


def test_address_details_and_bank_cards_hide_what_names_a_household_or_an_account() -> None:
    assert mask_address_detail("中山路 1 号 3 单元") == "****"
    assert mask_bank_card("6222 0212 3456 7890 123") == "622202*********0123"
    assert mask_bank_card("12345") == "*****"
