"""Money arithmetic is exact; instrument rounding to tick and lot is idempotent and on the grid."""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal, Inexact

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradepulse.domain import Instrument, InstrumentError, Money
from tradepulse.domain.money import CurrencyMismatch, exact_mul

amounts = st.decimals(min_value=Decimal("-1e15"), max_value=Decimal("1e15"), places=6, allow_nan=False)
money = amounts.map(lambda a: Money(a))


@given(money, money, money)
def test_addition_is_exact_associative_and_invertible(a: Money, b: Money, c: Money) -> None:
    assert (a + b) - b == a
    assert a + b == b + a
    assert (a + b) + c == a + (b + c)
    negated = -a
    assert -negated == a


@given(st.lists(money, max_size=50), st.randoms())
def test_sum_does_not_depend_on_order(items: list[Money], rnd: object) -> None:
    total = sum(items, Money.zero())
    shuffled = list(items)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert sum(shuffled, Money.zero()) == total
    assert total.amount == sum((m.amount for m in items), Decimal(0))


@given(money, st.integers(-(10**6), 10**6))
def test_multiplication_by_integer_is_exact(a: Money, k: int) -> None:
    assert (a * k).amount == a.amount * k
    assert sum([a] * 7, Money.zero()) == a * 7


def test_inexact_results_raise_instead_of_rounding() -> None:
    huge = Decimal("1" * 40 + ".000000000000000000001")
    with pytest.raises(Inexact):
        exact_mul(huge, huge)


def test_floats_and_non_finite_are_refused() -> None:
    with pytest.raises(TypeError):
        Money.of(0.1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="finite"):
        Money(Decimal("NaN"))
    with pytest.raises(ValueError, match="finite"):
        Money.of("Infinity")
    with pytest.raises(TypeError):
        Money.of(1) * 0.5  # type: ignore[operator]


def test_currencies_do_not_mix() -> None:
    with pytest.raises(CurrencyMismatch):
        Money.of(1, "USD") + Money.of(1, "EUR")
    with pytest.raises(CurrencyMismatch):
        assert Money.of(1, "USD") < Money.of(2, "EUR")


def test_round_uses_the_mode_asked_for() -> None:
    assert Money.of("2.345").round(2).amount == Decimal("2.34")
    assert Money.of("2.355").round(2).amount == Decimal("2.36")
    assert Money.of("2.345").round(2, ROUND_HALF_UP).amount == Decimal("2.35")


ticks = st.sampled_from([Decimal("0.01"), Decimal("0.05"), Decimal("0.25"), Decimal("1"), Decimal("0.0001")])
prices = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("100000"), places=8, allow_nan=False)
modes = st.sampled_from([ROUND_HALF_EVEN, ROUND_DOWN, ROUND_FLOOR, ROUND_CEILING, ROUND_HALF_UP])


@given(ticks, prices, modes)
def test_price_rounding_is_idempotent_and_on_the_tick(tick: Decimal, price: Decimal, mode: str) -> None:
    inst = Instrument("TEST", tick_size=tick, price_precision=max(0, -tick.as_tuple().exponent))  # type: ignore[operator]
    once = inst.round_price(price, mode)
    assert inst.round_price(once, mode) == once
    assert once % tick == 0
    assert abs(once - price) <= tick


@given(ticks, prices)
def test_quantity_rounding_goes_toward_zero_by_lots(lot: Decimal, qty: Decimal) -> None:
    inst = Instrument("TEST", lot_size=lot)
    once = inst.round_quantity(qty)
    assert inst.round_quantity(once) == once
    assert once <= qty
    assert qty - once < lot
    assert once % lot == 0


def test_instrument_validation_names_the_problem() -> None:
    with pytest.raises(InstrumentError, match="tick_size"):
        Instrument("X", tick_size=Decimal(0))
    with pytest.raises(InstrumentError, match="lot_size"):
        Instrument("X", lot_size=Decimal(-1))
    with pytest.raises(InstrumentError, match="decimals"):
        Instrument("X", tick_size=Decimal("0.001"), price_precision=2)
    assert Instrument("X").price_from_float(101.12999999999) == Decimal("101.13")
