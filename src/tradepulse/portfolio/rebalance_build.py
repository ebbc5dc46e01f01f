"""The convenient input path: holdings and targets as symbol -> Decimal (or str/int), securities as objects.

:func:`build_problem` checks what only this path can get wrong (unparseable or NaN numbers, floats, duplicate
or unknown symbols), turns the Decimals into exact integer columns, one cheap ``as_integer_ratio`` per number
(each column at the smallest power of ten that makes all of it whole), and hands them to the validation both
paths share (:func:`~tradepulse.portfolio.rebalance_columns.problem_from_columns`). So it raises the same errors
and builds the same problem as the columnar path; it is only slower, by the per-position Python work.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

import numpy as np

from tradepulse.domain.money import ZERO
from tradepulse.portfolio.rebalance_problem import (
    MAX_WEIGHT_DECIMALS,
    IntArray,
    ModelPortfolio,
    RebalanceInputError,
    RebalanceOptions,
    RebalanceProblem,
    Security,
    _dec,
)
from tradepulse.portfolio.rebalance_validate import MAX_COLUMN_DECIMALS, problem_from_columns

Pairs = Mapping[str, Any] | Iterable[tuple[str, Any]]


def _pairs(values: Pairs, what: str, field_name: str) -> dict[str, Decimal]:
    """Return symbol -> Decimal, refusing duplicates (symbols themselves are checked against the securities)."""
    if isinstance(values, Mapping):  # no duplicates possible; Decimals pass straight through
        return {s: v if type(v) is Decimal and v.is_finite() else _dec(v, s, field_name) for s, v in values.items()}
    out: dict[str, Decimal] = {}
    for symbol, value in values:
        if symbol in out:
            raise RebalanceInputError(symbol, "symbol", f"duplicate symbol in {what}")
        out[symbol] = _dec(value, symbol, field_name)
    return out


class _Unfit(Exception):
    """The value at ``index`` needs more decimal places than allowed, or does not fit an int64 column."""

    def __init__(self, index: int) -> None:
        super().__init__(index)
        self.index = index


def _units(values: list[Decimal], most: int) -> tuple[IntArray, int]:
    """Return ``values`` as int64 units of ``10**-exponent`` and the exponent, the smallest (up to ``most``)
    that makes every value whole; raise :class:`_Unfit` naming the first value that cannot be."""
    ratios = [v.as_integer_ratio() for v in values]  # exact; the denominator is 2**a * 5**b
    lcm = math.lcm(*{d for _, d in ratios})
    exponent = 0
    while 10**exponent % lcm:
        exponent += 1
        if exponent > most:
            raise _Unfit(next(i for i, (_, d) in enumerate(ratios) if 10**most % d))
    scale = 10**exponent
    units = [n * (scale // d) for n, d in ratios]
    try:
        return np.array(units, dtype=np.int64), exponent
    except OverflowError:
        raise _Unfit(next(i for i, u in enumerate(units) if not -(2**63) <= u < 2**63)) from None


def build_problem(
    *,
    cash: Decimal | int | str,
    holdings: Pairs,
    securities: Iterable[Security],
    targets: Pairs | ModelPortfolio,
    options: RebalanceOptions | None = None,
) -> RebalanceProblem:
    """Validate the inputs and return the problem both rebalancer implementations solve.

    ``holdings`` and ``targets`` are symbol -> quantity / weight, as a mapping or as (symbol, value) pairs (pairs
    are checked for duplicates). Every held or targeted symbol needs a :class:`Security` (its price and lot);
    securities neither held nor targeted are ignored. Raises :class:`RebalanceInputError` naming the symbol and
    field of the first problem found.
    """
    opts = options if options is not None else RebalanceOptions()
    cash_d = _dec(cash, None, "cash")
    if cash_d < 0:
        raise RebalanceInputError(None, "cash", f"must be >= 0, got {cash_d}")
    secs: dict[str, Security] = {}
    for sec in securities:
        sym = sec.instrument.symbol
        if sym in secs:
            raise RebalanceInputError(sym, "symbol", "duplicate symbol in securities")
        secs[sym] = sec
    held = _pairs(holdings, "holdings", "quantity")
    target = targets.targets() if isinstance(targets, ModelPortfolio) else _pairs(targets, "targets", "weight")
    for what, given in (("holdings", held), ("targets", target)):
        if not secs.keys() >= given.keys():
            sym = next(s for s in given if s not in secs)
            if not isinstance(sym, str) or not sym.strip():
                raise RebalanceInputError(None, "symbol", f"{what}: {sym!r} is not a symbol")
            raise RebalanceInputError(sym, "symbol", f"unknown symbol in {what} (no price or instrument)")

    rows = list(dict.fromkeys([*held, *target]))
    used = [secs[s] for s in rows]
    n = len(rows)
    prices = [_dec(sec.price, s, "price") for s, sec in zip(rows, used, strict=True)]
    ticks = [sec.instrument.tick_size for sec in used]
    flags = [sec.fractional for sec in used]
    lots = [sec.instrument.lot_size for sec in used]
    quantities = [held.get(s, ZERO) for s in rows]
    weights = [target.get(s, ZERO) for s in rows]
    steps = [opts.fractional_step] if any(flags) else []

    try:
        money, price_exponent = _units([*prices, *ticks], MAX_COLUMN_DECIMALS)
    except _Unfit as exc:
        i = exc.index % n
        p = prices[i]
        if exc.index >= n:
            raise RebalanceInputError(rows[i], "tick_size", f"{ticks[i]} is too large") from None
        if p <= 0:
            raise RebalanceInputError(rows[i], "price", f"must be > 0, got {p}") from None
        if p.as_integer_ratio()[1] > 1 and 10**MAX_COLUMN_DECIMALS % p.as_integer_ratio()[1]:
            raise RebalanceInputError(rows[i], "price", f"{p} is not a multiple of the tick size {ticks[i]}") from None
        raise RebalanceInputError(rows[i], "price", f"{p} is too large") from None
    try:
        shares, quantity_exponent = _units([*quantities, *lots, *steps], MAX_COLUMN_DECIMALS)
    except _Unfit as exc:
        if exc.index >= 2 * n:
            raise RebalanceInputError(
                None, "fractional_step", f"more than {MAX_COLUMN_DECIMALS} decimal places"
            ) from None
        i = exc.index % n
        if exc.index >= n:
            raise RebalanceInputError(
                rows[i], "lot_size", f"{lots[i]} is too large or has more than {MAX_COLUMN_DECIMALS} decimal places"
            ) from None
        q = quantities[i]
        if q < 0:
            raise RebalanceInputError(rows[i], "quantity", f"must be >= 0 (no short positions), got {q}") from None
        step = opts.fractional_step if flags[i] else lots[i]
        if 10**MAX_COLUMN_DECIMALS % q.as_integer_ratio()[1]:
            hint = "" if flags[i] else " (mark the symbol fractional to trade in fractions)"
            raise RebalanceInputError(rows[i], "quantity", f"{q} is not a multiple of the step {step}{hint}") from None
        raise RebalanceInputError(rows[i], "quantity", f"{q} is too large") from None
    try:
        weight, weight_exponent = _units(weights, MAX_WEIGHT_DECIMALS)
    except _Unfit as exc:
        w = weights[exc.index]
        sym = rows[exc.index]
        if w < 0:
            raise RebalanceInputError(sym, "weight", f"must be >= 0, got {w}") from None
        if w > 1:
            raise RebalanceInputError(sym, "weight", f"must be <= 1, got {w}") from None
        raise RebalanceInputError(sym, "weight", f"{w} has more than {MAX_WEIGHT_DECIMALS} decimal places") from None

    return problem_from_columns(
        symbols=np.array(rows, dtype=str),
        quantity=shares[:n],
        quantity_exponent=quantity_exponent,
        price=money[:n],
        price_exponent=price_exponent,
        weight=weight,
        weight_exponent=weight_exponent,
        lot=shares[n : 2 * n],
        fractional=np.array(flags, dtype=np.bool_),
        tick=money[n:],
        cash=cash_d,
        options=opts,
        securities=used,
    )


__all__ = ["Pairs", "build_problem"]
