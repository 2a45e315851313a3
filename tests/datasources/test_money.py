from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from datasources.money import AmountError, fen_from_yuan, yuan_decimal, yuan_text


@pytest.mark.parametrize(
    ("text", "fen"),
    [("12.50", 1250), ("0.01", 1), ("-0.05", -5), ("100", 10000), (" 3.1 ", 310), ("0", 0), (Decimal("7.07"), 707), (12, 1200)],
)
def test_yuan_read_exactly(text: object, fen: int) -> None:
    assert fen_from_yuan(text) == fen  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["12.501", "1E+2", "1e2", "NaN", "Infinity", "", "12,50", "abc", 0.1, True, None])
def test_refuses_what_is_not_an_exact_amount(bad: object) -> None:
    with pytest.raises(AmountError):
        fen_from_yuan(bad)  # type: ignore[arg-type]


@given(st.integers(min_value=-10**12, max_value=10**12))
def test_round_trip(fen: int) -> None:
    assert fen_from_yuan(yuan_text(fen)) == fen
    assert fen_from_yuan(yuan_decimal(fen)) == fen
    assert yuan_decimal(fen) == Decimal(fen) / 100
