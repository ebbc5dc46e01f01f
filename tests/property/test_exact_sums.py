"""Exact sums of floats: what the 1-minute rollup relies on to be independent of batch boundaries."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from tradepulse.marketdata.bars import dyadic_to_decimal, exact_add, exact_sums

floats = st.floats(min_value=0, max_value=1e300, allow_nan=False, allow_infinity=False)


@given(st.lists(st.lists(floats, min_size=1, max_size=30), min_size=1, max_size=6))
def test_exact_sums_equal_fraction_sums(groups: list[list[float]]) -> None:
    values = np.array([v for g in groups for v in g], dtype=np.float64)
    starts = np.cumsum([0] + [len(g) for g in groups[:-1]])
    got = exact_sums(values, starts)
    for text, group in zip(got, groups, strict=True):
        assert Fraction(Decimal(text)) == sum((Fraction(v) for v in group), Fraction(0))


@given(st.lists(floats, min_size=2, max_size=30), st.integers(1, 29))
def test_merging_exact_partial_sums_is_exact(values: list[float], cut: int) -> None:
    cut = min(cut, len(values) - 1)
    a, b = (exact_sums(np.array(part), np.array([0]))[0] for part in (values[:cut], values[cut:]))
    assert Fraction(Decimal(exact_add(a, b))) == sum((Fraction(v) for v in values), Fraction(0))


@given(st.integers(-(10**30), 10**30), st.integers(-1100, 200))
def test_dyadic_to_decimal_is_exact(mantissa: int, exponent: int) -> None:
    assert Fraction(Decimal(dyadic_to_decimal(mantissa, exponent))) == mantissa * Fraction(2) ** exponent


def test_a_sum_that_floats_get_wrong() -> None:
    (total,) = exact_sums(np.array([1e16, 1.0, 1.0]), np.array([0]))
    assert total == "10000000000000002"
    assert float(total) == 1e16 + 2
