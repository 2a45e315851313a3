"""Masking of personal data for output: the default for every field that names a person."""

from __future__ import annotations


def mask_name(name: str) -> str:
    """李四 → 李*, 欧阳娜娜 → 欧***, John Smith → J*********."""
    if not name:
        return name
    return name[0] + "*" * (len(name) - 1) if len(name) > 1 else name


def mask_document_number(number: str) -> str:
    """Keeps the first 3 and last 2 characters, hides the length: 130******89, E12******89."""
    if len(number) <= 5:
        return "*" * len(number)
    return number[:3] + "******" + number[-2:]


def mask_phone(phone: str) -> str:
    """138****5678."""
    if len(phone) < 7:
        return "*" * len(phone)
    return phone[:3] + "*" * (len(phone) - 7) + phone[-4:]


def mask_card_number(card_no: str) -> str:
    """Medical card: the last four stay so the patient can tell cards apart."""
    if len(card_no) <= 4:
        return card_no
    return "*" * (len(card_no) - 4) + card_no[-4:]
