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


def mask_bank_card(number: str) -> str:
    """6222 0212 3456 7890 123 → 622202*********0123: the issuer's BIN and the last four stay."""
    digits = number.replace(" ", "")
    if len(digits) <= 10:
        return "*" * len(digits)
    return digits[:6] + "*" * (len(digits) - 10) + digits[-4:]


_DIVISIONS = ("省", "自治区", "市", "州", "盟", "区", "县", "旗")


def mask_address(address: str) -> str:
    """Down to the district stays, the rest is hidden: 广东省广州市越秀区中山路1号 → 广东省广州市越秀区****.

    Without a recognisable district the first four characters stay."""
    cut = 0
    for suffix in _DIVISIONS:
        at = address.find(suffix, 0, 16)
        while at != -1:
            cut = max(cut, at + len(suffix))
            at = address.find(suffix, at + 1, 16)
    if cut >= len(address):
        return address  # no finer than a district: nothing to hide
    if cut == 0:
        cut = min(4, len(address) // 2)
    return address[:cut] + "****"


def mask_address_detail(detail: str) -> str:
    """The street and house number name one household: nothing of it shows."""
    return "****" if detail else detail


# Who may see personal data unmasked, and for what. Every such read is audited (resolvers.reveal).
REVEAL_PURPOSES: dict[str, frozenset[str]] = {
    # The patient's own records, to correct them in a form.
    "PATIENT": frozenset({"SELF_SERVICE"}),
    # Operators holding REVEAL_PERMISSION: answering the patient, settling a payment dispute,
    # a request from a court or the police.
    "OPERATOR": frozenset({"CUSTOMER_SERVICE", "BILLING_DISPUTE", "LEGAL_REQUEST"}),
}
REVEAL_PERMISSION = "personal_data.unmask"
