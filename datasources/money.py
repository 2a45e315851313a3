"""Money at the edges: integer fen inside, yuan text on the wires of channels and platforms.

One parser for every source, exact by construction: ``Decimal``, never float; a fraction of a fen,
an exponent, ``NaN`` or junk is refused (each wire turns ``AmountError`` into its own refusal).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

FEN_PER_YUAN = 100
CENT = Decimal("0.01")


class AmountError(ValueError):
    """Not a yuan amount with at most two decimals."""


def yuan_text(fen: int) -> str:
    """1250 → "12.50"; -5 → "-0.05"."""
    if isinstance(fen, bool) or not isinstance(fen, int):
        raise TypeError("amounts are integer fen")
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // FEN_PER_YUAN}.{abs(fen) % FEN_PER_YUAN:02d}"


def yuan_decimal(fen: int) -> Decimal:
    """1250 → Decimal("12.50"), for wires that carry JSON numbers."""
    return Decimal(yuan_text(fen))


def fen_from_yuan(value: str | int | Decimal) -> int:
    """ "12.50" → 1250, exactly. Refuses floats (already rounded), more than two decimals,
    exponents ("1E+2"), infinities and anything that is not a number."""
    if isinstance(value, bool) or isinstance(value, float) or not isinstance(value, str | int | Decimal):
        raise AmountError(f"a yuan amount is text or an exact number, not {type(value).__name__}")
    text = value.strip() if isinstance(value, str) else str(value)
    if "e" in text.lower():
        raise AmountError(f"not a plain yuan amount: {value!r}")
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise AmountError(f"not a yuan amount: {value!r}") from None
    if not amount.is_finite():
        raise AmountError(f"not a yuan amount: {value!r}")
    fen = amount * FEN_PER_YUAN
    if fen != fen.to_integral_value():
        raise AmountError(f"more than two decimals (a fraction of a fen): {value!r}")
    return int(fen)
