"""Exact sums of floats: what the 1-minute rollup relies on to be independent of batch boundaries."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from tradepulse.marketdata.exact import dyadic_add, dyadic_float, exact_sums, sqlite_exact_add

#: market-like values (sizes, turnovers), and rarely the whole normal float range (the slow exact path)
floats = st.one_of(
    st.floats(min_value=1e-6, max_value=1e12, allow_nan=False, allow_infinity=False),
    st.just(0.0),
    st.floats(min_value=1e-300, max_value=1e300, allow_nan=False, allow_infinity=False),
)


def value(m: int, e: int) -> Fraction:
    return m * Fraction(2) ** e


@given(st.lists(st.lists(floats, min_size=1, max_size=30), min_size=1, max_size=6))
def test_exact_sums_equal_fraction_sums(groups: list[list[float]]) -> None:
    values = np.array([v for g in groups for v in g], dtype=np.float64)
    starts = np.cumsum([0] + [len(g) for g in groups[:-1]])
    sums = exact_sums(values, starts)
    for g, group in enumerate(groups):
        exact = sum((Fraction(v) for v in group), Fraction(0))
        assert value(sums.mantissa(g), int(sums.e[g])) == exact
        assert sums.floats()[g] == float(exact)
        assert sums.mantissas()[g] == sums.mantissa(g)
        small, ok = sums.small()
        if ok[g]:
            assert int(small[g]) == sums.mantissa(g)


@given(st.lists(floats, min_size=2, max_size=30), st.integers(1, 29))
def test_merging_exact_partial_sums_is_exact(values: list[float], cut: int) -> None:
    cut = min(cut, len(values) - 1)
    a, b = (exact_sums(np.array(part), np.array([0])) for part in (values[:cut], values[cut:]))
    e = min(int(a.e[0]), int(b.e[0]))
    m = int(sqlite_exact_add(str(a.mantissa(0)), int(a.e[0]), a.mantissa(0) * 0 + b.mantissa(0), int(b.e[0])))
    assert value(m, e) == sum((Fraction(v) for v in values), Fraction(0))
    assert value(*dyadic_add(a.mantissa(0), int(a.e[0]), b.mantissa(0), int(b.e[0]))) == value(m, e)


@given(st.integers(0, 2**200), st.integers(-1000, 200))
def test_dyadic_float_rounds_correctly(m: int, e: int) -> None:
    exact = value(m, e)
    if exact < 2**1023:
        assert dyadic_float(m, e) == float(exact)


def test_a_sum_that_floats_get_wrong() -> None:
    sums = exact_sums(np.array([1e16, 1.0, 1.0]), np.array([0]))
    assert value(sums.mantissa(0), int(sums.e[0])) == 10**16 + 2
    assert sums.floats() == [1e16 + 2]
    assert dyadic_add(3, 0, 1, 1) == (5, 0)
    assert sqlite_exact_add(2**62, 1, 2**62, 1) == str(2**63)  # beyond 64 bits SQLite keeps text


def test_groups_too_wide_for_the_limbs_are_summed_exactly() -> None:
    values = np.array([1e-5, 1e9, 3.0, 1e300, 2.5])
    sums = exact_sums(values, np.array([0, 2, 3]))
    assert sums.big  # the first two groups' exponents span more than 27 bits
    for g, (lo, hi) in enumerate([(0, 2), (2, 3), (3, 5)]):
        exact = sum((Fraction(v) for v in values[lo:hi].tolist()), Fraction(0))
        assert value(sums.mantissa(g), int(sums.e[g])) == exact
